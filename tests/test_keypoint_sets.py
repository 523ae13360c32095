"""Any keypoint set: the schema read from a COCO category, carried by the model, and every command on a
non-COCO-17 set (tests/data/body13_keypoints.json: the fixture's people as 13 renamed joints with their own
skeleton, made by benchmarks/derive_body13.py; the DeepLabCut mouse where ../shared/data is present)."""

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import REPO, assert_one_line_error
from hrpose_cli.cli.app import app
from hrpose_cli.core.schema import (COCO17, UNIFORM_SIGMA, KeypointSchema, from_category, infer_flip_pairs,
                                    infer_joint_weights, infer_upper_body)
from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.errors import HrposeError
from hrpose_cli.model.checkpoints import checkpoint_schema, read_checkpoint, save_checkpoint
from hrpose_cli.model.hrnet import HRNetConfig

runner = CliRunner()
BODY13 = REPO / "tests" / "data" / "body13_keypoints.json"
BODY13_SIGMAS = "0.026,0.079,0.072,0.062,0.079,0.072,0.062,0.107,0.087,0.089,0.107,0.087,0.089"
MOUSE_SIGMAS = "0.026,0.035,0.035,0.107"


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


# -- the schema ---------------------------------------------------------------------------------------


def test_flip_pairs_from_every_left_right_spelling():
    names = ["snout", "left_ear", "right_ear", "l_paw", "r_paw", "tail_left", "tail_right", "eyeL", "eyeR",
             "Left Hand", "Right Hand", "leftover", "r_only"]
    assert infer_flip_pairs(names) == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10))
    assert infer_flip_pairs(COCO17.names) == COCO17.flip_pairs
    perm = from_category({"id": 1, "keypoints": names}, "x").flip_permutation()
    assert perm.tolist() == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 11, 12]


def test_coco_names_in_any_spelling_are_coco17_itself():
    spelled = [n.replace("_", " ").title() for n in COCO17.names]  # fashion17's 'Left Eye'
    assert from_category({"id": 1, "keypoints": spelled, "skeleton": []}, "x") is COCO17
    assert infer_joint_weights(COCO17.names) == COCO17.joint_weights


def test_category_skeleton_is_one_based_and_checked():
    schema = from_category({"id": 1, "name": "mouse", "keypoints": ["a", "left_b", "right_b"], "skeleton": [[1, 2], [2, 3]]}, "f.json")
    assert schema.skeleton == ((0, 1), (1, 2)) and schema.category == "mouse"
    assert schema.sigmas == (UNIFORM_SIGMA,) * 3 and "0.067 (the mean of COCO's 17" in schema.uniform_sigma_warning()
    with pytest.raises(HrposeError, match=r"f.json: category 1 \(\?\): skeleton link \[0, 1\] .* 1-based"):
        from_category({"id": 1, "keypoints": ["a", "b"], "skeleton": [[0, 1]]}, "f.json")
    with pytest.raises(HrposeError, match="f.json: category 1 .* has no 'keypoints' list of names"):
        from_category({"id": 1, "name": "person"}, "f.json")


def test_upper_body_is_above_the_hips_and_symmetric():
    names = ["head", "l_hand", "r_hand", "l_hip", "r_hip", "l_foot", "r_foot"]
    mean_y = np.array([0.05, 0.45, 0.6, 0.5, 0.5, 0.95, 0.95])  # l_hand above the hips, r_hand below: their
    assert infer_upper_body(names, mean_y, infer_flip_pairs(names)) == (0,)  # mean 0.525 puts both below
    mean_y[2] = 0.4
    assert infer_upper_body(names, mean_y, infer_flip_pairs(names)) == (0, 1, 2)
    assert infer_upper_body(names, None) == ()


def test_schema_round_trips_and_bad_entries_are_one_line():
    schema = from_category(json.loads(BODY13.read_text())["categories"][0], "b")
    assert KeypointSchema.from_dict(schema.to_dict(), "ckpt") == schema
    with pytest.raises(HrposeError, match="ckpt: bad keypoint set"):
        KeypointSchema.from_dict({**schema.to_dict(), "flip_pairs": [[0, 99]]}, "ckpt")


