"""`eval --analyze`: hand-built cases with known labels, pycocotools parity, and the command end to end."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from hrpose_cli.cli.app import app
from hrpose_cli.core.keypoint_errors import (
    GOOD, INVERSION, JITTER, MISS, SWAP, UNLABELLED, candidate_similarity, corrected_keypoints,
    label_keypoints, soft_nms_scores,
)
from hrpose_cli.core.schema import COCO17, from_category
from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.engine.error_analysis import _evaluate, analyze, precision_curve
from hrpose_cli.engine.evaluator import coco_stats
from tests.test_eval_cli import noisy_results

KEYPOINT_NAMES = COCO17.names
OKS_SIGMAS = COCO17.oks_sigmas

runner = CliRunner()
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCOeval's
FLIP = COCO17.flip_permutation()
L_WRIST, R_WRIST = KEYPOINT_NAMES.index("left_wrist"), KEYPOINT_NAMES.index("right_wrist")


def person(x0: float, y0: float, scale: float = 1.0) -> np.ndarray:
    """A standing person facing the camera, all 17 joints labelled: (17, 3), about 100x200 pixels at scale 1."""
    xy = np.array([[50, 20], [45, 15], [55, 15], [40, 18], [60, 18], [30, 50], [70, 50], [25, 85], [75, 85],
                   [22, 120], [78, 120], [38, 120], [62, 120], [36, 160], [64, 160], [35, 200], [65, 200]], float)
    return np.hstack([xy * scale + [x0, y0], np.full((17, 1), 2.0)])


AREA = 100.0 * 200.0
TWO = np.stack([person(0, 0), person(300, 0)])  # two people side by side, far apart
AREAS = np.array([AREA, AREA])


def offset_for(ks: float, joint: int, area: float = AREA) -> float:
    """The pixel distance at which a joint's keypoint similarity is ks."""
    return float(np.sqrt(-2 * np.log(ks) * area * (2 * OKS_SIGMAS[joint]) ** 2))


def flip_permutation_from_names(names) -> np.ndarray:
    """The flip the error analysis uses for a file naming these keypoints: its schema's."""
    return from_category({"id": 1, "name": "test", "keypoints": list(names)}, "test").flip_permutation()


def test_flip_from_names_is_cocos_flip():
    assert (flip_permutation_from_names(KEYPOINT_NAMES) == FLIP).all()
    assert (flip_permutation_from_names([n.replace("_", " ").title() for n in KEYPOINT_NAMES]) == FLIP).all()
    assert flip_permutation_from_names(["snout", "left_ear", "right_ear", "tail_base"]).tolist() == [0, 2, 1, 3]
    assert flip_permutation_from_names(["leftover", "right", "left"]).tolist() == [0, 2, 1]


def test_swapped_wrists_are_an_inversion_on_those_two_joints():
    pred = TWO[0].copy()
    pred[[L_WRIST, R_WRIST]] = pred[[R_WRIST, L_WRIST]]
    labels, ksmax = label_keypoints(pred, TWO, AREAS, 0, OKS_SIGMAS, FLIP)
    assert labels[L_WRIST] == labels[R_WRIST] == INVERSION
    assert np.allclose(ksmax[[L_WRIST, R_WRIST]], 1.0)
    assert (np.delete(labels, [L_WRIST, R_WRIST]) == GOOD).all()


def test_a_joint_on_another_persons_same_joint_is_a_swap():
    pred = TWO[0].copy()
    pred[L_WRIST] = TWO[1][L_WRIST]
    labels, _ = label_keypoints(pred, TWO, AREAS, 0, OKS_SIGMAS, FLIP)
    assert labels[L_WRIST] == SWAP and (np.delete(labels, L_WRIST) == GOOD).all()


def test_a_small_offset_giving_ks_07_is_jitter_and_a_far_one_a_miss():
    pred = TWO[0].copy()
    pred[L_WRIST, 1] += offset_for(0.7, L_WRIST)
    pred[R_WRIST, 1] += offset_for(0.3, R_WRIST)  # ks 0.3 to its own joint, nothing else near
    labels, ksmax = label_keypoints(pred, TWO, AREAS, 0, OKS_SIGMAS, FLIP)
    assert labels[L_WRIST] == JITTER and ksmax[L_WRIST] == pytest.approx(0.7)
    assert labels[R_WRIST] == MISS and ksmax[R_WRIST] == pytest.approx(0.3)


