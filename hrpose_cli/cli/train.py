"""`hrpose train`: not built yet."""

from hrpose_cli.errors import HrposeError


def train() -> None:
    """Not built yet: this command says so and exits 1."""
    raise HrposeError("'hrpose train' is not built yet")
