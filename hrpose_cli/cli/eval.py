"""`hrpose eval`: not built yet."""

from hrpose_cli.errors import HrposeError


def evaluate() -> None:
    """Not built yet: this command says so and exits 1."""
    raise HrposeError("'hrpose eval' is not built yet")
