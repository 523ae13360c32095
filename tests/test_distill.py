"""Distillation from MoveNet: the rebuilt teacher, its labels in the student's crop frame, and --time-limit."""

import contextlib
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import REPO, assert_one_line_error
from hrpose_cli.cli.app import app
from hrpose_cli.core import geometry
from hrpose_cli.data.augment import CropParams, crop_geometry
from hrpose_cli.data.images import PackedImages, read_image
from hrpose_cli.data.train_data import load_person_table
from hrpose_cli.engine.distill import Distiller
from hrpose_cli.engine.trainer import fitted_epochs
from hrpose_cli.model.checkpoints import read_checkpoint

runner = CliRunner()


def _fixture_batch(fixture_data, rotation: float, mirror: bool):
    table = load_person_table([(fixture_data / "person_keypoints.json", fixture_data / "images")])
    images = [read_image(p) for p in table.image_paths]
    packed = PackedImages.pack(images)
    centers, scales = geometry.box_to_center_scale(table.boxes, 192 / 256)
    n = len(centers)
    params = CropParams(centers, scales, np.full(n, rotation), np.full(n, mirror))
    widths = np.array([images[i].shape[1] for i in table.image_of], dtype=np.float64)
    crop_to_image, crop_joints = crop_geometry(params, table.joints, widths, (192, 256), table.schema.flip_permutation())
    return packed, torch.from_numpy(table.image_of), torch.from_numpy(crop_to_image).float(), crop_joints


