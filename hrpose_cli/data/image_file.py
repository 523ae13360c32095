"""Decoding one image file, torch-free: for commands that draw without running a network (eval --analyze)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hrpose_cli.errors import HrposeError


def read_image(path: Path) -> np.ndarray:
    """Decode one image to HxWx3 BGR uint8, or raise HrposeError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise HrposeError(f"{path}: image not found")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise HrposeError(f"{path}: cannot read the image ({err.strerror or err})") from err
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise HrposeError(f"{path}: not a readable image (corrupt or unsupported format)")
    return image
