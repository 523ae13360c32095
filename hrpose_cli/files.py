"""Writing output files so that nothing already written is lost: temp file in the same folder, then rename.

Commands call ``check_writable`` on every output before they load a model, so an output that cannot be
written fails in a second, not after the work.
"""

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


def _nearest_existing(path: Path) -> Path:
    """The closest ancestor of ``path`` that exists: where its folders would be made."""
    return next((p for p in path.parents if p.exists()), Path("."))


def _unwritable(path: Path, err: OSError, inside: Path | None = None) -> HrposeError:
    """The one-line error for ``path`` (or a file ``inside`` it) whose folder cannot be made or written, with
    the real reason (mkdir says "File exists" when a parent is a file)."""
    existing = _nearest_existing(inside or path)
    reason = f"{existing} is a file, not a folder" if not existing.is_dir() else (err.strerror or str(err))
    return HrposeError(f"{path}: cannot write here ({reason})")


def check_writable(path: Path | None, folder: bool = False) -> None:
    """Fail now, with atomic_write's one-line error, if ``path`` (a file, or with ``folder`` a folder) could
    not be written later. Probes the nearest existing folder with a temp file; creates nothing that stays."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir() and not folder:
        raise HrposeError(f"{path}: is a folder, expected a file name")
    if folder and path.exists() and not path.is_dir():
        raise HrposeError(f"{path}: exists and is not a folder")
    target = path / ".probe" if folder else path
    existing = _nearest_existing(target)
    try:
        fd, probe = tempfile.mkstemp(prefix=".hrpose-probe.", dir=existing)
    except OSError as err:
        raise _unwritable(path, err, target) from None
    os.close(fd)
    os.unlink(probe)


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
        raise _unwritable(path, err) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
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
