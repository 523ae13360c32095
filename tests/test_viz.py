"""Drawing: skeletons leave low-score joints out and scale with the image, heatmap sheets put each joint's peak
where the codec says the joint is, colour maps fail with a useful message, and files are written atomically."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from hrpose_cli.core.schema import COCO17

KEYPOINT_NAMES = COCO17.names

NUM_JOINTS = COCO17.num_joints
from hrpose_cli.errors import HrposeError
from hrpose_cli.viz.colormaps import BOX, PANEL, SIDE_COLORS, colormap_color, colormap_lut
from hrpose_cli.viz.draw import draw_poses, write_image
from hrpose_cli.viz.heatmaps import heatmap_sheet, overlay_heatmap, sheet_layout
from hrpose_cli.viz.plots import nice_ticks, plot_curves, render_curves

NAMES = list(KEYPOINT_NAMES)
CROP_HW = (256, 192)
STRIDE = 4
HM_HW = (CROP_HW[0] // STRIDE, CROP_HW[1] // STRIDE)

# A standing person in box-relative coordinates (x, y in [0, 1]), COCO joint order.
POSE = np.array([
    [0.50, 0.10], [0.53, 0.08], [0.47, 0.08], [0.57, 0.10], [0.43, 0.10], [0.65, 0.25], [0.35, 0.25],
    [0.72, 0.42], [0.28, 0.42], [0.80, 0.60], [0.25, 0.57], [0.60, 0.58], [0.40, 0.58], [0.62, 0.78],
    [0.38, 0.78], [0.63, 0.97], [0.37, 0.97],
])


def person(box: tuple[float, float, float, float], score: float = 0.9) -> np.ndarray:
    """(17, 3) keypoints of POSE placed in ``box`` (xywh), all with ``score``."""
    x, y, w, h = box
    return np.c_[POSE * [w, h] + [x, y], np.full(NUM_JOINTS, score)]


def grey(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), 100, np.uint8)


def near(image: np.ndarray, x: float, y: float, r: int) -> np.ndarray:
    return image[int(y) - r:int(y) + r + 1, int(x) - r:int(x) + r + 1]


# ---------------------------------------------------------------- draw_poses


def test_low_score_joints_and_their_limbs_are_left_out():
    image = grey(400, 300)
    kp = person((50, 40, 200, 320))
    kp[9, 2] = 0.1  # left wrist, away from every other joint and limb
    out = draw_poses(image, kp[None], score_threshold=0.3)
    assert np.array_equal(image, grey(400, 300)), "input must not be modified"
    assert np.array_equal(near(out, *kp[9, :2], 4), near(image, *kp[9, :2], 4))
    for j in (0, 7, 15):  # nose, left elbow (the wrist's neighbour), left ankle
        assert (near(out, *kp[j, :2], 2) != 100).any(), j
    # the elbow-wrist limb is gone too: its midpoint shows the background
    mid = (kp[7, :2] + kp[9, :2]) / 2
    assert np.array_equal(near(out, *mid, 2), near(image, *mid, 2))


def test_limbs_and_joints_take_their_side_colour():
    out = draw_poses(grey(400, 300), person((50, 40, 200, 320))[None])
    left_hip, right_hip = person((50, 40, 200, 320))[[11, 12], :2]
    assert tuple(out[int(round(left_hip[1])), int(round(left_hip[0]))]) == SIDE_COLORS["left"]
    assert tuple(out[int(round(right_hip[1])), int(round(right_hip[0]))]) == SIDE_COLORS["right"]


def stroke_width(height: int, width: int) -> int:
    """Pixels changed along a short vertical line through the middle of the (horizontal) shoulder limb."""
    box = (0.2 * width, 0.1 * height, 0.6 * width, 0.8 * height)
    kp = person(box)
    out = draw_poses(grey(height, width), kp[None])
    x, y = (kp[5, :2] + kp[6, :2]) / 2
    reach = int(0.05 * height)
    return int((out[int(y) - reach:int(y) + reach, int(x)] != 100).any(axis=1).sum())


def test_drawing_scales_with_image_size():
    small, hd, uhd = stroke_width(150, 200), stroke_width(1080, 1920), stroke_width(2160, 3840)
    assert 1 <= small <= 8  # a thin line with its dark outline, anti-aliased
    assert uhd > hd > small
    assert uhd >= 2.5 * small


def test_box_and_score_label_are_drawn():
    image = grey(300, 300)
    box = (60.0, 80.0, 150.0, 200.0)
    out = draw_poses(image, person(box)[None], boxes=np.array([box]), scores=np.array([0.87]))
    # the box's top edge, away from any joint, has the box colour (give or take anti-aliasing)
    assert np.abs(out[80, 135].astype(int) - BOX).max() <= 30
    # the score label sits just above the box's top-left corner, on a box-coloured background
    label = out[50:80, 60:120]
    assert (np.abs(label.astype(int) - BOX).max(axis=2) == 0).sum() > 50
    assert (label.sum(axis=2) < 150).any(), "label text (dark) missing"


def test_score_label_without_box_and_nothing_to_draw():
    out = draw_poses(grey(200, 200), person((40, 40, 100, 140))[None], scores=np.array([0.5]))
    assert (np.abs(out.astype(int) - BOX).max(axis=2) == 0).sum() > 20
    empty = draw_poses(grey(50, 60), np.zeros((0, NUM_JOINTS, 3)))
    assert np.array_equal(empty, grey(50, 60))


# ---------------------------------------------------------------- heatmap sheets


def gaussian_maps(centres: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """(J, 64, 48) unnormalised Gaussians peaking (value 1) on integer heatmap cells ``centres`` (J, 2)."""
    ys, xs = np.mgrid[0:HM_HW[0], 0:HM_HW[1]]
    d2 = (xs[None] - centres[:, 0, None, None]) ** 2 + (ys[None] - centres[:, 1, None, None]) ** 2
    return np.exp(-d2 / (2 * sigma**2)).astype(np.float32)


# Distinct heatmap cells per joint, away from the borders: joint j peaks at cell (6 + 2j, 8 + 3j).
CELLS = np.stack([6 + 2 * np.arange(NUM_JOINTS), 8 + 3 * np.arange(NUM_JOINTS)], axis=1).astype(float)
JOINTS_CROP = np.c_[CELLS * STRIDE, np.full(NUM_JOINTS, 2.0)]  # the same joints in crop pixels, visible


def panel(sheet: np.ndarray, rect) -> np.ndarray:
    return sheet[rect.y:rect.y + rect.h, rect.x:rect.x + rect.w]


def test_sheet_layout_for_all_joints():
    black = np.zeros((*CROP_HW, 3), np.uint8)
    sheet = heatmap_sheet(black, NAMES, gaussian_maps(CELLS), gaussian_maps(CELLS), JOINTS_CROP, JOINTS_CROP,
                          np.ones(NUM_JOINTS), title="t")
    layout = sheet_layout(NUM_JOINTS, CROP_HW)
    assert sheet.shape == (layout.height, layout.width, 3) and sheet.dtype == np.uint8
    assert layout.zoom == 2 and len(layout.joints) == NUM_JOINTS
    assert {r.x for r in layout.joints} == {layout.joints[c].x for c in range(6)}  # 6 columns
    assert len({r.y for r in layout.joints}) == 3  # 3 rows
    rects = [layout.crop, layout.gt, layout.pred, *layout.joints]
    for r in rects:
        assert 0 <= r.x and r.x + r.w <= layout.width and layout.header.h <= r.y
        assert r.y + r.h + layout.caption_height <= layout.height
    assert all((r.w, r.h) == (CROP_HW[1] * 2, CROP_HW[0] * 2) for r in layout.joints)
    assert all((r.w, r.h) == (CROP_HW[1] * layout.top_zoom, CROP_HW[0] * layout.top_zoom)
               for r in (layout.crop, layout.gt, layout.pred))
    for i, a in enumerate(rects):  # no two panels (with their captions) overlap
        for b in rects[i + 1:]:
            apart_x = a.x + a.w <= b.x or b.x + b.w <= a.x
            apart_y = a.y + a.h + layout.caption_height <= b.y or b.y + b.h + layout.caption_height <= a.y
            assert apart_x or apart_y, (a, b)
    # the crop panel is the crop, zoomed
    assert not panel(sheet, layout.crop).any()


def brightest(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argmax, centroid of the >= 90%-of-max region) of the brightness (sum over channels), as (x, y)."""
    brightness = image.astype(int).sum(axis=2)
    y, x = np.unravel_index(np.argmax(brightness), brightness.shape)
    ys, xs = np.nonzero(brightness >= 0.9 * brightness.max())
    return np.array([x, y]), np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("joints", [None, [9, 0, 16]])
