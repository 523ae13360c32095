"""Line plots drawn with OpenCV (training loss, AP per epoch), so runs get pictures without matplotlib."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from hrpose_cli.viz.colormaps import BACKGROUND, MUTED, PANEL, TEXT
from hrpose_cli.viz.draw import draw_text, fit_scale, text_size, write_image

# Series colours, bright enough to read on the dark background and apart from each other.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (76, 201, 240), (248, 150, 30), (144, 190, 109), (249, 65, 68),
    (179, 136, 235), (249, 199, 79), (67, 170, 139), (255, 112, 166),
)
_GRID = (48, 50, 58)
_SHIFT = 4


def nice_ticks(lo: float, hi: float, target: int = 6, integer: bool = False) -> np.ndarray:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [lo, hi], about ``target`` many.

    ``integer`` keeps steps whole, for epoch axes.
    """
    raw = (hi - lo) / max(target - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, round(step))
    first = math.floor(lo / step + 1e-9) * step
    count = int(math.ceil((hi - first) / step - 1e-9)) + 1
    return first + step * np.arange(count)


def _label(value: float, step: float) -> str:
    """A tick label with just enough decimals to tell neighbouring ticks apart."""
    if value != 0 and (abs(value) >= 1e5 or abs(step) < 1e-4):
        return f"{value:.3g}"
    decimals = next((d for d in range(10) if abs(round(step, d) - step) <= abs(step) * 1e-6), 10)
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


