"""GT and predicted heatmaps overlaid on the network's input crop: one contact sheet per person.

Sheet layout (``sheet_layout`` gives every rectangle, so tests and the CLI can find each panel):

    header      title; legend of the two colour maps and the two peak markers
    top row     (a) the crop   (b) GT, max over the shown joints   (c) prediction, max over the shown joints
    grid        one panel per shown joint (``columns`` across): GT and prediction overlaid, GT joint as a ring,
                predicted peak as a cross; caption: joint name, OKS term "ks 0.87", predicted score

Panels are the crop zoomed by an integer factor so captions are legible (the top row more, when the grid is
wide enough). Crop pixel (x, y) sits at panel pixel (x * zoom, y * zoom), and heatmap cell (i, j) at crop pixel (i * stride, j * stride), as in the codec,
so a peak drawn here lies exactly where the codec says the joint is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from hrpose_cli.viz.colormaps import BACKGROUND, MUTED, PANEL, TEXT, apply_colormap, colormap_color
from hrpose_cli.viz.draw import draw_text, fit_scale, text_size

DEFAULT_MAX_PERSONS = 8  # sheets drawn when neither --max nor --ids says otherwise
# The CLI's default sheet: panels at the crop's own size, top row included, so a 256x192 model's sheet of 17
# joints is about 1,200 x 1,300 px, readable fitted to a laptop screen (zoom None, the full size, is 2,367 x 2,892).
SCREEN_ZOOM = (1, 1)

_OUTLINE = (10, 10, 12)
_MARKER_LEVEL = 0.9  # markers take their colour from near the top of their heatmap's colour map


class Rect(NamedTuple):
    """A rectangle in sheet pixels: top-left corner and size."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class SheetLayout:
    """Where everything goes on a sheet; image rectangles hold the zoomed crop, captions sit right below them."""

    height: int
    width: int
    crop_hw: tuple[int, int]
    zoom: int
    top_zoom: int
    font: float
    gap: int
    caption_height: int
    header: Rect
    crop: Rect
    gt: Rect
    pred: Rect
    joints: tuple[Rect, ...]

    def caption(self, rect: Rect) -> Rect:
        """The caption strip under an image rectangle."""
        return Rect(rect.x, rect.y + rect.h, rect.w, self.caption_height)

    def to_sheet(self, rect: Rect, x: float, y: float) -> tuple[float, float]:
        """Crop pixel (x, y) -> sheet pixel inside ``rect`` (top-row and grid panels have their own zoom)."""
        zoom = rect.w / self.crop_hw[1]
        return rect.x + x * zoom, rect.y + y * zoom


