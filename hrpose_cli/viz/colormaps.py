"""Colours shared by the drawings: OpenCV colour maps by lowercase name, the side palette, the dark theme.

Everything here is RGB (OpenCV's own maps come out BGR and are flipped once, here).
"""

from __future__ import annotations

import colorsys
from functools import lru_cache

import cv2
import numpy as np

from hrpose_cli.errors import HrposeError

# Every OpenCV colour map this build has, by lowercase name ("jet", "hot", "winter", "viridis", "turbo", ...).
COLORMAPS: dict[str, int] = {
    name[len("COLORMAP_"):].lower(): getattr(cv2, name) for name in dir(cv2) if name.startswith("COLORMAP_")
}

# Limb and joint colours by body side (KeypointSchema.side): left warm, right cool, centre green.
SIDE_COLORS: dict[str, tuple[int, int, int]] = {
    "left": (255, 150, 40),
    "right": (40, 170, 255),
    "center": (90, 220, 110),
}

# The dark theme of sheets and plots.
BACKGROUND = (22, 23, 27)
PANEL = (34, 36, 42)
TEXT = (235, 235, 235)
MUTED = (150, 152, 160)
BOX = (255, 230, 90)

_GOLDEN_RATIO_CONJUGATE = (5**0.5 - 1) / 2  # hue step between consecutive track ids


@lru_cache(maxsize=None)
def colormap_lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 RGB table of colour map ``name``; an unknown name is a user error naming the valid ones."""
    key = name.strip().lower()
    if key not in COLORMAPS:
        raise HrposeError(f"unknown colour map '{name}'; choose one of: {', '.join(sorted(COLORMAPS))}")
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    lut = cv2.applyColorMap(ramp, COLORMAPS[key])[:, 0, ::-1].copy()
    lut.setflags(write=False)
    return lut


def apply_colormap(values: np.ndarray, name: str) -> np.ndarray:
    """Values in [0, 1] (clipped) -> RGB uint8 image of the same height and width, through colour map ``name``."""
    index = np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    return colormap_lut(name)[index]


def colormap_color(name: str, value: float) -> tuple[int, int, int]:
    """One colour of a map, for markers and legends that must match the overlay they describe."""
    r, g, b = colormap_lut(name)[int(round(min(max(value, 0.0), 1.0) * 255))]
    return int(r), int(g), int(b)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable RGB colour for a video track, the same in every frame and every run. The hue steps round the
    wheel by the golden ratio, so each new id lands in one of the widest gaps the earlier ids left: the ids on
    screen together (usually close in number) get well-separated hues, at a brightness that shows on video."""
    r, g, b = colorsys.hsv_to_rgb((track_id * _GOLDEN_RATIO_CONJUGATE) % 1.0, 0.75, 0.95)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))