def test_teacher_scores_well_on_real_people(teacher_json, fixture_data):
    """MoveNet rebuilt from its graph finds the annotated joints (benchmarks/teacher_ap.py): a wrong layer or
    decoding step would not. 0.27 on this crowded fixture, 0.51 on coco-real val."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "teacher_ap.py"), str(fixture_data / "person_keypoints.json"),
                           str(fixture_data / "images"), "--teacher", str(teacher_json)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert float(re.search(r"; AP ([0-9.]+),", done.stdout).group(1)) > 0.2, done.stdout


@pytest.mark.parametrize("rotation, mirror", [(0.0, False), (10.0, True)])
def test_teacher_labels_land_on_the_annotations_in_the_students_crop(teacher_json, fixture_data, rotation, mirror):
    """Turned and mirrored crops: the teacher's joints, mapped into the student's crop, sit on the GT.

    In these crowded photos MoveNet sometimes picks a neighbour, so the check is per person: most people
    must match within a few pixels (a mirror, scale or offset slip would move every one by tens of pixels).
    """
    packed, index, crop_to_image, crop_joints = _fixture_batch(fixture_data, rotation, mirror)
    distiller = Distiller(teacher_json, torch.device("cpu"), (256, 192), (64, 48), 16, min_score=0.0, feature_weight=0.0)
    taught, _ = distiller.teach(packed.pixels, packed.offsets, packed.shapes, index, crop_to_image, contextlib.nullcontext)
    taught_xy = taught[..., :2]
    labelled = crop_joints[..., 2] > 0
    error = np.linalg.norm(taught_xy.numpy() - crop_joints[..., :2], axis=-1)
    per_person = np.array([np.median(e[m]) for e, m in zip(error, labelled)])
    assert (per_person < 12).mean() >= 0.5, per_person.round(1)


def test_annotated_joints_win_only_found_people_are_filled_and_features_line_up(teacher_json, fixture_data):
    packed, index, crop_to_image, crop_joints = _fixture_batch(fixture_data, 0.0, False)
    distiller = Distiller(teacher_json, torch.device("cpu"), (256, 192), (64, 48), 16, min_score=0.3, feature_weight=1.0)
    xy = torch.from_numpy(crop_joints[..., :2]).float()
    vis = torch.from_numpy(crop_joints[..., 2]).float()
    valid = torch.ones(len(index))
    valid[0] = 0  # a crop whose image failed to decode: nothing is filled in
    new_xy, new_vis, features = distiller.label(packed.pixels, packed.offsets, packed.shapes, index, crop_to_image,
                                                xy, vis, valid, contextlib.nullcontext)
    kept = vis > 0
    assert torch.equal(new_xy[kept], xy[kept]) and torch.equal(new_vis[kept], vis[kept])
    assert torch.equal(new_vis[0], vis[0])
    filled = (new_vis > vis).any(1)
    assert 0 < int(filled.sum()) < len(index) - 1  # some people gain joints, not every one (neighbours picked)
    assert features.shape == (len(index), distiller.teacher.feature_channels, 64, 48)
    assert float(distiller.feature_loss(torch.zeros_like(features), features, valid)) == pytest.approx(1.0)


def test_cli_trains_with_the_teacher_and_keeps_its_adapter(tmp_path, teacher_json, fixture_data):
    run = tmp_path / "run"
    args = ["train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images",
            str(fixture_data / "images"), "--arch", "w16-small", "--input-size", "256x192", "--batch", "4",
            "--teacher", str(teacher_json), "--distill-features", "0.001", "--out", str(run)]
    first = runner.invoke(app, args + ["--epochs", "1"])
    assert first.exit_code == 0, first.output
    state = read_checkpoint(run / "last.pt")["train_state"]
    assert set(state["adapter"]) == {"weight", "bias"}
    config = json.loads((run / "config.json").read_text())
    assert config["teacher"] == str(teacher_json.resolve()) and config["distill_features"] == 0.001


def test_resume_with_the_teacher_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, teacher_json, fixture_data):
    from test_train import _StopAfter, subset, tiny

    from hrpose_cli.engine import trainer
    from hrpose_cli.engine.train_config import TrainConfig

    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 6, min_joints=5)
    common = dict(epochs=2, batch=4, workers=1, teacher=str(teacher_json), distill_features=0.01)
    images = fixture_data / "images"
    trainer.run(tiny(tmp_path, ann, images, out=str(tmp_path / "whole"), **common))
    with pytest.raises(KeyboardInterrupt):
        trainer.run(tiny(tmp_path, ann, images, out=str(tmp_path / "parts"), **common), _StopAfter(1))
    trainer.run(TrainConfig(out=str(tmp_path / "parts"), resume=True, device="cpu", workers=1))
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for key in a["train_state"]["adapter"]:
        assert torch.equal(a["train_state"]["adapter"][key], b["train_state"]["adapter"][key]), key
    assert [m["loss"] for m in a["train_state"]["history"]] == [m["loss"] for m in b["train_state"]["history"]]


def test_time_limit_shortens_the_run_and_its_schedule(tmp_path, fixture_data):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images",
                                 str(fixture_data / "images"), "--arch", "w16-small", "--input-size", "128x96",
                                 "--batch", "4", "--epochs", "50", "--time-limit", "0.0001", "--out", str(run)])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 1 and config["run"]["lr_milestones"] == [1, 1]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_time_limit_waits_for_an_estimate_without_the_start_up():
    """A run resumed near its end (epoch 321 of 420, lr drops at 340 and 400): its first epoch carries the
    start-up (25 s against 3 s an epoch). Refitting on it alone would shrink the schedule to 339 epochs, the
    next epoch's lr past both drops, and grow it back an epoch later; the refit waits for the second epoch."""
    assert fitted_epochs(321, [25.0], 480, 420, 420) == 420
    assert fitted_epochs(322, [25.0, 28.0], 480, 420, 420) == 420  # 3 s an epoch: the 98 left fit
    assert fitted_epochs(321, [25.0], 240, 420, 420) == 420
    assert fitted_epochs(322, [25.0, 28.0], 240, 420, 420) == 392  # 212 s left at 3 s an epoch: 70 more
    assert fitted_epochs(1, [20.0], 30, 50, 50) == 1  # the first epoch used more than half the limit: stop
    assert fitted_epochs(3, [20.0, 30.0, 40.0], 600, 50, 50) == 50  # never past --epochs


@pytest.mark.parametrize("args, words", [
    (["--teacher", "nowhere.json"], ["--teacher", "not found"]),
    (["--distill-features", "0.5"], ["--distill-features", "needs --teacher"]),
    (["--time-limit", "0"], ["--time-limit", "positive"]),
    (["--teacher", "."], ["--teacher", "is a folder"]),
    (["--teacher-min-score", "1.5"], ["--teacher-min-score", "between 0 and 1"]),
])
def test_cli_bad_distillation_options(tmp_path, fixture_data, args, words):
    result = runner.invoke(app, ["train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images",
                                 str(fixture_data / "images"), "--out", str(tmp_path / "run")] + args)
    assert_one_line_error(result, *words)
    assert not (tmp_path / "run").exists()