def test_gt_panel_peak_lies_at_its_joint(joints):
    black = np.zeros((*CROP_HW, 3), np.uint8)
    sheet = heatmap_sheet(black, NAMES, gt_heatmaps=gaussian_maps(CELLS), joints=joints, gt_cmap="winter")
    shown = list(range(NUM_JOINTS)) if joints is None else joints
    layout = sheet_layout(len(shown), CROP_HW)
    assert sheet.shape[:2] == (layout.height, layout.width)
    for rect, j in zip(layout.joints, shown):
        # Hand-check: cell (6 + 2j, 8 + 3j) is crop pixel 4x that, and panel pixel 2x the crop pixel.
        expected = np.array([(6 + 2 * j) * STRIDE * 2, (8 + 3 * j) * STRIDE * 2])
        peak, centre = brightest(panel(sheet, rect))
        assert np.abs(centre - expected).max() <= 1.0, (j, centre, expected)
        assert np.abs(peak - expected).max() <= STRIDE, (j, peak, expected)
    if joints == [9, 0, 16]:
        assert np.allclose(brightest(panel(sheet, layout.joints[0]))[1], [(6 + 18) * 8, (8 + 27) * 8], atol=1)


def test_combined_gt_panel_shows_every_shown_joint():
    black = np.zeros((*CROP_HW, 3), np.uint8)
    sheet = heatmap_sheet(black, NAMES, gt_heatmaps=gaussian_maps(CELLS), joints=[2, 11])
    layout = sheet_layout(2, CROP_HW)
    combined = panel(sheet, layout.gt).astype(int).sum(axis=2)
    zoom = layout.top_zoom
    for j in range(NUM_JOINTS):
        x, y = (CELLS[j] * STRIDE * zoom).astype(int)
        assert (combined[y, x] > 100) == (j in (2, 11)), j


