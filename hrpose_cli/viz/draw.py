"""Skeletons on images, text helpers for the other drawings, and the one atomic image writer.

Drawing functions take RGB uint8 arrays and return new ones; only ``write_image`` touches files.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from hrpose_cli.core.schema import COCO17, KeypointSchema, for_joints
from hrpose_cli.errors import HrposeError
from hrpose_cli.viz.colormaps import BOX, SIDE_COLORS

FONT = cv2.FONT_HERSHEY_SIMPLEX
_SHIFT = 4  # fractional bits for sub-pixel drawing: cv2 takes integer points scaled by 2**shift
_ONE = 1 << _SHIFT
_OUTLINE = (15, 15, 18)
_FAR = 1e6  # coordinates beyond this many pixels would overflow cv2's fixed-point ints; such points are skipped
PNG_COMPRESSION = 3  # zlib level for written PNGs (lossless at every level)


def _fixed(x: float, y: float) -> tuple[int, int]:
    """A sub-pixel point in OpenCV's fixed-point form, so thin anti-aliased lines land where they should."""
    return int(round(x * _ONE)), int(round(y * _ONE))


def text_size(text: str, scale: float, thickness: int = 1) -> tuple[int, int, int]:
    """(width, height above baseline, baseline depth) of ``text`` in pixels."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    return width, height, baseline


def draw_text(
    image: np.ndarray,
    text: str,
    top_left: tuple[int, int],
    scale: float,
    color: tuple[int, int, int],
    thickness: int = 1,
    background: tuple[int, int, int] | None = None,
    pad: int = 0,
) -> tuple[int, int]:
    """Put ``text`` with its box's top-left corner at ``top_left`` (cv2 anchors at the baseline, which makes
    layout awkward); an optional filled background with ``pad`` pixels around. Returns the box's (width, height)."""
    width, height, baseline = text_size(text, scale, thickness)
    x, y = top_left
    if background is not None:
        cv2.rectangle(image, (x, y), (x + width + 2 * pad, y + height + baseline + 2 * pad), background, -1)
    cv2.putText(image, text, (x + pad, y + pad + height), FONT, scale, color, thickness, cv2.LINE_AA)
    return width + 2 * pad, height + baseline + 2 * pad


def fit_scale(text: str, max_width: int, scale: float, thickness: int = 1) -> float:
    """The largest font scale <= ``scale`` at which ``text`` fits in ``max_width`` pixels, so labels never spill."""
    width = text_size(text, scale, thickness)[0]
    return scale if width <= max_width else scale * max_width / max(width, 1)


class PoseStyle(NamedTuple):
    """Sizes in pixels (font: cv2 scale) for drawing on one image."""

    line: int
    radius: int
    box: int
    font: float
    font_thickness: int


def pose_style(height: int, width: int) -> PoseStyle:
    """Line width, joint radius and font size for an image, proportional to its longer side.

    One unit per 640 pixels keeps a 200 px thumbnail at hairlines and a 4K frame at lines about 12 px wide.
    """
    unit = max(height, width) / 640.0
    line = max(1, int(round(2 * unit)))
    return PoseStyle(
        line=line,
        radius=max(2, int(round(1.6 * line + 1))),
        box=max(1, int(round(0.75 * line))),
        font=max(0.35, 0.42 * unit),
        font_thickness=max(1, int(round(0.7 * unit))),
    )


