"""The Python API: the README example as written, the same keypoints as `hrpose predict --json`, a cheap import."""

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import hrpose_cli
from hrpose_cli.cli.app import app
from hrpose_cli.errors import HrposeError

REPO = Path(__file__).resolve().parents[1]
IMAGES = ["coco_train2017_000000444294.jpg", "coco_train2017_000000129648.jpg"]


@pytest.fixture(scope="module")
def model():
    return hrpose_cli.load(device="cpu")


def test_readme_example_runs_as_written(monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## From Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(REPO)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "coco_train2017_000000444294.jpg" in printed and "AP " in printed


@pytest.mark.parametrize("with_boxes", [True, False])
def test_api_and_predict_json_give_the_same_keypoints(fixture_data, model, tmp_path, with_boxes):
    paths = [fixture_data / "images" / name for name in IMAGES]
    box = [150.0, 40.0, 200.0, 380.0]
    args = ["predict", *map(str, paths), "--device", "cpu", "--workers", "0", "--json", str(tmp_path / "p.json")]
    result = CliRunner().invoke(app, args + (["--bbox", ",".join(map(str, box))] if with_boxes else []))
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "p.json").read_text())
    results = model.predict(paths, boxes=[[box]] * len(paths) if with_boxes else None)
    assert [r.path for r in results] == paths
    api_records = [(str(r.path), kp, s) for r in results for kp, s in zip(r.keypoints, r.scores)]
    assert len(api_records) == len(records) > 0
    for (path, keypoints, score), record in zip(api_records, records):
        assert record["image"] == path
        assert np.allclose(np.array(record["keypoints"]).reshape(-1, 3), keypoints, atol=1e-3)
        assert record["score"] == pytest.approx(score)


def test_arrays_rgb_flag_heatmaps_and_coco_records(fixture_data, model):
    path = fixture_data / "images" / IMAGES[0]
    bgr = cv2.imread(str(path))
    box = [[150, 40, 200, 380]]
    [from_path] = model.predict(path, boxes=box, heatmaps=True)
    [from_bgr] = model.predict(bgr, boxes=box)
    [from_rgb] = model.predict(bgr[:, :, ::-1], boxes=box, rgb=True)
    assert np.allclose(from_path.keypoints, from_bgr.keypoints) and np.allclose(from_bgr.keypoints, from_rgb.keypoints)
    assert from_bgr.path is None and from_path.heatmaps.shape[:2] == (1, 17) and from_bgr.heatmaps is None
    assert from_path.boxes.shape == (1, 4) and from_path.keypoints.shape == (1, 17, 3)
    assert from_path.keypoint_names[0] == "nose" and (15, 13) in from_path.skeleton
    [record] = from_path.to_coco()
    assert record["image_id"] == 444294 and len(record["keypoints"]) == 51
    assert from_bgr.draw().shape == bgr.shape
    [unflipped] = model.predict(path, boxes=box, flip=False)
    assert not np.allclose(unflipped.keypoints, from_path.keypoints)


def test_api_errors_are_one_line(fixture_data, model, tmp_path):
    path = fixture_data / "images" / IMAGES[0]
    with pytest.raises(HrposeError, match="2 entries for 1 images"):
        model.predict([path], boxes=[[[0, 0, 10, 10]], [[0, 0, 10, 10]]])
    with pytest.raises(HrposeError, match="no such file"):
        model.predict(tmp_path / "missing.jpg")
    with pytest.raises(HrposeError, match="H x W x 3 uint8"):
        model.predict(np.zeros((4, 4), np.uint8))


def test_import_loads_no_torch():
    code = "import sys, hrpose_cli; assert 'torch' not in sys.modules, 'torch imported'; hrpose_cli.__version__"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_matches_hrpose_eval(fixture_data, tmp_path):
    ann = fixture_data / "person_keypoints.json"
    annotations = json.loads(ann.read_text())["annotations"]
    rng = np.random.default_rng(0)
    records = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0,
                "keypoints": (np.array(a["keypoints"], float) + rng.normal(0, 2, len(a["keypoints"]))).tolist()}
               for a in annotations if a.get("num_keypoints", 0) > 0]
    results = tmp_path / "results.json"
    results.write_text(json.dumps(records))
    out = tmp_path / "stats.json"
    cli = CliRunner().invoke(app, ["eval", "--ann", str(ann), "--results", str(results), "--json", str(out)])
    assert cli.exit_code == 0, cli.output
    stats = hrpose_cli.evaluate(ann, records)
    assert list(stats) == ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    assert stats == hrpose_cli.evaluate(ann, results)
    assert all(stats[name] == json.loads(out.read_text())[name] for name in stats) and 0 < stats["AP"] <= 1


@pytest.mark.parametrize("boxes", ["gt", "dets"])
def test_model_evaluate_matches_hrpose_eval_json(fixture_data, model, tmp_path, boxes):
    ann, images = fixture_data / "person_keypoints.json", fixture_data / "images"
    if boxes == "dets":  # a detections file in no image's order, with scores: its own path through rescoring
        rng = np.random.default_rng(1)
        annotations = json.loads(ann.read_text())["annotations"]
        dets = [{"image_id": a["image_id"], "category_id": 1, "score": round(float(rng.uniform(0.3, 1)), 3),
                 "bbox": (np.array(a["bbox"]) + rng.normal(0, 2, 4) * [1, 1, 0, 0]).tolist()}
                for a in (annotations[i] for i in rng.permutation(len(annotations)))]
        boxes = str(tmp_path / "dets.json")
        Path(boxes).write_text(json.dumps(dets))
    out, written = tmp_path / "stats.json", tmp_path / "results.json"
    args = ["eval", "--ann", str(ann), "--images", str(images), "--boxes", boxes, "--device", "cpu", "--workers", "0",
            "--json", str(out), "--results-out", str(written)]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    evaluation = model.evaluate(ann, images, boxes, workers=0)
    reported = json.loads(out.read_text())
    assert evaluation.stats == {name: reported[name] for name in evaluation.stats} and evaluation.stats["AP"] > 0.5
    assert evaluation.results == json.loads(written.read_text())
    assert (evaluation.images, evaluation.people, evaluation.timing.persons) == (4, 25, reported["persons_evaluated"])
    assert evaluation.box_stats is None and evaluation.detections is None and evaluation.failures == []


def test_model_evaluate_errors_are_one_line(fixture_data, tmp_path):
    ann, images = fixture_data / "person_keypoints.json", fixture_data / "images"
    plain = hrpose_cli.load(device="cpu", detector=False)
    with pytest.raises(HrposeError, match="images folder not found"):
        plain.evaluate(ann, tmp_path / "missing")
    with pytest.raises(HrposeError, match="detector=False"):
        plain.evaluate(ann, images, boxes="detector")
    with pytest.raises(HrposeError, match="must lie strictly between 0 and 1"):
        plain.evaluate(ann, images, boxes="detector", det_threshold=1.5)
    from hrpose_cli.api import Evaluation

    assert hrpose_cli.Evaluation is Evaluation  # exported lazily, as load and evaluate are
