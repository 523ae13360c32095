"""`hrpose predict`: not built yet."""

from hrpose_cli.errors import HrposeError


def predict() -> None:
    """Not built yet: this command says so and exits 1."""
    raise HrposeError("'hrpose predict' is not built yet")
