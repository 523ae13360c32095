"""`hrpose eval --results`: the ten numbers equal pycocotools' own run; bad input ends in one line, exit 1.

Also home of the helpers test_oks_cli.py shares: realistic noisy results and the bad-input cases.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from hrpose_cli.cli.app import app
from hrpose_cli.core.schema import COCO17
OKS_SIGMAS = COCO17.oks_sigmas
from hrpose_cli.engine.evaluator import STAT_NAMES

runner = CliRunner()


def noisy_results(ann_path: Path, seed: int) -> list[dict]:
    """A results file as a flawed model would write: noisy joints, lost joints, missed people, duplicates,
    false positives in random images, scores with ties, in random order."""
    data = json.loads(Path(ann_path).read_text())
    rng = np.random.default_rng(seed)
    results = []

    def add(image_id, keypoints, score):
        flat = [round(float(v), 3) for v in keypoints.reshape(-1)]
        results.append({"image_id": image_id, "category_id": 1, "keypoints": flat, "score": score})

    for ann in data["annotations"]:
        if ann["iscrowd"] or (ann["num_keypoints"] == 0 and rng.random() < 0.7) or rng.random() < 0.15:
            continue
        x, y, w, h = ann["bbox"]
        gt = np.array(ann["keypoints"], dtype=float).reshape(-1, 3)
        guess = np.stack([x + rng.uniform(0, 1, len(gt)) * w, y + rng.uniform(0, 1, len(gt)) * h], axis=1)
        pred = np.empty_like(gt)
        pred[:, :2] = np.where(gt[:, 2:] > 0, gt[:, :2], guess)
        pred[:, :2] += rng.normal(0, rng.choice([0.01, 0.03, 0.08, 0.25]) * max(w, h, 1), (len(gt), 2))
        pred[:, 2] = rng.uniform(0, 1, len(gt))
        lost = rng.random(len(gt)) < 0.1
        pred[lost] = 0
        score = round(float(rng.uniform(0.05, 1)), 2)
        add(ann["image_id"], pred, score)
        if rng.random() < 0.1:
            add(ann["image_id"], pred + rng.normal(0, 2, pred.shape) * [1, 1, 0], round(score * 0.8, 2))
    for _ in range(max(3, len(results) // 5)):
        image = data["images"][rng.integers(len(data["images"]))]
        pred = rng.uniform(0, 1, (len(gt), 3)) * [image["width"], image["height"], 1]
        add(image["id"], pred, round(float(rng.uniform(0, 0.6)), 2))
    order = rng.permutation(len(results))
    return [results[i] for i in order]


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def pycocotools_stats(ann_path: Path, results_path: Path, sigmas=None) -> np.ndarray:
    """COCOeval run the usual way, from the files."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_path))
        dt = gt.loadRes(str(results_path))
        evaluation = COCOeval(gt, dt, iouType="keypoints")
        if sigmas is not None:
            evaluation.params.kpt_oks_sigmas = np.asarray(sigmas)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def check_eval(ann_path: Path, tmp_path: Path, seed: int, sigmas=None) -> dict:
    results = write_json(tmp_path / f"results_{seed}.json", noisy_results(ann_path, seed))
    out = tmp_path / f"stats_{seed}.json"
    args = ["eval", "--ann", str(ann_path), "--results", str(results), "--json", str(out)]
    if sigmas is not None:
        args += ["--sigmas", ",".join(repr(float(s)) for s in sigmas)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    stats = json.loads(out.read_text())
    expected = pycocotools_stats(ann_path, results, sigmas)
    for name, value in zip(STAT_NAMES, expected):
        assert abs(stats[name] - value) <= 1e-9, name
    assert 0 < stats["AP"] < 1  # the noise leaves something to measure
    for name in STAT_NAMES:
        assert name in result.output
    return stats


def test_eval_equals_pycocotools_on_the_fixture(fixture_data, tmp_path):
    ann = fixture_data / "person_keypoints.json"
    stats = check_eval(ann, tmp_path, seed=0)
    assert (stats["images"], stats["people"], stats["ann"]) == (4, 25, str(ann))
    check_eval(ann, tmp_path, seed=1, sigmas=OKS_SIGMAS * 1.5)


@pytest.mark.parametrize("split, seeds", [("train", (2, 3)), ("val", (4, 5))])
def test_eval_equals_pycocotools_on_real_data(shared_data, tmp_path, split, seeds):
    ann = shared_data / "coco-real" / "annotations" / f"person_keypoints_{split}.json"
    for seed in seeds:
        check_eval(ann, tmp_path, seed)


def test_eval_without_ann_uses_the_sample(tmp_path):
    from hrpose_cli.data.coco import sample_dataset

    ann, _ = sample_dataset()
    results = write_json(tmp_path / "r.json", noisy_results(ann, 6))
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["eval", "--results", str(results), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["ann"] == str(ann)


def test_eval_help_declares_the_model_mode():
    result = runner.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    for option in ("--images", "--weights", "--boxes", "--flip", "--no-flip", "--results-out", "--device", "--batch",
                   "--decode", "--out", "--json", "--sigmas"):
        assert option in result.output


# ---- bad input, shared with test_oks_cli.py -------------------------------------------------------------------

BAD_CASES = [
    "gt_missing", "pred_missing", "gt_unreadable", "pred_unreadable", "gt_truncated", "pred_truncated",
    "gt_not_coco", "pred_not_results", "unknown_ids", "pred_wrong_length", "gt_wrong_length", "empty_results",
    "pred_lacks_score", "sigmas_count",
]


def unreadable(path: Path) -> Path:
    """A file we may not read; as root, where chmod does not stop reading, a folder in its place."""
    if os.geteuid() == 0:
        path.mkdir()
    else:
        path.write_text("[]")
        path.chmod(0)
    return path


def bad_case(name: str, tmp_path: Path, fixture: Path) -> tuple[Path, Path, list[str], Path, str]:
    """(gt, pred, extra args, the file the message must name, what it must say) for one kind of bad input."""
    gt = fixture / "person_keypoints.json"
    results = noisy_results(gt, 7)
    pred = write_json(tmp_path / "pred.json", results)
    text = gt.read_text()
    if name == "gt_missing":
        return tmp_path / "nope.json", pred, [], tmp_path / "nope.json", "file not found"
    if name == "pred_missing":
        return gt, tmp_path / "nope.json", [], tmp_path / "nope.json", "file not found"
    if name in ("gt_unreadable", "pred_unreadable"):
        bad = unreadable(tmp_path / "locked.json")
        why = "is a directory" if bad.is_dir() else "permission denied"
        return (bad, pred, [], bad, why) if name == "gt_unreadable" else (gt, bad, [], bad, why)
    if name == "gt_truncated":
        bad = tmp_path / "cut.json"
        bad.write_text(text[: len(text) // 2])
        return bad, pred, [], bad, "truncated JSON"
    if name == "pred_truncated":
        bad = tmp_path / "cut.json"
        bad.write_text(json.dumps(results)[:-3])
        return gt, bad, [], bad, "truncated JSON"
    if name == "gt_not_coco":
        bad = write_json(tmp_path / "list.json", [1, 2])
        return bad, pred, [], bad, "not a COCO annotation file"
    if name == "pred_not_results":
        bad = write_json(tmp_path / "dict.json", {"images": []})
        return gt, bad, [], bad, "not a COCO keypoint results file"
    if name == "unknown_ids":
        results[2]["image_id"] = 42
        results[5]["image_id"] = 123456789
        bad = write_json(tmp_path / "ids.json", results)
        return gt, bad, [], bad, f"image ids not in {gt}: 42, 123456789"
    if name == "pred_wrong_length":
        results[3]["keypoints"] = results[3]["keypoints"][:-1]
        bad = write_json(tmp_path / "short.json", results)
        return gt, bad, [], bad, "entry 3 has 50 keypoint values, expected 51"
    if name == "gt_wrong_length":
        data = json.loads(text)
        data["annotations"][2]["keypoints"] = data["annotations"][2]["keypoints"][:48]
        bad = write_json(tmp_path / "gt.json", data)
        ann_id = data["annotations"][2]["id"]
        return bad, pred, [], bad, f"annotation 2 (id {ann_id}) has 48 keypoint values, expected 51"
    if name == "empty_results":
        bad = write_json(tmp_path / "empty.json", [])
        return gt, bad, [], bad, "no results"
    if name == "pred_lacks_score":
        del results[0]["score"]
        bad = write_json(tmp_path / "noscore.json", results)
        return gt, bad, [], bad, "entry 0 lacks score"
    if name == "sigmas_count":
        return gt, pred, ["--sigmas", "0.1,0.2"], gt, "17 keypoints per person but 2 sigmas given"
    raise ValueError(name)


def assert_one_line_error(result, culprit: Path, message: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert str(culprit) in lines[0] and message in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", BAD_CASES)
def test_eval_bad_input(case, fixture_data, tmp_path):
    gt, pred, extra, culprit, message = bad_case(case, tmp_path, fixture_data)
    out = write_json(tmp_path / "stats.json", {"old": True})
    result = runner.invoke(app, ["eval", "--ann", str(gt), "--results", str(pred), "--json", str(out), *extra])
    assert_one_line_error(result, culprit, message)
    assert json.loads(out.read_text()) == {"old": True}  # nothing already written is lost


def test_eval_bad_sigmas(fixture_data, tmp_path):
    pred = write_json(tmp_path / "pred.json", noisy_results(fixture_data / "person_keypoints.json", 8))
    result = runner.invoke(
        app, ["eval", "--ann", str(fixture_data / "person_keypoints.json"), "--results", str(pred), "--sigmas", "a,b"]
    )
    assert result.exit_code == 1 and "--sigmas 'a,b': expected comma-separated numbers" in result.output


def test_verbose_shows_the_traceback(tmp_path):
    missing = tmp_path / "nope.json"
    for args in (["eval", "--ann", str(missing), "--results", str(missing)], ["oks", str(missing), str(missing)]):
        plain = subprocess.run([sys.executable, "-m", "hrpose_cli", *args], capture_output=True, text=True)
        assert plain.returncode == 1 and "Traceback" not in plain.stderr
        assert plain.stderr.strip() == f"error: {missing}: file not found"
        verbose = subprocess.run([sys.executable, "-m", "hrpose_cli", *args, "-v"], capture_output=True, text=True)
        assert verbose.returncode == 1
        assert "Traceback" in verbose.stderr and f"HrposeError: {missing}: file not found" in verbose.stderr