def sheet_layout(num_joints: int, crop_hw: tuple[int, int], columns: int = 6, zoom: int | None = None,
                 top_zoom: int | None = None) -> SheetLayout:
    """The layout of a sheet showing ``num_joints`` joint panels for a crop of ``crop_hw`` (height, width).

    ``zoom`` defaults to the integer factor that makes grid panels about 320 px wide, enough for a 14-letter
    joint name and its OKS term side by side; the top row (``top_zoom``) is zoomed further by default when the
    grid is twice as wide. ``SCREEN_ZOOM`` gives a sheet that fits a laptop screen instead.
    """
    crop_h, crop_w = crop_hw
    if zoom is None:
        zoom = max(1, round(320 / crop_w))
    panel_w, panel_h = crop_w * zoom, crop_h * zoom
    font = min(max(panel_w / 640, 0.42), 0.8)
    gap = max(6, panel_w // 40)
    _, text_h, baseline = text_size("Ag", font)
    line_h = text_h + baseline + gap // 2
    caption_h = 2 * line_h + gap // 2
    _, title_h, title_base = text_size("Ag", font * 1.35, 2)
    header_h = gap + (title_h + title_base) + gap + line_h + gap

    grid_cols = min(columns, num_joints) if num_joints else 0
    sheet_cols = max(3, grid_cols)
    width = gap + sheet_cols * (panel_w + gap)
    cell_h = panel_h + caption_h + gap

    def cell(col: int, y: int) -> Rect:
        return Rect(gap + col * (panel_w + gap), y, panel_w, panel_h)

    if top_zoom is None:
        top_zoom = zoom * max(1, sheet_cols // 3)
    top_w, top_h = crop_w * top_zoom, crop_h * top_zoom

    def top(col: int) -> Rect:
        return Rect(gap + col * (top_w + gap), header_h, top_w, top_h)

    top_y = header_h
    grid_y = top_y + top_h + caption_h + 2 * gap
    rows = math.ceil(num_joints / grid_cols) if num_joints else 0
    joints = tuple(cell(k % grid_cols, grid_y + (k // grid_cols) * cell_h) for k in range(num_joints))
    height = grid_y + rows * cell_h if rows else grid_y - gap
    return SheetLayout(
        height=height, width=width, crop_hw=(crop_h, crop_w), zoom=zoom, top_zoom=top_zoom, font=font, gap=gap,
        caption_height=caption_h, header=Rect(0, 0, width, header_h), crop=top(0), gt=top(1), pred=top(2),
        joints=joints,
    )


def zoom_image(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with pixel centres on integer multiples (cell i -> i * scale), the codec's convention.

    cv2.resize centres pixels at half-integers instead, which would move a heatmap's peak by (stride - 1) / 2
    crop pixels; the edge beyond the last centre repeats the border.
    """
    out_h, out_w = size_hw
    in_h, in_w = image.shape[:2]
    matrix = np.array([[out_w / in_w, 0.0, 0.0], [0.0, out_h / in_h, 0.0]])
    return cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def overlay_heatmap(crop: np.ndarray, heatmap: np.ndarray, cmap: str = "hot", alpha: float = 0.5,
                    outline: bool = False) -> np.ndarray:
    """The crop with ``heatmap`` (any resolution, resized to the crop) blended on in colour map ``cmap``.

    Each pixel's blend weight is ``alpha`` times the heatmap value (clipped to [0, 1]), so where the map is zero
    the crop shows unchanged and a weak peak looks weak. A weak peak blended on a dark crop is nearly invisible
    (most maps are dark at low values), so ``outline`` also rings the map at half its own peak in the map's
    bright marker colour.
    """
    values = np.clip(zoom_image(np.asarray(heatmap, dtype=np.float32), crop.shape[:2]), 0.0, 1.0)
    weight = (alpha * values)[..., None]
    blended = crop.astype(np.float32) * (1.0 - weight) + apply_colormap(values, cmap).astype(np.float32) * weight
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    peak = float(values.max())
    if outline and peak > 0.02:
        mask = (values >= peak / 2).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, colormap_color(cmap, _MARKER_LEVEL), 1, cv2.LINE_AA)
    return out


def heatmap_sheet(
    crop: np.ndarray,
    joint_names: list[str],
    gt_heatmaps: np.ndarray | None = None,
    pred_heatmaps: np.ndarray | None = None,
    gt_joints: np.ndarray | None = None,
    pred_joints: np.ndarray | None = None,
    oks_terms: np.ndarray | None = None,
    joints: list[int] | None = None,
    gt_cmap: str = "winter",
    pred_cmap: str = "hot",
    alpha: float = 0.5,
    title: str = "",
    columns: int = 6,
    zoom: int | None = None,
    top_zoom: int | None = None,
    outline: bool = False,
) -> np.ndarray:
    """One RGB sheet comparing GT and predicted heatmaps on ``crop`` (h, w, 3) uint8, the network input.

    Heatmaps are (J, hh, hw); ``gt_joints`` (J, 3) x, y, visible and ``pred_joints`` (J, 3) x, y, score are in
    crop pixels; ``oks_terms`` (J,) are the per-joint OKS terms. Whatever is None is left out (GT-only and
    prediction-only sheets), and markers are drawn only from the joint arrays, never guessed from the maps.
    ``joints`` picks and orders the joint panels (default all); layout as ``sheet_layout``; ``outline`` as
    ``overlay_heatmap``.
    """
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        raise ValueError(f"crop must be (h, w, 3) uint8, got {crop.shape} {crop.dtype}")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    num = len(joint_names)
    gt_heatmaps, pred_heatmaps, gt_joints, pred_joints, oks_terms = (
        None if a is None else np.asarray(a, dtype=np.float32)
        for a in (gt_heatmaps, pred_heatmaps, gt_joints, pred_joints, oks_terms)
    )
    for name, array in (("gt_heatmaps", gt_heatmaps), ("pred_heatmaps", pred_heatmaps), ("gt_joints", gt_joints),
                        ("pred_joints", pred_joints), ("oks_terms", oks_terms)):
        if array is not None and len(array) != num:
            raise ValueError(f"{name} has {len(array)} joints, joint_names {num}")
    shown = list(range(num)) if joints is None else [int(j) for j in joints]
    if any(not 0 <= j < num for j in shown):
        raise ValueError(f"joints {shown} out of range for {num} joints")
    gt_color = colormap_color(gt_cmap, _MARKER_LEVEL)
    pred_color = colormap_color(pred_cmap, _MARKER_LEVEL)

    layout = sheet_layout(len(shown), crop.shape[:2], columns, zoom, top_zoom)
    sheet = np.empty((layout.height, layout.width, 3), np.uint8)
    sheet[:] = BACKGROUND
    base = zoom_image(crop, (crop.shape[0] * layout.zoom, crop.shape[1] * layout.zoom))
    top_base = zoom_image(crop, (layout.crop.h, layout.crop.w))
    marker = max(4, crop.shape[1] * layout.zoom // 36)
    has_gt = gt_heatmaps is not None or gt_joints is not None
    has_pred = pred_heatmaps is not None or pred_joints is not None

    def panel(rect: Rect, image: np.ndarray) -> None:
        sheet[rect.y:rect.y + rect.h, rect.x:rect.x + rect.w] = image

    def gt_marker(rect: Rect, j: int, size: int) -> None:
        if gt_joints is not None and gt_joints[j, 2] > 0:
            _ring(sheet, layout.to_sheet(rect, *gt_joints[j, :2]), size, gt_color, rect)

    def pred_marker(rect: Rect, j: int, size: int) -> None:
        # A peak of score <= 0 has no location (the decoder puts it at 0, 0): mark nothing.
        if pred_joints is not None and pred_joints[j, 2] > 0:
            _cross(sheet, layout.to_sheet(rect, *pred_joints[j, :2]), size, pred_color, rect)

    notes = ", ".join(note for note, given in (("ks: OKS term", oks_terms is not None),
                                                ("pred: score", pred_joints is not None)) if given)
    _header(sheet, layout, title, notes, gt_cmap if has_gt else None, pred_cmap if has_pred else None,
            gt_color, pred_color)

    panel(layout.crop, top_base)
    _caption(sheet, layout, layout.crop, f"input crop {crop.shape[1]}x{crop.shape[0]}", "", [])
    what = "all joints" if len(shown) == num else f"{len(shown)} joint{'s' * (len(shown) != 1)}"
    for rect, present, label, maps, cmap, draw_marker in (
        (layout.gt, has_gt, "ground truth", gt_heatmaps, gt_cmap, gt_marker),
        (layout.pred, has_pred, "prediction", pred_heatmaps, pred_cmap, pred_marker),
    ):
        if not present:
            _empty_panel(sheet, layout, rect, f"no {label}")
            continue
        image = top_base if maps is None or not shown else overlay_heatmap(
            top_base, np.max(maps[shown], axis=0), cmap, alpha, outline)
        panel(rect, image)
        for j in shown:
            draw_marker(rect, j, marker)
        _caption(sheet, layout, rect, f"{label}, {what}", "", [])

    for rect, j in zip(layout.joints, shown):
        image = base
        if gt_heatmaps is not None:
            image = overlay_heatmap(image, gt_heatmaps[j], gt_cmap, alpha, outline)
        if pred_heatmaps is not None:
            image = overlay_heatmap(image, pred_heatmaps[j], pred_cmap, alpha, outline)
        panel(rect, image)
        gt_marker(rect, j, marker)
        pred_marker(rect, j, marker)
        second: list[tuple[str, tuple[int, int, int]]] = []
        if pred_joints is not None:
            second.append((f"pred {pred_joints[j, 2]:.2f}", pred_color))
        if gt_joints is not None:
            second.append(("GT" if gt_joints[j, 2] > 0 else "no GT", gt_color if gt_joints[j, 2] > 0 else MUTED))
        ks = f"ks {oks_terms[j]:.2f}" if oks_terms is not None and np.isfinite(oks_terms[j]) else ""
        _caption(sheet, layout, rect, joint_names[j], ks, second)
    return sheet


def _ring(image: np.ndarray, center: tuple[float, float], radius: int, color: tuple[int, int, int], clip: Rect) -> None:
    """The GT marker: an outlined ring, so the heatmap under its centre stays visible."""
    if not _inside(center, clip):
        return
    c = (int(round(center[0] * 16)), int(round(center[1] * 16)))
    cv2.circle(image, c, radius * 16, _OUTLINE, 4, cv2.LINE_AA, 4)
    cv2.circle(image, c, radius * 16, color, 2, cv2.LINE_AA, 4)


def _cross(image: np.ndarray, center: tuple[float, float], size: int, color: tuple[int, int, int], clip: Rect) -> None:
    """The prediction marker: an outlined diagonal cross, distinct from the GT ring even where they coincide."""
    if not _inside(center, clip):
        return
    x, y = center
    for width, col in ((4, _OUTLINE), (2, color)):
        for dx in (-size, size):
            p0 = (int(round((x - dx) * 16)), int(round((y - size) * 16)))
            p1 = (int(round((x + dx) * 16)), int(round((y + size) * 16)))
            cv2.line(image, p0, p1, col, width, cv2.LINE_AA, 4)


def _inside(point: tuple[float, float], rect: Rect) -> bool:
    """Markers off the panel would scribble on its neighbours; joints outside the crop are simply not marked."""
    x, y = point
    return bool(np.isfinite(point).all()) and rect.x <= x < rect.x + rect.w and rect.y <= y < rect.y + rect.h


def _caption(
    sheet: np.ndarray, layout: SheetLayout, rect: Rect, name: str, right: str,
    second: list[tuple[str, tuple[int, int, int]]],
) -> None:
    """Two caption lines under a panel: name (left) and ``right`` (right-aligned), then coloured items."""
    cap = layout.caption(rect)
    pad = layout.gap // 2
    font = layout.font
    right_w = text_size(right, font)[0] if right else 0
    name_font = fit_scale(name, cap.w - right_w - 3 * pad, font)
    _, line_h, base = text_size("Ag", font)
    draw_text(sheet, name, (cap.x, cap.y + pad), name_font, TEXT)
    if right:
        draw_text(sheet, right, (cap.x + cap.w - right_w, cap.y + pad), font, TEXT)
    x = cap.x
    y = cap.y + pad + line_h + base + pad
    for text, color in second:
        x += draw_text(sheet, text, (x, y), fit_scale(text, cap.x + cap.w - x, font), color)[0] + 3 * pad


def _empty_panel(sheet: np.ndarray, layout: SheetLayout, rect: Rect, message: str) -> None:
    """A placeholder that says what is missing, so the top row keeps its places in GT- or prediction-only sheets."""
    sheet[rect.y:rect.y + rect.h, rect.x:rect.x + rect.w] = PANEL
    width, height, _ = text_size(message, layout.font)
    draw_text(sheet, message, (rect.x + (rect.w - width) // 2, rect.y + (rect.h - height) // 2), layout.font, MUTED)


def _header(
    sheet: np.ndarray, layout: SheetLayout, title: str, notes: str, gt_cmap: str | None, pred_cmap: str | None,
    gt_color: tuple[int, int, int], pred_color: tuple[int, int, int],
) -> None:
    """Title, then one legend line: each colour map as a small bar with its marker and meaning, then ``notes``;
    both shrink to the sheet's width rather than run off it."""
    gap, font = layout.gap, layout.font
    _, title_h, title_base = text_size("Ag", font * 1.35, 2)
    if title:
        draw_text(sheet, title, (gap, gap), fit_scale(title, layout.width - 2 * gap, font * 1.35, 2), TEXT, 2)
    y = gap + title_h + title_base + gap
    items = [(cmap, color, label, marker) for cmap, color, label, marker in (
        (gt_cmap, gt_color, "GT heatmap, GT joint", _ring), (pred_cmap, pred_color, "predicted heatmap, peak", _cross),
    ) if cmap is not None]

    def legend(scale: float, draw: bool) -> int:
        """Lay the legend out at font ``scale``; draw it or just measure its width."""
        _, text_h, _ = text_size("Ag", scale)
        bar_w, size = 4 * text_h, max(3, text_h // 2)
        x = gap
        for cmap, color, label, draw_marker in items:
            if draw:
                ramp = np.linspace(0.0, 1.0, bar_w, dtype=np.float32)[None, :].repeat(text_h, axis=0)
                sheet[y:y + text_h, x:x + bar_w] = apply_colormap(ramp, cmap)
                draw_marker(sheet, (x + bar_w + gap + size, y + text_h / 2), size, color, layout.header)
            x += bar_w + gap + 2 * size + gap
            x += (draw_text(sheet, label, (x, y), scale, TEXT)[0] if draw else text_size(label, scale)[0]) + 3 * gap
        if notes:
            x += draw_text(sheet, notes, (x, y), scale, MUTED)[0] if draw else text_size(notes, scale)[0]
        return x

    legend(font * min(1.0, (layout.width - gap) / legend(font, draw=False)), draw=True)