def test_cli_teacher_weights_shorter_than_the_manifest(tmp_path, fixture_data, teacher_json):
    (tmp_path / teacher_json.name).write_text(teacher_json.read_text())
    bin_name = teacher_json.with_suffix(".bin").name
    (tmp_path / bin_name).write_bytes(teacher_json.with_suffix(".bin").read_bytes()[:1000])
    result = runner.invoke(app, ["train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images",
                                 str(fixture_data / "images"), "--teacher", str(tmp_path / teacher_json.name),
                                 "--out", str(tmp_path / "run")])
    assert_one_line_error(result, bin_name, "shorter than its manifest")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, words", [
    ("not json", ["teacher.json", "not a TensorFlow.js graph model"]),
    ('{"modelTopology": {"node": []}, "weightsManifest": []}', ["teacher.json", "not a MoveNet SinglePose model"]),
    ('{"modelTopology": {"node": []}, "weightsManifest": [{"paths": ["w.bin"], "weights": []}]}',
     ["teacher.json", "not found (w.bin)"]),
])
def test_cli_unusable_teacher_file(tmp_path, fixture_data, text, words):
    teacher = tmp_path / "teacher.json"
    teacher.write_text(text)
    result = runner.invoke(app, ["train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images",
                                 str(fixture_data / "images"), "--teacher", str(teacher), "--out", str(tmp_path / "run")])
    assert_one_line_error(result, *words)
    assert not (tmp_path / "run").exists()


# -- function matching (--teacher-mode match) ---------------------------------------------------------------


def _student_crops(fixture_data, rotation: float, mirror: bool):
    packed, index, crop_to_image, crop_joints = _fixture_batch(fixture_data, rotation, mirror)
    crops = geometry.warp_crops(packed.pixels, packed.offsets, packed.shapes, index, crop_to_image, (192, 256))
    return crops, crop_joints


def test_teachers_mirrored_heads_map_back_onto_its_own_answer(teacher_json, fixture_data):
    """Heads of the mirrored crops, mapped back (unmirror_head), decode to the joints of the crops themselves:
    a side left unswapped or a dx sign wrong would move them by a cell (4 px) or more, and reading the offset's x
    as x instead of 1 - x shifts them sideways by 0.77 px on average (0.06 when right)."""
    from hrpose_cli.model.movenet import MoveNetTeacher, decode_heads, unmirror_head

    crops, _ = _student_crops(fixture_data, 0.0, False)
    teacher = MoveNetTeacher.load(teacher_json)
    square = torch.nn.functional.pad(crops[..., :256, :], (32, 32))  # 256 x 256, the teacher's input
    with torch.no_grad():
        plain = teacher(square)
        heads = {k: unmirror_head(k, v) for k, v in teacher.heads_of(square.flip(-1)).items() if k != "features"}
        mirrored = decode_heads(heads, teacher.center_weight, teacher.distance_bias, 256)
        both = teacher(square, flip=True)
    confident = (plain[..., 2] > 0.5) & (mirrored[..., 2] > 0.5)
    gap = (mirrored[..., :2] - plain[..., :2])[confident]
    assert confident.sum() > 50 and gap.norm(dim=-1).median() < 3 and abs(gap[:, 0].mean()) < 0.4, gap.mean(0)
    assert ((both[..., :2] - plain[..., :2])[confident].norm(dim=-1).median() < 2)


def test_teacher_flip_test_scores_well_on_real_people(teacher_json, fixture_data, tmp_path):
    """teacher_ap.py --flip: still finds the annotated joints, and its results file scores the same in hrpose eval."""
    results = tmp_path / "teacher.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "teacher_ap.py"), str(fixture_data / "person_keypoints.json"),
                           str(fixture_data / "images"), "--teacher", str(teacher_json), "--flip",
                           "--results-out", str(results)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ap = float(re.search(r"; AP ([0-9.]+),", done.stdout).group(1))
    assert ap > 0.2, done.stdout
    scored = runner.invoke(app, ["eval", "--ann", str(fixture_data / "person_keypoints.json"), "--results", str(results),
                                 "--json", str(tmp_path / "stats.json")])
    assert scored.exit_code == 0, scored.output
    assert abs(json.loads((tmp_path / "stats.json").read_text())["AP"] - ap) < 1e-3


