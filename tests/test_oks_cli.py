"""`hrpose oks`: every pair's OKS equals pycocotools' computeOks; bad input ends in one line, exit 1."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from hrpose_cli.cli.app import app
from hrpose_cli.core.schema import COCO17
OKS_SIGMAS = COCO17.oks_sigmas
from test_eval_cli import BAD_CASES, assert_one_line_error, bad_case, noisy_results, write_json

runner = CliRunner()


def compute_oks_pairs(ann_path: Path, results_path: Path, sigmas=None) -> dict[tuple[int, int], tuple[int, float]]:
    """(pred_index, gt_id) -> (image_id, OKS) from COCOeval.computeOks, image by image, no detection dropped."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_path))
        dt = gt.loadRes(str(results_path))  # gives result i the id i + 1
    evaluation = COCOeval(gt, dt, iouType="keypoints")
    evaluation.params.maxDets = [len(dt.anns) + 1]
    if sigmas is not None:
        evaluation.params.kpt_oks_sigmas = np.asarray(sigmas)
    evaluation._prepare()
    pairs = {}
    for image_id in evaluation.params.imgIds:
        for category_id in evaluation.params.catIds:
            ious = evaluation.computeOks(image_id, category_id)
            if len(ious) == 0:
                continue
            dts = evaluation._dts[image_id, category_id]
            dts = [dts[i] for i in np.argsort([-d["score"] for d in dts], kind="mergesort")]  # computeOks' order
            for row, d in enumerate(dts):
                for col, g in enumerate(evaluation._gts[image_id, category_id]):
                    pairs[d["id"] - 1, g["id"]] = (image_id, ious[row, col])
    return pairs


def check_oks(ann_path: Path, tmp_path: Path, seed: int, sigmas=None) -> dict:
    results = write_json(tmp_path / f"results_{seed}.json", noisy_results(ann_path, seed))
    out = tmp_path / f"oks_{seed}.json"
    args = ["oks", str(ann_path), str(results), "--json", str(out)]
    if sigmas is not None:
        args += ["--sigmas", ",".join(repr(float(s)) for s in sigmas)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    got = {(p["pred_index"], p["gt_id"]): (p["image_id"], p["oks"]) for p in report["pairs"]}
    expected = compute_oks_pairs(ann_path, results, sigmas)
    assert len(got) == len(report["pairs"]) and got.keys() == expected.keys()
    for key, (image_id, value) in expected.items():
        assert got[key][0] == image_id
        assert abs(got[key][1] - value) <= 1e-9, key
    assert [p["pred_index"] for p in report["pairs"]] == sorted(p["pred_index"] for p in report["pairs"])

    # the summary's mean best OKS is the mean over scored people of their best pair (0 without any)
    data = json.loads(ann_path.read_text())
    people = [a["id"] for a in data["annotations"] if not a["iscrowd"] and any(v > 0 for v in a["keypoints"][2::3])]
    best = {gt_id: 0.0 for gt_id in people}
    for (_, gt_id), (_, value) in expected.items():
        if gt_id in best:
            best[gt_id] = max(best[gt_id], value)
    summary = report["summary"]
    assert summary["people"] == len(people) and summary["pairs"] == len(expected)
    assert summary["mean_best_oks"] == pytest.approx(np.mean(list(best.values())), abs=1e-12)
    assert 0 < summary["joint_similarity"]["left_shoulder"] <= 1
    return report


def test_oks_equals_compute_oks_on_the_fixture(fixture_data, tmp_path):
    ann = fixture_data / "person_keypoints.json"
    check_oks(ann, tmp_path, seed=10)
    check_oks(ann, tmp_path, seed=11, sigmas=OKS_SIGMAS * 0.7)


@pytest.mark.parametrize("split, seeds", [("train", (12, 13)), ("val", (14, 15))])
def test_oks_equals_compute_oks_on_real_data(shared_data, tmp_path, split, seeds):
    ann = shared_data / "coco-real" / "annotations" / f"person_keypoints_{split}.json"
    for seed in seeds:
        check_oks(ann, tmp_path, seed)


def test_oks_prints_a_summary(fixture_data, tmp_path):
    ann = fixture_data / "person_keypoints.json"
    pred = write_json(tmp_path / "pred.json", noisy_results(ann, 16))
    result = runner.invoke(app, ["oks", str(ann), str(pred)])
    assert result.exit_code == 0, result.output
    assert "pairs" in result.output and "best OKS per person" in result.output and "right_ankle" in result.output


@pytest.mark.parametrize("case", BAD_CASES)
def test_oks_bad_input(case, fixture_data, tmp_path):
    gt, pred, extra, culprit, message = bad_case(case, tmp_path, fixture_data)
    out = write_json(tmp_path / "pairs.json", {"old": True})
    result = runner.invoke(app, ["oks", str(gt), str(pred), "--json", str(out), *extra])
    assert_one_line_error(result, culprit, message)
    assert json.loads(out.read_text()) == {"old": True}


def test_oks_needs_both_files():
    result = runner.invoke(app, ["oks", "only.json"])
    assert result.exit_code == 2


def test_the_cli_starts_without_torch():
    """`hrpose --help`, `hrpose oks` and `hrpose eval --results` never need torch, so the app must not import it
    (it costs over a second); commands that run a network import the engine when they run."""
    import subprocess
    import sys

    code = "import sys, hrpose_cli.cli.app; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stdout
