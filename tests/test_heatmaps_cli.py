"""`hrpose visualize-heatmaps` end to end on real images: sheets, their layout, GT peaks, OKS terms, one-line errors."""

import contextlib
import copy
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from hrpose_cli.cli.app import app
from hrpose_cli.core import geometry
from hrpose_cli.core.schema import COCO17
KEYPOINT_NAMES = COCO17.names
NUM_JOINTS = COCO17.num_joints
OKS_SIGMAS = COCO17.oks_sigmas
from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.engine import heatmap_view
from hrpose_cli.engine.model_eval import predict_records
from hrpose_cli.model import checkpoints
from hrpose_cli.viz.colormaps import PANEL, colormap_lut
from hrpose_cli.viz.heatmaps import SCREEN_ZOOM, sheet_layout
from conftest import assert_one_line_error

runner = CliRunner()
INPUT_HW = (256, 192)
STRIDE = 4
PERSON = 1242217  # tests/data: a person of image 129648 with 15 labelled joints
UNLABELLED = 1314102  # same image, no labelled joint
CROWD = 900100129648


@pytest.fixture
def no_default_model(monkeypatch):
    """Simulate an installation without the embedded default model."""
    monkeypatch.setattr(checkpoints, "default_weights_path", lambda: None)


def _invoke(*args: str):
    return runner.invoke(app, ["visualize-heatmaps", *args, "--device", "cpu"])


def _fixture_args(fixture_data: Path) -> list[str]:
    return ["--ann", str(fixture_data / "person_keypoints.json"), "--images", str(fixture_data / "images")]


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image[:, :, ::-1]


def _panel(sheet: np.ndarray, rect) -> np.ndarray:
    return sheet[rect.y:rect.y + rect.h, rect.x:rect.x + rect.w]


def _is_placeholder(sheet: np.ndarray, rect) -> bool:
    return (_panel(sheet, rect) == PANEL).all(axis=2).mean() > 0.95


def _record(fixture_data: Path, ann_id: int):
    dataset = CocoKeypoints.load(fixture_data / "person_keypoints.json")
    return next(r for r in dataset.persons(fixture_data / "images") if r.ann_id == ann_id)


def _joints_in_crop(record) -> np.ndarray:
    """The GT joints mapped through the crop affine of the person's (cleaned) GT box: (J, 2) crop pixels."""
    center, scale = geometry.box_to_center_scale(record.bbox, INPUT_HW[1] / INPUT_HW[0])
    to_crop = geometry.crop_matrices(center, scale, (INPUT_HW[1], INPUT_HW[0]))
    return geometry.apply_affine(record.joints[None, :, :2], to_crop)[0]


def test_sheets_with_a_model_on_the_fixture(fixture_data, tiny_weights, tmp_path):
    out = tmp_path / "sheets"
    result = _invoke(*_fixture_args(fixture_data), "--weights", str(tiny_weights), "--ids", f"{PERSON},187946",
                     "--ids", str(PERSON), "--out", str(out))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["coco_train2017_000000129648_ann1242217.png", "coco_train2017_000000444294_ann187946.png"]
    assert "2 sheet(s)" in result.output and "OKS" in result.output
    layout = sheet_layout(NUM_JOINTS, INPUT_HW, 6, *SCREEN_ZOOM)
    sheet = _read_rgb(out / names[0])
    assert sheet.shape == (layout.height, layout.width, 3)
    assert not _is_placeholder(sheet, layout.gt) and not _is_placeholder(sheet, layout.pred)
    # Written at zlib level 3: well under half the bytes of OpenCV's default PNG of the same pixels.
    assert (out / names[0]).stat().st_size < 0.6 * len(cv2.imencode(".png", sheet[:, :, ::-1].copy())[1])
    # The crop panel is the crop the network sees: the person's cleaned GT box warped as the official code does
    # (zoomed by an integer factor, crop pixel (x, y) at panel pixel (x, y) * zoom).
    record = _record(fixture_data, PERSON)
    center, scale = geometry.box_to_center_scale(record.bbox, INPUT_HW[1] / INPUT_HW[0])
    matrix = geometry.crop_matrices(center, scale, (INPUT_HW[1], INPUT_HW[0]))[0]
    image = cv2.imread(str(record.image_path))
    expected = cv2.warpAffine(image, matrix, (INPUT_HW[1], INPUT_HW[0]), flags=cv2.INTER_LINEAR)[:, :, ::-1]
    zoom = layout.top_zoom
    shown = _panel(sheet, layout.crop)[::zoom, ::zoom]
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1


