"""`hrpose oks`: not built yet."""

from hrpose_cli.errors import HrposeError


def oks() -> None:
    """Not built yet: this command says so and exits 1."""
    raise HrposeError("'hrpose oks' is not built yet")