def _span(values: np.ndarray) -> tuple[float, float]:
    """The data range, widened when it is a single value so the axis still has a scale."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    return lo, hi


def render_curves(
    series: dict[str, list[tuple[float, float]]],
    title: str,
    ylabel: str = "",
    xlabel: str = "epoch",
    width: int = 960,
    height: int = 540,
) -> np.ndarray:
    """An RGB (height, width) line plot of each named series of (x, y) points, with axes, ticks and a legend.

    Non-finite points are skipped (a diverged loss should not wipe out the plot); an empty plot says so.
    """
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    font = min(max(min(width, height) / 1000, 0.4), 1.0)
    _, text_h, base = text_size("Ag", font)
    gap = max(6, text_h // 2)

    cleaned = {name: np.array([p for p in points if np.isfinite(p).all()], dtype=np.float64).reshape(-1, 2)
               for name, points in series.items()}
    cleaned = {name: pts[np.argsort(pts[:, 0], kind="stable")] for name, pts in cleaned.items() if len(pts)}
    everything = np.concatenate(list(cleaned.values())) if cleaned else np.zeros((0, 2))

    title_font = fit_scale(title, width - 2 * gap, font * 1.3, 2)
    _, title_h, title_base = text_size("Ag", font * 1.3, 2)
    draw_text(image, title, (gap, gap), title_font, TEXT, 2)

    if len(everything):
        integer_x = bool(np.all(everything[:, 0] == np.round(everything[:, 0])))
        x_ticks = nice_ticks(*_span(everything[:, 0]), target=8, integer=integer_x)
        y_ticks = nice_ticks(*_span(everything[:, 1]), target=6)
    else:
        integer_x, x_ticks, y_ticks = True, np.arange(0.0, 6.0), np.linspace(0.0, 1.0, 6)
    x_step, y_step = x_ticks[1] - x_ticks[0], y_ticks[1] - y_ticks[0]
    y_labels = [_label(v, y_step) for v in y_ticks]
    x_labels = [_label(v, x_step) for v in x_ticks]

    left = gap + (text_h + base + gap if ylabel else 0) + max(text_size(t, font)[0] for t in y_labels) + gap
    top = gap + title_h + title_base + 2 * gap
    bottom = height - (gap + (text_h + base + gap if xlabel else 0) + text_h + base + gap)
    right = width - gap - text_size(x_labels[-1], font)[0] // 2
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + (x - x_lo) / (x_hi - x_lo) * (right - left)
        py = bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top)
        return np.rint(np.stack([px, py], axis=-1) * (1 << _SHIFT)).astype(np.int32)

    image[top:bottom + 1, left:right + 1] = PANEL
    for value, text in zip(y_ticks, y_labels):
        y = int(round(bottom - (value - y_lo) / (y_hi - y_lo) * (bottom - top)))
        cv2.line(image, (left, y), (right, y), _GRID, 1)
        w = text_size(text, font)[0]
        draw_text(image, text, (left - gap - w, y - (text_h + base) // 2), font, MUTED)
    for value, text in zip(x_ticks, x_labels):
        x = int(round(left + (value - x_lo) / (x_hi - x_lo) * (right - left)))
        cv2.line(image, (x, top), (x, bottom), _GRID, 1)
        cv2.line(image, (x, bottom), (x, bottom + gap // 2), MUTED, 1)
        draw_text(image, text, (x - text_size(text, font)[0] // 2, bottom + gap), font, MUTED)
    cv2.rectangle(image, (left, top), (right, bottom), MUTED, 1)
    if xlabel:
        w = text_size(xlabel, font)[0]
        draw_text(image, xlabel, ((left + right - w) // 2, height - gap - text_h - base), font, TEXT)
    if ylabel:
        _vertical_text(image, ylabel, gap, (top + bottom) // 2, font)

    thickness = max(2, int(round(font * 3)))
    for k, (name, pts) in enumerate(cleaned.items()):
        color = PALETTE[k % len(PALETTE)]
        px = to_px(pts[:, 0], pts[:, 1])
        cv2.polylines(image, [px.reshape(-1, 1, 2)], False, color, thickness, cv2.LINE_AA, _SHIFT)
        if len(pts) <= 40:
            for p in px:
                cv2.circle(image, (int(p[0]), int(p[1])), (thickness + 1) << _SHIFT, color, -1, cv2.LINE_AA, _SHIFT)
    if cleaned:
        drawn = np.concatenate([_densify(to_px(pts[:, 0], pts[:, 1]) / (1 << _SHIFT)) for pts in cleaned.values()])
        _legend(image, list(cleaned), (left + gap, top + gap, right - gap, bottom - gap), drawn, font, thickness)
    else:
        w = text_size("no data", font)[0]
        draw_text(image, "no data", ((left + right - w) // 2, (top + bottom - text_h) // 2), font, MUTED)
    return image


def _vertical_text(image: np.ndarray, text: str, x: int, center_y: int, font: float) -> None:
    """Axis label rotated to read bottom-up (cv2 cannot rotate text, so draw it flat and turn the pixels)."""
    w, h, base = text_size(text, font)
    flat = np.zeros((h + base, w, 3), np.uint8)
    flat[:] = BACKGROUND
    draw_text(flat, text, (0, 0), font, TEXT)
    turned = np.rot90(flat)
    y0 = max(0, min(center_y - turned.shape[0] // 2, image.shape[0] - turned.shape[0]))
    image[y0:y0 + turned.shape[0], x:x + turned.shape[1]] = turned[: image.shape[0] - y0, : image.shape[1] - x]


def _densify(points: np.ndarray, per_segment: int = 16) -> np.ndarray:
    """Points along a polyline, so the legend can see where the lines run and not only their vertices."""
    if len(points) < 2:
        return points
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[None, :, None]
    return np.concatenate([(points[:-1, None] * (1 - t) + points[1:, None] * t).reshape(-1, 2), points[-1:]])


def _legend(
    image: np.ndarray, names: list[str], area: tuple[int, int, int, int], drawn: np.ndarray, font: float,
    thickness: int,
) -> None:
    """Series names with their colour swatches in a box, in the corner of ``area`` (x0, y0, x1, y1) that covers
    the fewest ``drawn`` curve points, so the legend hides as little data as it can."""
    _, text_h, base = text_size("Ag", font)
    pad, swatch = max(4, text_h // 2), 2 * text_h
    row = text_h + base + pad
    box_w = pad + swatch + pad + max(text_size(n, font)[0] for n in names) + pad
    box_h = pad + row * len(names)
    ax0, ay0, ax1, ay1 = area
    corners = [(ax1 - box_w, ay0), (ax0, ay0), (ax1 - box_w, ay1 - box_h), (ax0, ay1 - box_h)]

    def covered(corner: tuple[int, int]) -> int:
        x, y = corner
        inside = (drawn[:, 0] >= x) & (drawn[:, 0] <= x + box_w) & (drawn[:, 1] >= y) & (drawn[:, 1] <= y + box_h)
        return int(inside.sum())

    x0, y0 = min(corners, key=covered)
    cv2.rectangle(image, (x0, y0), (x0 + box_w, y0 + box_h), BACKGROUND, -1)
    cv2.rectangle(image, (x0, y0), (x0 + box_w, y0 + box_h), _GRID, 1)
    for k, name in enumerate(names):
        y = y0 + pad + k * row
        mid = y + (text_h + base) // 2
        cv2.line(image, (x0 + pad, mid), (x0 + pad + swatch, mid), PALETTE[k % len(PALETTE)], thickness, cv2.LINE_AA)
        draw_text(image, name, (x0 + 2 * pad + swatch, y), font, TEXT)


def plot_curves(
    series: dict[str, list[tuple[float, float]]],
    title: str,
    path: Path,
    ylabel: str = "",
    xlabel: str = "epoch",
    width: int = 960,
    height: int = 540,
) -> Path:
    """Render ``series`` as ``render_curves`` does and write the PNG atomically (a run's plot is never half-written)."""
    return write_image(path, render_curves(series, title, ylabel, xlabel, width, height))