def test_the_nearest_target_wins_not_the_own_joint_first():
    """ks .7 to its own left wrist but about .9 to its own right wrist: an inversion, not a jitter."""
    gts = TWO.copy()
    gts[0, R_WRIST, :2] = gts[0, L_WRIST, :2] + [offset_for(0.7, L_WRIST) + offset_for(0.9, L_WRIST), 0]
    pred = gts[0].copy()
    pred[L_WRIST, 0] += offset_for(0.7, L_WRIST)
    ks = candidate_similarity(pred, gts, AREAS, 0, OKS_SIGMAS, FLIP)
    assert ks[0, L_WRIST] == pytest.approx(0.7) and ks[2, L_WRIST] == pytest.approx(0.9)
    labels, _ = label_keypoints(pred, gts, AREAS, 0, OKS_SIGMAS, FLIP)
    assert labels[L_WRIST] == INVERSION


def test_unlabelled_gt_joints_get_no_label_and_unlabelled_targets_never_win():
    gts = TWO.copy()
    gts[0, L_WRIST, 2] = 0
    gts[1, R_WRIST, 2] = 0
    pred = gts[0].copy()
    pred[R_WRIST] = TWO[1][R_WRIST]  # on the other person's right wrist, which is not labelled
    labels, _ = label_keypoints(pred, gts, AREAS, 0, OKS_SIGMAS, FLIP)
    assert labels[L_WRIST] == UNLABELLED and labels[R_WRIST] == MISS


@pytest.mark.parametrize("convention, power", [("stated", 1.0), ("coco-analyze", 0.25)])
def test_corrected_joints_land_at_the_target_similarity(convention, power):
    pred = TWO[0].copy()
    pred[L_WRIST, 1] += offset_for(0.7, L_WRIST)  # jitter
    pred[R_WRIST, 1] += offset_for(0.2, R_WRIST)  # miss
    pred[0, 0] += 400  # the nose on the other person's nose, roughly: a swap or a miss, moved either way
    labels, ksmax = label_keypoints(pred, TWO, AREAS, 0, OKS_SIGMAS, FLIP)
    fixed = corrected_keypoints(pred, labels, ksmax, TWO[0], AREA, OKS_SIGMAS, {JITTER, MISS}, convention)
    ks = candidate_similarity(fixed, TWO, AREAS, 0, OKS_SIGMAS, FLIP)[0]
    assert ks[L_WRIST] == pytest.approx(0.85**power) and ks[R_WRIST] == pytest.approx(0.5**power)
    untouched = np.delete(np.arange(17), [L_WRIST, R_WRIST] + ([0] if labels[0] in (JITTER, MISS) else []))
    assert (fixed[untouched] == pred[untouched]).all() and (fixed[:, 2] == pred[:, 2]).all()


def test_soft_nms_pushes_a_duplicate_below_a_worse_distinct_detection():
    kpts = np.stack([TWO[0], TWO[0] + [1, 0, 0], TWO[1]])
    scores = soft_nms_scores(kpts, np.array([0.9, 0.88, 0.5]), OKS_SIGMAS)
    assert scores[0] == 0.9 and scores[2] == pytest.approx(0.5, abs=1e-6) and scores[1] < 0.9 * np.exp(-0.9**2 / 0.5)


