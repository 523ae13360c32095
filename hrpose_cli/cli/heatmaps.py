"""`hrpose visualize-heatmaps`: not built yet."""

from hrpose_cli.errors import HrposeError


def visualize_heatmaps() -> None:
    """Not built yet: this command says so and exits 1."""
    raise HrposeError("'hrpose visualize-heatmaps' is not built yet")
