"""The pictures of `eval --analyze`, drawn with OpenCV like every other hrpose plot (no matplotlib dependency):
the progressive precision-recall curves of Ronchi & Perona's figure 2, error types per joint, the worst people.

White background and the paper's colour code, so the figures read like the published ones.
"""

from __future__ import annotations

import cv2
import numpy as np

from hrpose_cli.core.keypoint_errors import LABELS, UNLABELLED
from hrpose_cli.core.schema import KeypointSchema, for_joints
from hrpose_cli.viz.draw import draw_poses, draw_text, fit_scale, text_size
from hrpose_cli.viz.plots import nice_ticks


def _hex(code: str) -> tuple[int, int, int]:
    return int(code[1:3], 16), int(code[3:5], 16), int(code[5:7], 16)


# coco-analyze's colours (ERROR_ANALYSIS.md section 8), RGB.
LABEL_COLORS: dict[str, tuple[int, int, int]] = {
    "good": _hex("#1ED88B"), "jitter": _hex("#8C4646"), "inversion": _hex("#D96459"),
    "swap": _hex("#F2AE72"), "miss": _hex("#F2E394"),
}
STAGE_STYLE: dict[str, tuple[str, tuple[int, int, int]]] = {
    "original": ("Orig. Dts.", (255, 255, 255)),
    "miss": ("w/o Miss", LABEL_COLORS["miss"]),
    "swap": ("w/o Swap", LABEL_COLORS["swap"]),
    "inversion": ("w/o Inv.", LABEL_COLORS["inversion"]),
    "jitter": ("w/o Jit.", LABEL_COLORS["jitter"]),
    "score": ("Opt. Score", _hex("#4F82BD")),
    "background_fp": ("w/o Bkg. FP", _hex("#8063A3")),
    "false_negatives": ("w/o FN", _hex("#2E8B57")),  # matplotlib's "seagreen"
}
WHITE, BLACK, GREY, LIGHT = (255, 255, 255), (20, 20, 20), (110, 110, 110), (225, 225, 225)
_SHIFT = 4


def _swatch(image: np.ndarray, x: int, y: int, size: int, color: tuple[int, int, int]) -> None:
    cv2.rectangle(image, (x, y), (x + size, y + size), color, -1)
    cv2.rectangle(image, (x, y), (x + size, y + size), GREY, 1)


