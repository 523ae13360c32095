"""Where the shipped files live: assets/ of a checkout, installed as the package hrpose_cli.assets."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

_SOURCE_ASSETS = Path(__file__).resolve().parents[1] / "assets"


def asset_path(name: str) -> Path:
    """The path of a shipped file or folder (it may not exist: callers check)."""
    try:
        installed = Path(str(importlib.resources.files("hrpose_cli.assets") / name))
        if installed.exists():
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    return _SOURCE_ASSETS / name