def write_dataset(path: Path, people: np.ndarray) -> Path:
    """A one-image COCO file holding these people (each with box 100x200 at its left shoulder column)."""
    anns = []
    for k, joints in enumerate(people):
        x0, y0 = joints[:, 0].min() - 10, joints[:, 1].min() - 10
        anns.append({"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": AREA,
                     "bbox": [float(x0), float(y0), 100.0, 200.0], "keypoints": joints.reshape(-1).tolist(),
                     "num_keypoints": 17})
    data = {"images": [{"id": 1, "file_name": "x.jpg", "width": 640, "height": 480}], "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES)}]}
    path.write_text(json.dumps(data))
    return path


def test_fixing_everything_cumulatively_gives_ap_1_and_each_fix_counts(tmp_path):
    people = np.stack([person(0, 0), person(300, 0), person(150, 250)])
    dataset = CocoKeypoints.load(write_dataset(tmp_path / "gt.json", people))
    swapped = people[0][FLIP]  # every joint but the nose on its left/right twin: 16 inversions
    jittered = people[1].copy()
    jittered[5:7, 1] += offset_for(0.7, 5)  # both shoulders at ks 0.7: still a true positive at OKS 0.75
    results = [{"image_id": 1, "category_id": 1, "keypoints": p.reshape(-1).tolist(), "score": s}
               for p, s in ((swapped, 0.9), (jittered, 0.8), (people[0] + [600, 0, 0], 0.95))]  # + a background FP
    analysis = analyze(dataset, [dict(r) for r in results])
    counts = analysis.counts
    assert counts["inversion"] == 16 and counts["swap"] == 0 and counts["jitter"] == 2  # the nose stays good
    assert sum(counts.values()) == 34  # the third person is missed altogether: a false negative
    assert analysis.progressive["all"]["false_negatives"] == pytest.approx(1.0)
    assert analysis.to_json()["ap"] == pytest.approx(coco_stats(dataset, results)["AP75"])
    fixed = analysis.ap_fixed["all"]
    assert fixed["inversion"] > analysis.to_json()["ap"] and fixed["background_fp"] > analysis.to_json()["ap"]
    stages = list(analysis.progressive["all"].values())
    assert all(b >= a - 1e-12 for a, b in zip(stages, stages[1:]))


def test_matching_and_precision_equal_pycocotools_evaluate_and_accumulate(fixture_data):
    ann = fixture_data / "person_keypoints.json"
    dataset = CocoKeypoints.load(ann)
    results = noisy_results(ann, 3)
    kpts = np.array([r["keypoints"] for r in results]).reshape(-1, 17, 3)
    evals = _evaluate(dataset, [r["image_id"] for r in results], kpts, np.array([r["score"] for r in results]),
                      OKS_SIGMAS, (0.0, 1e10), tuple(OKS_THRESHOLDS))
    reference = COCOeval(dataset.coco, dataset.coco.loadRes([dict(r) for r in results]), iouType="keypoints")
    reference.evaluate()
    reference.accumulate()
    area_all = [e for e in reference.evalImgs[:len(reference.params.imgIds)] if e is not None]
    assert [e["dtMatches"].tolist() for e in evals] == [e["dtMatches"].tolist() for e in area_all]
    for t in range(len(OKS_THRESHOLDS)):
        assert np.allclose(precision_curve(evals, t)[1], reference.eval["precision"][t, :, 0, 0, -1])


def test_analyze_on_real_results_matches_the_eval_table(fixture_data):
    ann = fixture_data / "person_keypoints.json"
    dataset = CocoKeypoints.load(ann)
    results = noisy_results(ann, 5)
    analysis = analyze(dataset, [dict(r) for r in results])
    assert analysis.to_json()["ap"] == pytest.approx(coco_stats(dataset, results)["AP75"])
    assert analysis.progressive["all"]["false_negatives"] == pytest.approx(1.0)
    per_joint = np.array([list(v.values()) for v in analysis.per_joint.values()])
    labelled = sum(int((np.array(dataset.coco.anns[c.ann_id]["keypoints"][2::3]) > 0).sum())
                   for c in analysis.candidates)
    assert per_joint.sum() == sum(analysis.counts.values()) == labelled


def check_analysis_json(analysis: dict) -> None:
    assert set(analysis) == {"counts", "per_joint", "ap_fixed", "ap", "convention"}
    assert set(analysis["counts"]) == {"good", "jitter", "inversion", "swap", "miss"}
    assert all(isinstance(v, int) for v in analysis["counts"].values())
    assert set(analysis["per_joint"]) == set(KEYPOINT_NAMES)
    assert set(analysis["ap_fixed"]) == {"miss", "swap", "inversion", "jitter", "score", "background_fp",
                                         "false_negatives"}
    assert analysis["convention"] == "stated"


def test_eval_analyze_on_a_results_file_with_real_images(fixture_data, tmp_path):
    ann = fixture_data / "person_keypoints.json"
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(noisy_results(ann, 7)))
    out = tmp_path / "figures"
    result = runner.invoke(app, ["eval", "--ann", str(ann), "--results", str(pred), "--images",
                                 str(fixture_data / "images"), "--analyze", "--out", str(out), "--json",
                                 str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval.json").read_text())
    check_analysis_json(data["analysis"])
    assert data["analysis"]["ap"] == pytest.approx(data["AP75"], abs=1e-6)
    for name in ("analysis_pr.png", "analysis_joints.png", "analysis_worst.png"):
        assert cv2.imread(str(out / name)) is not None, name
    assert not list(out.glob(".*tmp"))
    assert "w/o Miss" in result.output and "visualize-heatmaps" in result.output


def test_eval_analyze_runs_the_model_on_real_images(fixture_data, tmp_path):
    ann = fixture_data / "person_keypoints.json"
    result = runner.invoke(app, ["eval", "--ann", str(ann), "--images", str(fixture_data / "images"), "--device",
                                 "cpu", "--analyze", "--out", str(tmp_path), "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval.json").read_text())
    check_analysis_json(data["analysis"])
    assert data["analysis"]["ap"] == pytest.approx(data["AP75"], abs=1e-6)
    assert (tmp_path / "analysis_worst.png").is_file()


def test_eval_analyze_unwritable_out_is_one_line(fixture_data, tmp_path):
    ann = fixture_data / "person_keypoints.json"
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(noisy_results(ann, 7)))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["eval", "--ann", str(ann), "--results", str(pred), "--analyze", "--out",
                                 str(blocker)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(blocker) in result.output