def marker_centre(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray | None:
    ys, xs = np.nonzero((image == np.array(color)).all(axis=2))
    return None if len(xs) == 0 else np.array([xs.mean(), ys.mean()])


def test_markers_sit_on_the_joints_and_modes_draw_only_what_is_given():
    black = np.zeros((*CROP_HW, 3), np.uint8)
    gt_color, pred_color = colormap_color("winter", 0.9), colormap_color("hot", 0.9)
    pred = JOINTS_CROP.copy()
    pred[:, 0] += 10  # predictions 10 crop pixels right of the GT
    pred[:, 2] = 0.8
    layout = sheet_layout(NUM_JOINTS, CROP_HW)

    gt_only = heatmap_sheet(black, NAMES, gt_joints=JOINTS_CROP)
    pred_only = heatmap_sheet(black, NAMES, pred_joints=pred)
    for j, rect in enumerate(layout.joints):
        gt_centre = marker_centre(panel(gt_only, rect), gt_color)
        assert gt_centre is not None and np.abs(gt_centre - JOINTS_CROP[j, :2] * 2).max() <= 1.0
        assert marker_centre(panel(gt_only, rect), pred_color) is None
        pred_centre = marker_centre(panel(pred_only, rect), pred_color)
        assert pred_centre is not None and np.abs(pred_centre - pred[j, :2] * 2).max() <= 1.0
        assert marker_centre(panel(pred_only, rect), gt_color) is None
    # the missing side's combined panel is a placeholder, not a crop
    assert (panel(gt_only, layout.pred) == PANEL).all(axis=2).mean() > 0.95
    assert (panel(pred_only, layout.gt) == PANEL).all(axis=2).mean() > 0.95


def test_gt_and_pred_overlays_use_distinct_colour_maps():
    black = np.zeros((*CROP_HW, 3), np.uint8)
    maps = gaussian_maps(CELLS)
    gt = heatmap_sheet(black, NAMES, gt_heatmaps=maps, joints=[5])
    pred = heatmap_sheet(black, NAMES, pred_heatmaps=maps, joints=[5])
    rect = sheet_layout(1, CROP_HW).joints[0]
    x, y = (CELLS[5] * STRIDE * 2).astype(int)
    assert panel(gt, rect)[y, x].argmax() != panel(pred, rect)[y, x].argmax()  # green vs yellow-white at the peak


def test_overlay_leaves_zero_areas_alone():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (*CROP_HW, 3), dtype=np.uint8)
    assert np.array_equal(overlay_heatmap(crop, np.zeros(HM_HW), "jet", 0.5), crop)
    blob = gaussian_maps(CELLS[:1], sigma=1.0)[0]
    out = overlay_heatmap(crop, blob, "jet", 0.5)
    assert np.array_equal(out[150:, 100:], crop[150:, 100:])
    assert not np.array_equal(out[32, 24], crop[32, 24])


