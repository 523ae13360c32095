"""The model evaluation pipeline: a corrupt image stops it with its name, or is skipped and counted."""

import shutil

import pytest

from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.engine.model_eval import evaluate_predictor, person_records
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