def test_gt_panel_peaks_lie_at_the_labelled_joints(fixture_data, no_default_model, tmp_path):
    out = tmp_path / "gt"
    # Full size: at the screen size's zoom 1, the GT marker's centre dot covers the one peak pixel.
    result = _invoke(*_fixture_args(fixture_data), "--ids", str(PERSON), "--alpha", "1", "--cmap-gt", "winter",
                     "--full-size", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "ground truth alone" in result.output
    sheet = _read_rgb(out / f"coco_train2017_000000129648_ann{PERSON}.png")
    layout = sheet_layout(NUM_JOINTS, INPUT_HW)
    assert sheet.shape == (layout.height, layout.width, 3)
    assert _is_placeholder(sheet, layout.pred) and not _is_placeholder(sheet, layout.gt)
    record = _record(fixture_data, PERSON)
    joints = _joints_in_crop(record)
    peak_colour = colormap_lut("winter")[255]  # alpha 1: a heatmap value of 1 shows the map's top colour exactly
    checked = 0
    for j, rect in enumerate(layout.joints):
        at_peak = (_panel(sheet, rect) == peak_colour).all(axis=2)
        labelled = record.joints[j, 2] > 0
        on_crop = (-0.5 < joints[j] / STRIDE).all() and (joints[j] / STRIDE < np.array([48, 64]) - 0.5).all()
        if not (labelled and on_crop):
            assert not at_peak.any(), j
            continue
        ys, xs = np.nonzero(at_peak)
        assert len(xs) > 0, j
        # The peak sits on the heatmap cell nearest the joint: within half a cell of it in crop pixels.
        peak = np.array([xs.mean(), ys.mean()]) / layout.zoom
        assert np.abs(peak - joints[j]).max() <= STRIDE / 2 + 0.5, (KEYPOINT_NAMES[j], peak, joints[j])
        checked += 1
    assert checked >= 10
    # The combined GT panel: every labelled joint's peak shows there too (max over joints keeps each 1).
    combined = (_panel(sheet, layout.gt) == peak_colour).all(axis=2)
    ys, xs = np.nonzero(combined)
    peaks = np.stack([xs, ys], axis=1) / layout.top_zoom
    labelled = record.joints[:, 2] > 0
    near = np.linalg.norm(peaks[:, None] - joints[None, labelled], axis=2).min(axis=1)
    assert len(peaks) and near.max() <= STRIDE


def test_engine_oks_terms_are_computeoks_and_peaks_match_eval(fixture_data, tiny_weights):
    plan = heatmap_view.plan_views(fixture_data / "person_keypoints.json", fixture_data / "images", tiny_weights,
                                   ids=[PERSON, 187946], device="cpu")
    views = list(heatmap_view.iter_views(plan, batch_size=1))
    assert [v.ann_id for v in views] == [PERSON, 187946]
    estimates = predict_records(plan.predictor, plan.records, batch_size=8, workers=0)
    for view, keypoints in zip(views, estimates.keypoints):
        record = view.record
        assert view.crop.shape == (*INPUT_HW, 3) and view.crop.dtype == np.uint8
        assert view.gt_heatmaps.shape == view.pred_heatmaps.shape == (NUM_JOINTS, 64, 48)
        # the prediction drawn is the one `hrpose eval` scores
        assert np.allclose(view.pred_keypoints, keypoints, atol=1e-4)
        # predicted peaks in crop pixels map to the image keypoints through the crop's inverse affine
        to_image = geometry.crop_matrices(view.center, view.scale, (INPUT_HW[1], INPUT_HW[0]), inverse=True)
        mapped = geometry.apply_affine(view.pred_joints[None, :, :2], to_image)[0]
        assert np.allclose(mapped, keypoints[:, :2], atol=1e-3)
        assert np.allclose(view.gt_joints[:, :2], _joints_in_crop(record), atol=1e-9)
        # per-joint terms exactly as pycocotools' computeOks computes them
        labelled = record.joints[:, 2] > 0
        d2 = ((view.pred_keypoints[:, :2] - record.joints[:, :2]) ** 2).sum(axis=1)
        e = d2 / (OKS_SIGMAS * 2) ** 2 / (record.area + np.spacing(1)) / 2
        assert np.allclose(view.oks_terms[labelled], np.exp(-e[labelled]), rtol=0, atol=1e-12)
        assert np.isnan(view.oks_terms[~labelled]).all()
        assert view.oks == pytest.approx(_pycocotools_oks(fixture_data, record, view.pred_keypoints), abs=1e-12)
        assert view.oks == pytest.approx(np.exp(-e[labelled]).mean(), abs=1e-12)


def _pycocotools_oks(fixture_data: Path, record, keypoints: np.ndarray) -> float:
    data = json.loads((fixture_data / "person_keypoints.json").read_text())
    data["annotations"] = [copy.deepcopy(a) for a in data["annotations"] if a["id"] == record.ann_id]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        dt = gt.loadRes([{"image_id": record.image_id, "category_id": 1, "score": 1.0,
                          "keypoints": [float(v) for v in keypoints.reshape(-1)]}])
        evaluator = COCOeval(gt, dt, "keypoints")
        evaluator.params.imgIds = [record.image_id]
        evaluator._prepare()
        return float(evaluator.computeOks(record.image_id, 1)[0, 0])


def test_gt_only_and_model_crops_are_the_same(fixture_data, tiny_weights, no_default_model):
    args = (fixture_data / "person_keypoints.json", fixture_data / "images")
    gt_only = heatmap_view.plan_views(*args, ids=[PERSON], device="cpu")
    with_model = heatmap_view.plan_views(*args, weights=tiny_weights, ids=[PERSON], device="cpu")
    assert gt_only.gt_only and not with_model.gt_only
    a, b = next(heatmap_view.iter_views(gt_only)), next(heatmap_view.iter_views(with_model))
    assert np.array_equal(a.crop, b.crop) and np.array_equal(a.gt_heatmaps, b.gt_heatmaps)
    assert a.pred_heatmaps is None and a.oks_terms is None


def test_bare_command_uses_the_sample_gt_only_without_a_model(no_default_model, tmp_path):
    out = tmp_path / "bare"
    result = _invoke("--max", "2", "--joints", "nose,left_wrist,16", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "no default model installed" in result.output and "ground truth alone" in result.output
    files = sorted(out.glob("*.png"))
    assert len(files) == 2
    layout = sheet_layout(3, INPUT_HW, 6, *SCREEN_ZOOM)
    for path in files:
        sheet = _read_rgb(path)
        assert sheet.shape == (layout.height, layout.width, 3)
        assert _is_placeholder(sheet, layout.pred)


def test_bare_command_uses_the_default_model_when_installed(tiny_weights, monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints, "default_weights_path", lambda: tiny_weights)
    out = tmp_path / "default"
    result = _invoke("--max", "1", "--joints", "left_ankle", "--no-flip", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "default model" in result.output and "flip off" in result.output
    (path,) = out.glob("*.png")
    layout = sheet_layout(1, INPUT_HW, 6, *SCREEN_ZOOM)
    sheet = _read_rgb(path)
    assert sheet.shape == (layout.height, layout.width, 3) and not _is_placeholder(sheet, layout.pred)


def test_max_chooses_labelled_persons_in_annotation_order(fixture_data, no_default_model, tmp_path):
    out = tmp_path / "max"
    result = _invoke(*_fixture_args(fixture_data), "--max", "12", "--joints", "nose", "--out", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads((fixture_data / "person_keypoints.json").read_text())
    labelled = [a["id"] for a in data["annotations"] if not a["iscrowd"] and any(a["keypoints"][2::3])][:12]
    written = {int(p.stem.rsplit("_ann", 1)[1]) for p in out.glob("*.png")}
    assert written == set(labelled) and UNLABELLED not in written


def test_real_val_data_with_a_model(shared_data, tiny_weights, tmp_path):
    val = shared_data / "coco-real"
    out = tmp_path / "val"
    result = _invoke("--ann", str(val / "annotations" / "person_keypoints_val.json"), "--images", str(val / "images"),
                     "--weights", str(tiny_weights), "--max", "2", "--joints", "left_wrist,right_wrist,nose,hips",
                     "--out", str(out))
    assert_one_line_error(result, "--joints", "'hips'")
    result = _invoke("--ann", str(val / "annotations" / "person_keypoints_val.json"), "--images", str(val / "images"),
                     "--weights", str(tiny_weights), "--max", "2", "--joints", "left_wrist,right_wrist,0",
                     "--cmap-pred", "viridis", "--out", str(out))
    assert result.exit_code == 0, result.output
    dataset = CocoKeypoints.load(val / "annotations" / "person_keypoints_val.json")
    persons = {r.ann_id: r for r in dataset.persons(val / "images")}
    first = [a["id"] for a in dataset.coco.dataset["annotations"] if a["id"] in persons][:2]
    expected = sorted(f"{persons[i].image_path.stem}_ann{i}.png" for i in first)
    assert sorted(p.name for p in out.iterdir()) == expected
    layout = sheet_layout(3, INPUT_HW, 6, *SCREEN_ZOOM)
    for name in expected:
        sheet = _read_rgb(out / name)
        assert sheet.shape == (layout.height, layout.width, 3)
        assert not _is_placeholder(sheet, layout.gt) and not _is_placeholder(sheet, layout.pred)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--ids", f"5,{PERSON}", "--ids", "7"], ["no annotation with ids 5, 7", "person_keypoints.json"]),
        (["--ids", str(UNLABELLED)], [f"annotation {UNLABELLED} has no labelled joints"]),
        (["--ids", str(CROWD)], [f"annotation {CROWD} is a crowd region"]),
        (["--ids", "12x"], ["--ids", "'12x'"]),
        (["--joints", "nose,elbow,17"], ["--joints", "'elbow'", "'17'"]),
        (["--cmap-gt", "nope"], ["--cmap-gt", "unknown colour map 'nope'"]),
        (["--cmap-pred", "nope"], ["--cmap-pred", "unknown colour map 'nope'"]),
        (["--alpha", "1.5"], ["--alpha"]),
        (["--max", "0"], ["--max"]),
        (["--decode", "mean"], ["--decode"]),
    ],
)
def test_bad_input_is_one_line(fixture_data, no_default_model, tmp_path, args, needles):
    out = tmp_path / "never"
    assert_one_line_error(_invoke(*_fixture_args(fixture_data), *args, "--out", str(out)), *needles)
    assert not out.exists()


def test_unwritable_output_folder_is_one_line(fixture_data, no_default_model, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    assert_one_line_error(_invoke(*_fixture_args(fixture_data), "--max", "1", "--out", str(blocker / "sub")),
                    str(blocker), "not a folder")
    assert_one_line_error(_invoke(*_fixture_args(fixture_data), "--max", "1", "--out", str(blocker)), str(blocker))
    assert blocker.read_text() == "keep me"


def test_missing_images_and_weights_are_one_line(fixture_data, no_default_model, tmp_path):
    ann = str(fixture_data / "person_keypoints.json")
    assert_one_line_error(_invoke("--ann", ann, "--out", str(tmp_path)), "--images")
    assert_one_line_error(_invoke("--ann", ann, "--images", str(tmp_path), "--max", "1", "--out", str(tmp_path / "o")),
                    "image not found", "coco_train2017_000000444294.jpg")
    missing_weights = str(tmp_path / "none.pt")
    result = _invoke(*_fixture_args(fixture_data), "--weights", missing_weights, "--out", str(tmp_path))
    assert_one_line_error(result, "none.pt")
    assert not (tmp_path / "o").exists()