@pytest.mark.parametrize("rotation, mirror, flip", [(0.0, False, False), (15.0, True, False), (15.0, True, True)])
def test_teacher_on_the_students_own_crop_lands_on_the_annotations(teacher_json, fixture_data, rotation, mirror, flip):
    """The teacher sees the student's crop itself, padded to a square: mapped back, its joints sit on the GT
    (with its flip test too, which must change its answer)."""
    crops, crop_joints = _student_crops(fixture_data, rotation, mirror)
    distiller = Distiller(teacher_json, torch.device("cpu"), (256, 192), (64, 48), 16, min_score=0.0, feature_weight=0.0,
                          flip=flip)
    taught = distiller.teach_crops(crops, contextlib.nullcontext)
    if flip:
        distiller.flip = False
        assert not torch.equal(taught, distiller.teach_crops(crops, contextlib.nullcontext))
    labelled = crop_joints[..., 2] > 0
    error = np.linalg.norm(taught[..., :2].numpy() - crop_joints[..., :2], axis=-1)
    per_person = np.array([np.median(e[m]) for e, m in zip(error, labelled)])
    assert (per_person < 12).mean() >= 0.5, per_person.round(1)
    # A slip of the padding (32 px) or of the scale would shift every well-found joint the same way.
    close = labelled & (per_person < 12)[:, None] & (error < 12)
    signed = (taught[..., :2].numpy() - crop_joints[..., :2])[close].mean(0)
    assert np.abs(signed).max() < 1.5 and np.median(per_person[per_person < 12]) < 8, (signed, per_person.round(1))


def test_match_targets_teach_every_joint_and_keep_the_annotation(teacher_json, fixture_data):
    from hrpose_cli.core import codec

    crops, crop_joints = _student_crops(fixture_data, 0.0, False)
    distiller = Distiller(teacher_json, torch.device("cpu"), (256, 192), (64, 48), 16, min_score=0.3, feature_weight=0.0)
    xy = torch.from_numpy(crop_joints[..., :2]).float()
    vis = torch.from_numpy(crop_joints[..., 2]).float()
    n = len(vis)
    vis[1] = 0  # a person with a box and no keypoints (--unlabelled-ann): the teacher alone
    valid = torch.ones(n)
    valid[2] = 0  # a crop whose image failed: nothing is taught
    mixed = torch.zeros(n, dtype=torch.bool)
    mixed[3] = True  # a mixed crop: its annotation is dropped, the teacher teaches
    taught = distiller.teach_crops(crops, contextlib.nullcontext)
    target, weight = distiller.match_targets(crops, xy, vis, valid, mixed, 1.0, 2.0, 4.0, contextlib.nullcontext)
    gt_target, _ = codec.encode(xy, vis, (64, 48), 2.0, 4.0)
    t_target, t_weight = codec.encode(taught[..., :2], torch.ones(n, 17), (64, 48), 2.0, 4.0)
    t_target = t_target * taught[..., 2, None, None]
    labelled = (vis > 0) & (valid > 0)[:, None] & ~mixed[:, None]
    assert torch.equal(target[labelled], gt_target[labelled])  # gt weight 1: annotated joints are the GT's
    assert float(weight[2].abs().sum()) == 0.0
    for person in (1, 3):  # no usable annotation: every joint the teacher's, its peak the teacher's score
        assert torch.allclose(target[person], t_target[person]) and torch.equal(weight[person], t_weight[person])
        assert torch.allclose(target[person].amax((1, 2)), taught[person, :, 2] * (t_weight[person] > 0))
    # Annotated people the teacher found gain targets on their unlabelled joints; those it did not, none.
    unlabelled_taught = ((vis == 0) & (weight > 0))[4:]
    assert 0 < int(unlabelled_taught.any(1).sum()) < n - 4
    half, _ = distiller.match_targets(crops, xy, vis, valid, mixed, 0.5, 2.0, 4.0, contextlib.nullcontext)
    found = (weight * (vis == 0)).sum(1) > 0
    rows = labelled & found[:, None]
    assert torch.allclose(half[rows], 0.5 * gt_target[rows] + 0.5 * t_target[rows], atol=1e-6)


def test_mixup_blends_two_different_crops_and_says_which():
    from hrpose_cli.data.augment import apply_mixup, sample_mixup

    crops = torch.rand(6, 3, 8, 4) * 255
    draws = sample_mixup(np.random.default_rng(0), 6, 0.5)
    draws[0] = [0.0, 0.7]  # partner 0 is itself: the next crop is taken instead
    draws[1] = [0.0, 1.0]
    out, mixed = apply_mixup(crops, torch.from_numpy(draws).float())
    assert torch.allclose(out[0], 0.7 * crops[0] + 0.3 * crops[1], atol=1e-4)
    assert torch.equal(out[1], crops[1]) and bool(mixed[0]) and not bool(mixed[1])
    assert torch.equal(mixed, torch.from_numpy(draws[:, 1] < 1))
    assert (draws[:, 1] >= 0.5).all() and (draws[:, 1] <= 1).all()
    never = sample_mixup(np.random.default_rng(1), 100, 0.0)
    assert (never[:, 1] == 1).all()