def draw_poses(
    image: np.ndarray,
    keypoints: np.ndarray,
    boxes: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    score_threshold: float = 0.3,
    box_colours: Sequence[tuple[int, int, int]] | None = None,
    schema: KeypointSchema | None = None,
) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) RGB uint8 with each person's skeleton, box and score drawn.

    ``schema`` is the keypoint set (its skeleton, joints coloured by side; None: that of a model file without
    one, COCO-17 for 17 joints). ``keypoints`` (N, K, 3) holds x, y, score in image pixels; joints (and limbs touching them) scoring below
    ``score_threshold`` are left out, because a confident-looking line through a guessed joint misleads.
    ``boxes`` (N, 4) are COCO xywh; ``scores`` (N,) label the boxes (or the skeletons when there are no boxes).
    ``box_colours`` (N RGB triples) colour each box and its label, e.g. by video track.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if schema is None:
        schema = for_joints(keypoints.shape[-2] if keypoints.ndim == 3 else COCO17.num_joints)
    keypoints = keypoints.reshape(-1, schema.num_joints, 3)
    persons = len(keypoints)
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) != persons:
            raise ValueError(f"{len(boxes)} boxes for {persons} persons")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != persons:
            raise ValueError(f"{len(scores)} scores for {persons} persons")

    out = np.ascontiguousarray(image.copy())
    style = pose_style(*out.shape[:2])
    line, radius = style.line, style.radius
    for n in range(persons):
        if boxes is not None and _drawable(boxes[n]):
            x, y, w, h = boxes[n]
            colour = BOX if box_colours is None else tuple(int(c) for c in box_colours[n])
            cv2.rectangle(out, _fixed(x, y), _fixed(x + w, y + h), colour, style.box, cv2.LINE_AA, _SHIFT)
        kp = keypoints[n]
        shown = np.array([_drawable(p[:2]) for p in kp]) & (kp[:, 2] >= score_threshold)
        for a, b in schema.skeleton:
            if shown[a] and shown[b]:
                color = SIDE_COLORS[schema.limb_side(a, b)]
                pa, pb = _fixed(*kp[a, :2]), _fixed(*kp[b, :2])
                cv2.line(out, pa, pb, _OUTLINE, line + max(2, line // 2), cv2.LINE_AA, _SHIFT)
                cv2.line(out, pa, pb, color, line, cv2.LINE_AA, _SHIFT)
        for j in np.flatnonzero(shown):
            center = _fixed(*kp[j, :2])
            cv2.circle(out, center, radius * _ONE, _OUTLINE, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(out, center, (radius - max(1, line // 2)) * _ONE, SIDE_COLORS[schema.side(j)], -1,
                       cv2.LINE_AA, _SHIFT)
        if scores is not None and np.isfinite(scores[n]):
            anchor = boxes[n, :2] if boxes is not None and _drawable(boxes[n]) else _top_left(kp[shown])
            if anchor is not None:
                _score_label(out, f"{scores[n]:.2f}", anchor, style, BOX if box_colours is None else box_colours[n])
    return out


def _drawable(values: np.ndarray) -> bool:
    """Finite and within reach of cv2's fixed-point coordinates."""
    return bool(np.all(np.abs(values) < _FAR))


def _top_left(points: np.ndarray) -> np.ndarray | None:
    """Where a box-less person's score goes: the top-left of its drawn joints (None when none are drawn)."""
    return points[:, :2].min(axis=0) if len(points) else None


def _score_label(image: np.ndarray, text: str, anchor: np.ndarray, style: PoseStyle,
                 background: tuple[int, int, int] = BOX) -> None:
    """A small filled label just above ``anchor`` (inside the image when there is no room above)."""
    scale, thickness = style.font, style.font_thickness
    width, height, baseline = text_size(text, scale, thickness)
    pad = max(1, int(round(height * 0.25)))
    box_w, box_h = width + 2 * pad, height + baseline + 2 * pad
    img_h, img_w = image.shape[:2]
    x = int(np.clip(round(anchor[0]), 0, max(img_w - box_w, 0)))
    y = int(round(anchor[1])) - box_h
    if y < 0:
        y = int(np.clip(round(anchor[1]), 0, max(img_h - box_h, 0)))
    draw_text(image, text, (x, y), scale, (20, 20, 20), thickness, background=tuple(int(c) for c in background), pad=pad)


def write_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB (or grey) uint8 image, format from the suffix, atomically: a reader (or a crash) never sees
    half a file, and an existing image is replaced only by a complete one. Returns the path."""
    path = Path(path)
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    suffix = path.suffix or ".png"
    # PNG at zlib level 3 instead of OpenCV's default: a heatmap sheet shrinks from 5.0 to 1.9 MB for 0.1 s more.
    params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION] if suffix.lower() == ".png" else []
    try:
        ok, encoded = cv2.imencode(suffix, image, params)
    except cv2.error as exc:
        raise HrposeError(f"{path}: cannot write image (unsupported format '{path.suffix}')") from exc
    if not ok:
        raise HrposeError(f"{path}: cannot write image (encoding failed)")
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open with 0o666 so the finished file gets the usual umask permissions (mkstemp would leave 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(encoded.tobytes())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise HrposeError(f"{path}: cannot write image ({exc.strerror or exc})") from exc
    return path