def test_colour_maps_by_name():
    assert colormap_lut("Turbo").shape == (256, 3)
    with pytest.raises(HrposeError, match="unknown colour map 'nope'.*viridis"):
        heatmap_sheet(np.zeros((*CROP_HW, 3), np.uint8), NAMES, pred_cmap="nope")


# ---------------------------------------------------------------- files and plots


def test_write_image_round_trip_and_atomic(tmp_path: Path):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = 200  # red
    target = tmp_path / "sub" / "a.png"
    write_image(target, np.zeros_like(rgb))
    write_image(target, rgb)
    back = cv2.imread(str(target), cv2.IMREAD_COLOR)
    assert np.array_equal(back[..., ::-1], rgb)
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]


def test_write_image_to_unwritable_folder(tmp_path: Path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(HrposeError, match=r"not_a_folder/out\.png: cannot write"):
        write_image(blocker / "out.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(HrposeError, match="cannot write"):
        write_image(tmp_path / "out.nope", np.zeros((4, 4, 3), np.uint8))


def test_plot_curves_writes_png_of_the_stated_size(tmp_path: Path):
    loss = [(e, 0.002 * 0.9**e) for e in range(1, 21)]
    ap = [(e, 0.05 * e) for e in range(2, 21, 2)] + [(21, float("nan"))]
    out = plot_curves({"loss": loss, "AP": ap}, "training", tmp_path / "curves.png", ylabel="value",
                      width=800, height=450)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cv2.imread(str(out)).shape == (450, 800, 3)
    assert render_curves({}, "empty").shape == (540, 960, 3)
    assert render_curves({"one": [(3, 0.5)]}, "single point").shape == (540, 960, 3)


def test_nice_ticks():
    assert np.allclose(nice_ticks(0, 0.72), [0, 0.2, 0.4, 0.6, 0.8])
    assert np.allclose(nice_ticks(1, 40, 8, integer=True), [0, 10, 20, 30, 40])
    assert np.allclose(nice_ticks(-0.013, 0.031), [-0.02, -0.01, 0, 0.01, 0.02, 0.03, 0.04])
    assert np.allclose(nice_ticks(1, 3, 8, integer=True), [1, 2, 3])
