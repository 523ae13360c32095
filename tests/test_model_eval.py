"""The model evaluation pipeline: a corrupt image stops it with its name, or is skipped and counted; the results
are OKS-NMS'd per image as the official evaluate()."""

import shutil

import numpy as np
import pytest

from hrpose_cli.core.geometry import padded_areas
from hrpose_cli.core.oks import oks_nms

from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.engine.model_eval import NMS_THRESHOLD, evaluate_predictor, keypoint_results, person_records
from hrpose_cli.engine.predictor import Predictor
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.errors import HrposeError
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet


def test_corrupt_image_stops_or_is_skipped(fixture_data, tmp_path):
    shutil.copytree(fixture_data / "images", tmp_path / "images")
    bad = sorted((tmp_path / "images").glob("*.jpg"))[0]
    bad.write_bytes(b"not a jpeg")
    dataset = CocoKeypoints.load(fixture_data / "person_keypoints.json")
    records = person_records(dataset, tmp_path / "images")
    config = HRNetConfig.from_arch("w16-small")
    predictor = Predictor(PoseHRNet(config), config, Runtime.create("cpu"))
    with pytest.raises(HrposeError, match=bad.name):
        evaluate_predictor(predictor, dataset, records, 16, workers=0)
    outcome = evaluate_predictor(predictor, dataset, records, 16, workers=0, skip_bad_images=True)
    on_bad = sum(r.image_path == bad for r in records)
    assert on_bad > 0 and len(outcome.estimates.failures) == 1 and bad.name in outcome.estimates.failures[0]
    assert len(outcome.results) == len(records) - on_bad  # every readable person scored, none of the bad image's
    assert set(outcome.stats) >= {"AP", "AR"}


def test_keypoint_results_are_each_images_oks_nms_survivors_in_order():
    """Against the per-image loop written out: NaN rows (skipped images) drop, near-duplicates of one person are
    suppressed, single persons pass as they are, images keep their order of first appearance."""
    rng = np.random.default_rng(3)
    ids = np.array([7, 7, 7, 2, 9, 9, 5, 7, 2])
    kpts = rng.uniform(0, 300, (len(ids), 17, 3)).astype(np.float32)
    kpts[..., 2] = rng.uniform(0, 1, kpts.shape[:2])
    kpts[1, :, :2] = kpts[0, :, :2] + 0.5  # a near-duplicate of person 0: one of the two goes
    kpts[5] = np.nan  # a skipped image's row
    boxes = np.c_[rng.uniform(0, 100, (len(ids), 2)), rng.uniform(50, 150, (len(ids), 2))]
    scores = rng.uniform(0, 1, len(ids))
    want = []
    for image_id in dict.fromkeys(ids.tolist()):
        members = np.array([i for i in np.flatnonzero(ids == image_id) if np.isfinite(kpts[i]).all()])
        keep = oks_nms(kpts[members], scores[members], padded_areas(boxes[members], 0.75), NMS_THRESHOLD)
        want += [(image_id, kpts[i].reshape(-1).tolist(), float(scores[i])) for i in members[keep]]
    got = [(r["image_id"], r["keypoints"], r["score"]) for r in keypoint_results(ids, kpts, scores, boxes, 0.75)]
    assert got == want and len(got) == len(ids) - 2
