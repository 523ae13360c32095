"""The one exception type for problems a user can fix (bad input, missing files, bad options).

The CLI turns it into a one-line message and exit code 1; anything else is a bug and keeps its traceback.
"""


class HrposeError(Exception):
    """A problem with the user's input, worded for people: name the file and what is wrong."""
