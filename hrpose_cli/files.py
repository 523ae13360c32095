"""Writing output files so that nothing already written is lost: temp file in the same folder, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from hrpose_cli.errors import HrposeError


def normal_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file under the current umask (0644 under 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, then move it into place in one step.

    A crash or an error leaves the previous file untouched; a folder that cannot be made or written
    gives a one-line HrposeError naming the path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise HrposeError(f"{path}: cannot write here ({err.strerror or err})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, normal_file_mode())  # mkstemp's 0600 would hide results from everyone else
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: object) -> Path:
    """JSON written atomically; NaN is refused (json would write invalid JSON for it)."""
    text = json.dumps(data, allow_nan=False)
    return atomic_write(path, lambda f: f.write(text.encode()))