# -- commands on the 13-joint set (shipped fixture) ----------------------------------------------------


@pytest.fixture(scope="module")
def body13_run(tmp_path_factory, tiny_weights):
    """One short CPU run on body13 from the COCO-17 tiny weights (every layer but the head loads)."""
    out = tmp_path_factory.mktemp("body13") / "run"
    images = str(REPO / "tests" / "data" / "images")
    result = invoke("train", "--train-ann", str(BODY13), "--train-images", images, "--val-ann", str(BODY13),
                    "--val-images", images, "--weights", str(tiny_weights), "--input-size", "128x96", "--epochs", "2",
                    "--batch", "8", "--sigmas", BODY13_SIGMAS, "--device", "cpu", "--workers", "0", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_builds_a_13_joint_head_and_stores_the_set(body13_run):
    out, output = body13_run
    assert "loaded every layer but the final one" in output and "for the 13 keypoints" in output
    assert "flip pairs: l_shoulder:r_shoulder" in output and "OKS sigmas: given" in output
    checkpoint = read_checkpoint(out / "last.pt")
    assert checkpoint["config"]["num_joints"] == 13 and checkpoint["state_dict"]["final_layer.weight"].shape[0] == 13
    schema = checkpoint_schema(out / "last.pt")
    assert schema.names[0] == "head" and len(schema.skeleton) == 14 and schema.sigmas[7] == 0.107
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 2 and all(0 <= m["AP"] <= 1 for m in history)
    assert (out / "loss.png").is_file() and (out / "ap.png").is_file()


def test_eval_predict_and_heatmaps_read_the_set_from_the_weights(body13_run, tmp_path):
    out, _ = body13_run
    weights, images = str(out / "last.pt"), REPO / "tests" / "data" / "images"
    stats = tmp_path / "eval.json"
    result = invoke("eval", "--ann", str(BODY13), "--images", str(images), "--weights", weights, "--device", "cpu",
                    "--workers", "0", "--out", str(tmp_path / "eval"), "--json", str(stats))
    assert result.exit_code == 0, result.output
    assert "uniform" not in result.output and json.loads(stats.read_text())["sigmas"][7] == 0.107  # the model's own
    # --sigmas of the wrong length: one line naming the file
    result = invoke("eval", "--ann", str(BODY13), "--images", str(images), "--weights", weights, "--device", "cpu",
                    "--sigmas", MOUSE_SIGMAS)
    assert_one_line_error(result, "13 keypoints per person but 4 sigmas given")

    box = [30, 20, 120, 260]
    preds, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    image = sorted(images.iterdir())[0]
    result = invoke("predict", str(image), "--weights", weights, "--bbox", ",".join(map(str, box)), "--json",
                    str(preds), "--out", str(drawn), "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads(preds.read_text())[0]
    assert len(record["keypoints"]) == 13 * 3 and record["keypoint_names"][:2] == ["head", "l_shoulder"]
    picture = cv2.imread(str(drawn / f"{image.stem}.jpg"))
    assert picture is not None and picture.shape[:2] == cv2.imread(str(image)).shape[:2]

    sheets = tmp_path / "sheets"
    result = invoke("visualize-heatmaps", "--ann", str(BODY13), "--images", str(images), "--weights", weights,
                    "--max", "1", "--joints", "head,l_wrist,R_ANKLE", "--out", str(sheets), "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert len(list(sheets.glob("*.png"))) == 1
    result = invoke("visualize-heatmaps", "--ann", str(BODY13), "--images", str(images), "--weights", weights,
                    "--joints", "left_eye", "--device", "cpu")
    assert_one_line_error(result, "left_eye", "l_shoulder")  # COCO's names are not this model's


def test_the_exported_model_keeps_its_set(body13_run, tmp_path):
    """benchmarks/export_model.py (fp16, no optimizer state: what comes back from a device run) keeps the set."""
    import subprocess
    import sys
    out, _ = body13_run
    target = tmp_path / "small.pt"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "export_model.py"), str(out / "last.pt"),
                           str(target)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert checkpoint_schema(target).names == checkpoint_schema(out / "last.pt").names
    assert checkpoint_schema(target).names[0] == "head"


def test_a_keypoint_category_numbered_other_than_1(body13_run, tmp_path):
    """An animal or hand file may number its category 7 and keep id 1 for something else: the keypoint
    category is found by its keypoints, and eval scores the same as with id 1; its own results file reads back."""
    out, _ = body13_run
    data = json.loads(BODY13.read_text())
    data["categories"][0]["id"] = 7
    data["categories"].append({"id": 1, "name": "background"})
    for ann in data["annotations"]:
        ann["category_id"] = 7
    renumbered = tmp_path / "body13_id7.json"
    renumbered.write_text(json.dumps(data))
    dataset = CocoKeypoints.load(renumbered)
    assert dataset.file_category_id == 7 and dataset.keypoint_names[0] == "head"
    assert dataset.num_people == CocoKeypoints.load(BODY13).num_people > 0
    images, stats = REPO / "tests" / "data" / "images", {}
    for name, ann in (("id1", BODY13), ("id7", renumbered)):
        result = invoke("eval", "--ann", str(ann), "--images", str(images), "--weights", str(out / "last.pt"),
                        "--device", "cpu", "--workers", "0", "--out", str(tmp_path / name),
                        "--json", str(tmp_path / f"{name}.json"))
        assert result.exit_code == 0, result.output
        stats[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert {r["category_id"] for r in json.loads((tmp_path / "id7" / "results.json").read_text())} == {7}
    keys = ("AP", "AP50", "AR", "people")
    assert [stats["id7"].get(k) for k in keys] == [stats["id1"].get(k) for k in keys]
    # The GT as results, numbered as the file numbers its category: every person found exactly
    perfect = tmp_path / "perfect.json"
    perfect.write_text(json.dumps([{"image_id": a["image_id"], "category_id": 7, "keypoints": a["keypoints"],
                                    "score": 1.0} for a in data["annotations"] if any(a["keypoints"][2::3])]))
    result = invoke("eval", "--ann", str(renumbered), "--results", str(perfect), "--json", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["AP"] > 0.99


def test_the_model_draws_its_own_skeleton():
    from hrpose_cli.viz.draw import draw_poses

    schema = from_category(json.loads(BODY13.read_text())["categories"][0], "b")
    keypoints = np.zeros((1, 13, 3))
    keypoints[0, :, 0] = np.linspace(10, 90, 13)
    keypoints[0, :, 1] = 50
    keypoints[0, :, 2] = 1
    blank = np.zeros((100, 100, 3), np.uint8)
    with_limbs = draw_poses(blank, keypoints, schema=schema)
    no_limbs = draw_poses(blank, keypoints, schema=dataclasses.replace(schema, skeleton=()))
    assert (with_limbs != no_limbs).any()  # the limbs of its skeleton are drawn


def test_mismatches_are_one_line_errors(tmp_path, tiny_weights, fixture_data):
    images = str(fixture_data / "images")
    result = invoke("train", "--train-ann", str(BODY13), "--train-images", images, "--train-ann",
                    str(fixture_data / "person_keypoints.json"), "--train-images", images, "--device", "cpu")
    assert_one_line_error(result, "person_keypoints.json: its keypoints", "training files must name the same set")
    result = invoke("train", "--train-ann", str(BODY13), "--train-images", images, "--sigmas", "0.1,0.2",
                    "--device", "cpu", "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "--sigmas: 2 sigmas given, but the set has 13 keypoints")
    result = invoke("train", "--train-ann", str(BODY13), "--train-images", images, "--flip-pairs", "head:tail",
                    "--device", "cpu", "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "--flip-pairs: no keypoint 'tail'")
    data = json.loads(BODY13.read_text())
    del data["categories"][0]["keypoints"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(data))
    result = invoke("train", "--train-ann", str(bare), "--train-images", images, "--device", "cpu")
    assert_one_line_error(result, "bare.json", "its category names no 'keypoints', so COCO's 17 are assumed")
    # a results file of COCO's 17 joints against the 13-joint annotations
    coco_results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
                    for a in json.loads((fixture_data / "person_keypoints.json").read_text())["annotations"][:2]]
    results = tmp_path / "r17.json"
    results.write_text(json.dumps(coco_results))
    result = invoke("eval", "--ann", str(BODY13), "--results", str(results))
    assert_one_line_error(result, "r17.json: entry 0 has 51 keypoint values, expected 39")
    # a COCO-17 model on the 13-joint set
    result = invoke("eval", "--ann", str(BODY13), "--images", images, "--weights", str(tiny_weights), "--device", "cpu")
    assert_one_line_error(result, "predicts 17 keypoints", "labels 13")


def test_joint_weights_on_off_list_and_the_old_flag(tmp_path, fixture_data):
    from hrpose_cli.cli.train import _joint_weights

    assert _joint_weights("on", False) is True and _joint_weights("OFF", False) is False
    assert _joint_weights(None, True) is False and _joint_weights(None, False) is None
    assert _joint_weights("1,2.5", False) == [1.0, 2.5]
    with pytest.raises(HrposeError, match="contradict"):
        _joint_weights("on", True)
    result = invoke("train", "--train-ann", str(BODY13), "--train-images", str(fixture_data / "images"),
                    "--joint-weights", "1,2", "--device", "cpu", "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "--joint-weights: 2 joint weights given, but the set has 13 keypoints")


def test_coco17_checkpoints_stay_coco17(tiny_weights, tmp_path):
    assert checkpoint_schema(tiny_weights) is COCO17
    assert checkpoint_schema(None) is COCO17  # the default model
    assert CocoKeypoints.load(REPO / "tests" / "data" / "person_keypoints.json").schema is COCO17
    # A run on COCO-17 data writes the set into its checkpoints: it still reads as the one COCO-17.
    checkpoint = read_checkpoint(tiny_weights)
    named = save_checkpoint(tmp_path / "named.pt", checkpoint["state_dict"], HRNetConfig(**checkpoint["config"]),
                            keypoints=COCO17.to_dict())
    assert read_checkpoint(named)["keypoints"] == COCO17.to_dict()
    assert checkpoint_schema(named) is COCO17


# -- the mouse (real DeepLabCut data; not shipped: its data README allows no copies) ----------------------


def test_mouse_end_to_end(shared_data, tmp_path, tiny_weights):
    mouse = shared_data / "custom" / "mouse"
    if not (mouse / "annotations" / "train.json").is_file():
        pytest.skip(f"{mouse} not found")
    images = str(mouse / "images")
    small = tmp_path / "train.json"
    data = json.loads((mouse / "annotations" / "train.json").read_text())
    keep = {i["id"] for i in data["images"][:16]}
    small.write_text(json.dumps({**data, "images": [i for i in data["images"] if i["id"] in keep],
                                 "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}))
    out = tmp_path / "run"
    result = invoke("train", "--train-ann", str(small), "--train-images", images, "--val-ann",
                    str(mouse / "annotations" / "val.json"), "--val-images", images, "--arch", "w16-small",
                    "--input-size", "128x96", "--epochs", "1", "--batch", "8", "--device", "cpu", "--workers", "0",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "flip pairs: left_ear:right_ear" in result.output and "no --sigmas for the 4 keypoints of 'mouse'" in result.output
    result = invoke("eval", "--ann", str(mouse / "annotations" / "val.json"), "--images", images, "--weights",
                    str(out / "best.pt"), "--sigmas", MOUSE_SIGMAS, "--device", "cpu", "--workers", "0",
                    "--out", str(tmp_path / "eval"))
    assert result.exit_code == 0 and "AP" in result.output, result.output
    frame = sorted(Path(images).iterdir())[0]
    preds = tmp_path / "p.json"
    result = invoke("predict", str(frame), "--weights", str(out / "best.pt"), "--json", str(preds), "--device", "cpu")
    assert result.exit_code == 0 and "the detector finds people" in result.output, result.output
    result = invoke("predict", str(frame), "--weights", str(out / "best.pt"), "--bbox", "0,124,115,170", "--json",
                    str(preds), "--out", str(tmp_path / "drawn"), "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads(preds.read_text())[0]
    assert record["keypoint_names"] == ["snout", "left_ear", "right_ear", "tail_base"] and len(record["keypoints"]) == 12