def _pr_panel(stages: dict[str, tuple[float, np.ndarray]], title: str, size: int = 420) -> np.ndarray:
    """One panel: recall x precision, the area between consecutive stages filled with the later stage's colour."""
    font = 0.5
    _, th, tb = text_size("Ag", font)
    left, top, right = 52, 34, 18
    legend_rows = (len(stages) + 1) // 2
    height = top + size + 44 + legend_rows * (th + tb + 8) + 8
    image = np.full((height, left + size + right, 3), WHITE, np.uint8)
    draw_text(image, title, (left, 8), fit_scale(title, size, font * 1.1, 1), BLACK)
    bottom = top + size

    def to_px(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
        xy = np.stack([left + recall * size, bottom - precision * size], axis=-1)
        return np.rint(xy * (1 << _SHIFT)).astype(np.int32)

    recall = np.linspace(0.0, 1.0, 101)
    names = list(stages)
    for name in reversed(names):  # painter's order: each stage's region under its curve, later stages first
        curve = to_px(np.concatenate([recall, [1.0, 0.0]]), np.concatenate([stages[name][1], [0.0, 0.0]]))
        cv2.fillPoly(image, [curve.reshape(-1, 1, 2)], STAGE_STYLE[name][1], cv2.LINE_AA, _SHIFT)
    for tick in nice_ticks(0.0, 1.0, 6):
        x, y = int(round(left + tick * size)), int(round(bottom - tick * size))
        cv2.line(image, (x, top), (x, bottom), LIGHT, 1)
        cv2.line(image, (left, y), (left + size, y), LIGHT, 1)
        label = f"{tick:.1f}"
        w = text_size(label, font * 0.85)[0]
        draw_text(image, label, (x - w // 2, bottom + 5), font * 0.85, GREY)
        draw_text(image, label, (left - w - 6, y - th // 2), font * 0.85, GREY)
    for name in names:
        line = to_px(recall, stages[name][1])
        cv2.polylines(image, [line.reshape(-1, 1, 2)], False, BLACK, 1, cv2.LINE_AA, _SHIFT)
    cv2.rectangle(image, (left, top), (left + size, bottom), BLACK, 1)
    draw_text(image, "recall", (left + size // 2 - 20, bottom + th + 12), font, BLACK)
    y0 = bottom + 2 * th + 24
    for k, name in enumerate(reversed(names)):  # listed from the perfect curve down, as the paper does
        column, row = divmod(k, legend_rows)
        x, y = left + column * (size // 2), y0 + row * (th + tb + 8)
        _swatch(image, x, y, th + tb, STAGE_STYLE[name][1])
        ap = stages[name][0]
        draw_text(image, f"[{ap:.3f}] {STAGE_STYLE[name][0]}" if ap >= 0 else f"[ - ] {STAGE_STYLE[name][0]}",
                  (x + th + tb + 6, y), font, BLACK)
    return image


def pr_figure(curves: dict[float, dict[str, tuple[float, np.ndarray]]], area: str = "all") -> np.ndarray:
    """The paper's figure 2: one progressive PR panel per OKS threshold, side by side, with a precision label."""
    panels = [_pr_panel(stages, f"OKS {oks:.2f}, area {area}, max 20 detections") for oks, stages in curves.items()]
    image = np.hstack(panels)
    label = np.full((image.shape[0], 26, 3), WHITE, np.uint8)
    flat = np.full((22, 90, 3), WHITE, np.uint8)
    draw_text(flat, "precision", (2, 2), 0.5, BLACK)
    turned = np.rot90(flat)
    label[34 + 210 - 45:34 + 210 + 45, 2:24] = turned
    return np.hstack([label, image])


def joint_bars(counts: np.ndarray, joint_names: tuple[str, ...] | list[str], width: int = 900) -> np.ndarray:
    """Stacked horizontal bars: each joint's labelled keypoints split into good / jitter / inversion / swap /
    miss (shares of that joint's count, printed at the right), with the overall split as the last bar."""
    rows = [*joint_names, "all joints"]
    matrix = np.vstack([counts, counts.sum(axis=0, keepdims=True)]).astype(np.float64)
    font = 0.5
    _, th, tb = text_size("Ag", font)
    row_h, name_w, count_w, top = th + tb + 10, max(text_size(n, font)[0] for n in rows) + 16, 90, 2 * (th + tb) + 24
    image = np.full((top + row_h * len(rows) + 12, width, 3), WHITE, np.uint8)
    x = 10
    for name in LABELS:
        _swatch(image, x, 10, th + tb, LABEL_COLORS[name])
        x += th + tb + 6 + draw_text(image, name, (x + th + tb + 6, 10), font, BLACK)[0] + 18
    bar_w = width - name_w - count_w - 10
    for k, (name, row) in enumerate(zip(rows, matrix)):
        y = top + k * row_h
        draw_text(image, name, (10, y + 3), font, BLACK)
        total = row.sum()
        x0 = name_w
        for value, label in zip(row, LABELS):
            if total <= 0 or value <= 0:
                continue
            x1 = x0 + value / total * bar_w
            cv2.rectangle(image, (int(round(x0)), y), (int(round(x1)), y + row_h - 4), LABEL_COLORS[label], -1)
            share = f"{value / total:.0%}"
            if text_size(share, font * 0.8)[0] + 4 < x1 - x0:
                ink = WHITE if sum(LABEL_COLORS[label]) < 400 else BLACK  # readable on the dark jitter brown
                draw_text(image, share, (int(x0) + 2, y + 4), font * 0.8, ink)
            x0 = x1
        cv2.rectangle(image, (name_w, y), (name_w + bar_w, y + row_h - 4), GREY, 1)
        draw_text(image, f"n = {int(total)}", (name_w + bar_w + 8, y + 3), font, BLACK)
    return image


def _crop_window(points: np.ndarray, bbox: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 around the GT box and the drawn points, 15% margin, inside the image."""
    x, y, w, h = bbox
    xs = np.concatenate([[x, x + w], points[:, 0]])
    ys = np.concatenate([[y, y + h], points[:, 1]])
    pad = 0.15 * max(w, h, 16)
    x0, x1 = max(0, int(xs.min() - pad)), min(shape[1], int(np.ceil(xs.max() + pad)))
    y0, y1 = max(0, int(ys.min() - pad)), min(shape[0], int(np.ceil(ys.max() + pad)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def person_tile(image_rgb: np.ndarray, gt: np.ndarray, pred: np.ndarray, labels: np.ndarray, bbox: np.ndarray,
                caption: str, height: int = 360, schema: KeypointSchema | None = None) -> np.ndarray:
    """One person: GT skeleton white, the prediction's skeleton coloured by side, each labelled predicted joint
    ringed in its error type's colour and joined to its GT joint; caption above. ``schema``: the keypoint set
    (None: that of K joints without one)."""
    schema = schema if schema is not None else for_joints(len(gt))
    labelled = gt[:, 2] > 0
    on_image = np.isfinite(pred[:, :2]).all(axis=1) & (np.abs(pred[:, :2]) < 1e5).all(axis=1)
    x0, y0, x1, y1 = _crop_window(np.vstack([gt[labelled, :2], pred[on_image, :2]]), bbox, image_rgb.shape[:2])
    scale = height / (y1 - y0)
    crop = cv2.resize(image_rgb[y0:y1, x0:x1], (max(1, int(round((x1 - x0) * scale))), height),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    crop = (crop * 0.75).astype(np.uint8)  # dimmed so that the marks stand out
    g = (gt[:, :2] - [x0, y0]) * scale
    p = pred.copy()
    p[:, :2] = (pred[:, :2] - [x0, y0]) * scale
    if schema.skeleton:
        for a, b in schema.skeleton:
            if labelled[a] and labelled[b]:
                cv2.line(crop, tuple(np.rint(g[a]).astype(int)), tuple(np.rint(g[b]).astype(int)), WHITE, 2, cv2.LINE_AA)
        shown = p.copy()
        shown[:, 2] = on_image.astype(float)
        crop = draw_poses(crop, shown[None], score_threshold=0.5, schema=schema)
    for j in np.flatnonzero(labelled):
        cv2.circle(crop, tuple(np.rint(g[j]).astype(int)), 3, WHITE, -1, cv2.LINE_AA)
        if labels[j] == UNLABELLED or not on_image[j]:
            continue
        color = LABEL_COLORS[LABELS[labels[j]]]
        centre = tuple(np.rint(p[j, :2]).astype(int))
        if LABELS[labels[j]] != "good":
            cv2.line(crop, tuple(np.rint(g[j]).astype(int)), centre, color, 1, cv2.LINE_AA)
        cv2.circle(crop, centre, 8, color, 2, cv2.LINE_AA)
    font = 0.45
    _, th, tb = text_size("Ag", font)
    tile = np.full((height + th + tb + 8, max(crop.shape[1], text_size(caption, font)[0] + 4), 3), WHITE, np.uint8)
    tile[th + tb + 8:, :crop.shape[1]] = crop
    draw_text(tile, caption, (2, 3), font, BLACK)
    return tile


def worst_sheet(tiles: list[np.ndarray], columns: int = 3, width: int = 1200) -> np.ndarray:
    """Tiles in rows of ``columns``, each scaled to fit its cell, and a legend of the error colours below."""
    cell_w = width // columns
    cells = []
    for tile in tiles:
        scale = min(1.0, cell_w / tile.shape[1])
        resized = cv2.resize(tile, (int(tile.shape[1] * scale), int(tile.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        cells.append(resized)
    cell_h = max(c.shape[0] for c in cells) + 8
    rows = -(-len(cells) // columns)
    font = 0.5
    _, th, tb = text_size("Ag", font)
    sheet = np.full((rows * cell_h + th + tb + 20, width, 3), WHITE, np.uint8)
    for k, cell in enumerate(cells):
        r, c = divmod(k, columns)
        sheet[r * cell_h:r * cell_h + cell.shape[0], c * cell_w:c * cell_w + cell.shape[1]] = cell
    x, y = 10, rows * cell_h + 8
    x += draw_text(sheet, "GT: white skeleton; prediction: coloured skeleton, joints ringed by type:", (x, y), font,
                   BLACK)[0] + 12
    for name in LABELS:
        cv2.circle(sheet, (x + 6, y + th // 2 + 2), 7, LABEL_COLORS[name], 2, cv2.LINE_AA)
        x += 18 + draw_text(sheet, name, (x + 16, y), font, BLACK)[0] + 14
    return sheet