def _boxes_only(fixture_data, path):
    data = json.loads((fixture_data / "person_keypoints.json").read_text())
    for ann in data["annotations"]:
        ann["keypoints"] = [0] * 51
        ann["num_keypoints"] = 0
    path.write_text(json.dumps(data))
    return path


def test_unlabelled_boxes_join_the_person_table(tmp_path, fixture_data):
    ann = _boxes_only(fixture_data, tmp_path / "boxes.json")
    pairs = [(fixture_data / "person_keypoints.json", fixture_data / "images")]
    labelled = load_person_table(pairs)
    both = load_person_table(pairs, unlabelled=[(ann, fixture_data / "images")])
    data = json.loads(ann.read_text())
    boxes = [a for a in data["annotations"] if not a["iscrowd"]]
    assert len(both) == len(labelled) + len(boxes)
    assert both.num_images == labelled.num_images  # the same images, read once
    assert (both.joints[len(labelled):] == 0).all() and np.array_equal(both.joints[: len(labelled)], labelled.joints)
    assert [n for _, n in both.sources] == [len(labelled), len(boxes)]


def test_unlabelled_people_photos_load(shared_data):
    people = shared_data / "people" / "humanseg"
    if not people.is_dir():
        pytest.skip(f"{people} not found")
    table = load_person_table([(shared_data / "coco-real/annotations/person_keypoints_val.json", shared_data / "coco-real/images")],
                              unlabelled=[(people / "annotations/persons.json", people / "images")])
    assert len(table) - table.sources[0][1] == table.sources[1][1] > 250
    assert (table.boxes[:, 2:] > 0).all()


def test_cli_trains_by_function_matching_on_unlabelled_boxes_with_mixup(tmp_path, teacher_json, fixture_data):
    run = tmp_path / "run"
    ann = _boxes_only(fixture_data, tmp_path / "boxes.json")
    args = ["train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images", str(fixture_data / "images"),
            "--unlabelled-ann", str(ann), "--unlabelled-images", str(fixture_data / "images"),
            "--arch", "w16-small", "--input-size", "256x192", "--batch", "8", "--recipe", "strong", "--epochs", "1",
            "--teacher", str(teacher_json), "--teacher-mode", "match", "--gt-weight", "0.7", "--mixup", "0.5",
            "--teacher-flip", "--out", str(run)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["teacher_mode"] == "match" and config["gt_weight"] == 0.7 and config["mixup"] == 0.5
    assert config["teacher_flip"] is True
    assert config["unlabelled_ann"] == [str(ann.resolve())]
    sources = config["run"]["sources"]
    assert len(sources) == 2 and sources[1]["ann"] == str(ann)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(history[-1]["loss"]) and history[-1]["loss"] > 0


@pytest.mark.parametrize("args, words", [
    (["--teacher-mode", "copy"], ["--teacher-mode", "fill, match"]),
    (["--teacher-mode", "match"], ["--teacher-mode", "needs --teacher"]),
    (["--teacher-flip"], ["--teacher-flip", "needs --teacher"]),
    (["--gt-weight", "0.5"], ["--gt-weight", "needs --teacher-mode match"]),
    (["--mixup", "0.5"], ["--mixup", "needs --teacher-mode match"]),
    (["--mixup", "2"], ["--mixup", "between 0 and 1"]),
    (["--unlabelled-ann", "x.json"], ["--unlabelled-ann", "--unlabelled-images"]),
    (["--unlabelled-ann", "x.json", "--unlabelled-images", "."], ["--unlabelled-ann", "needs --teacher-mode match"]),
])
def test_cli_bad_function_matching_options(tmp_path, fixture_data, args, words):
    result = runner.invoke(app, ["train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images",
                                 str(fixture_data / "images"), "--out", str(tmp_path / "run")] + args)
    assert_one_line_error(result, *words)
    assert not (tmp_path / "run").exists()


def test_cli_bad_function_matching_options_with_the_teacher(tmp_path, fixture_data, teacher_json):
    base = ["train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images", str(fixture_data / "images"),
            "--teacher", str(teacher_json), "--teacher-mode", "match", "--out", str(tmp_path / "run")]
    for extra, words in ((["--gt-weight", "1.5"], ["--gt-weight", "between 0 and 1"]),
                         (["--distill-features", "0.1"], ["--distill-features", "fill only"]),
                         (["--unlabelled-ann", str(tmp_path / "none.json"), "--unlabelled-images", str(fixture_data / "images")],
                          ["none.json"])):
        result = runner.invoke(app, base + extra)
        assert_one_line_error(result, *words)
        assert not (tmp_path / "run").exists()
