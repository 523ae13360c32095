"""hrpose: top-down human pose estimation with HRNet on COCO-format data.

``load``, ``evaluate``, ``Model``, ``Result`` and ``Evaluation`` (see hrpose_cli.api) are imported on first use,
so that ``import hrpose_cli`` (and the command's ``--help``) stays cheap: torch loads only with a model.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read the name)
__version__ = "0.1.0"
__all__ = ["Evaluation", "Model", "Result", "evaluate", "load"]

if TYPE_CHECKING:
    from hrpose_cli.api import Evaluation, Model, Result, evaluate, load


def __getattr__(name: str):
    if name in __all__:
        from hrpose_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'hrpose_cli' has no attribute {name!r}")
