"""Function matching from a trained HRNet (`hrpose train --teacher MODEL.pt --teacher-mode match`): its heatmaps
on the student's own crops are the targets, whatever its width, input size or keypoint set."""

import contextlib
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import assert_one_line_error
from hrpose_cli.cli.app import app
from hrpose_cli.core import codec, geometry
from hrpose_cli.core.schema import COCO17
from hrpose_cli.engine.distill import PoseTeacher
from hrpose_cli.model.checkpoints import load_model, save_checkpoint
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet
from test_distill import _student_crops

runner = CliRunner()
CPU = torch.device("cpu")


def _heatmaps(weights, crops: torch.Tensor, flip: bool) -> torch.Tensor:
    """The teacher's test-time answer computed here by hand: unfolded network, official flip rule."""
    network, _ = load_model(weights)
    perm = torch.from_numpy(COCO17.flip_permutation())
    x = geometry.normalize(crops)
    with torch.no_grad():
        out = network(x)
        if flip:
            out = (out + codec.flip_back(network(x.flip(-1)), perm, shift=True)) * 0.5
    return out


@pytest.mark.parametrize("flip", [False, True])
def test_targets_are_the_teachers_heatmaps_and_keep_the_annotation(fixture_data, tiny_weights, flip):
    crops, crop_joints = _student_crops(fixture_data, 15.0, False)
    teacher = PoseTeacher(tiny_weights, CPU, (64, 48), flip=flip, channels_last=False)
    want = _heatmaps(tiny_weights, crops, flip)
    taught = teacher.heatmaps(crops, contextlib.nullcontext)
    assert taught.shape == want.shape == (len(crops), 17, 64, 48)
    assert (taught - want).norm() / want.norm() < 1e-4  # BatchNorms folded: the same function

    xy = torch.from_numpy(crop_joints[..., :2]).float()
    vis = torch.from_numpy(crop_joints[..., 2]).float()
    n = len(vis)
    vis[1] = 0  # a box without keypoints: the teacher alone
    valid = torch.ones(n)
    valid[2] = 0  # a crop whose image failed: nothing is taught
    mixed = torch.zeros(n, dtype=torch.bool)
    mixed[3] = True  # a blended crop: its annotation no longer describes it, the teacher teaches
    target, weight = teacher.match_targets(crops, xy, vis, valid, mixed, 1.0, 2.0, 4.0, contextlib.nullcontext)
    gt_target, gt_weight = codec.encode(xy, vis, (64, 48), 2.0, 4.0)
    labelled = (vis > 0) & (valid > 0)[:, None] & ~mixed[:, None]
    assert labelled.any() and (~labelled).any()
    assert torch.equal(target[labelled], gt_target[labelled]) and torch.equal(weight[labelled], gt_weight[labelled])
    assert torch.allclose(target[~labelled], taught[~labelled])
    assert float(weight[2].sum()) == 0.0 and bool((weight[[1, 3]] == 1).all())
    half, _ = teacher.match_targets(crops, xy, vis, valid, mixed, 0.5, 2.0, 4.0, contextlib.nullcontext)
    assert torch.allclose(half[labelled], 0.5 * gt_target[labelled] + 0.5 * taught[labelled], atol=1e-6)


def test_a_teacher_of_another_input_size_answers_on_the_students_grid(fixture_data, tmp_path):
    """A 384x288 teacher sees the 256x192 crops resized and its 96x72 heatmaps come back at 64x48."""
    torch.manual_seed(0)
    config = HRNetConfig.from_arch("w16-small", input_size=(384, 288))
    path = save_checkpoint(tmp_path / "big.pt", PoseHRNet(config), config)
    crops, _ = _student_crops(fixture_data, 0.0, False)
    taught = PoseTeacher(path, CPU, (64, 48), flip=False, channels_last=False).heatmaps(crops, contextlib.nullcontext)
    big = torch.nn.functional.interpolate(crops, size=(384, 288), mode="bilinear", align_corners=False)
    want = torch.nn.functional.interpolate(_heatmaps(path, big, False), size=(64, 48), mode="bilinear",
                                           align_corners=False)
    assert taught.shape == (len(crops), 17, 64, 48)
    assert (taught - want).norm() / want.norm() < 1e-4


def test_cli_trains_from_an_hrnet_teacher(tmp_path, fixture_data, tiny_weights):
    run = tmp_path / "run"
    result = runner.invoke(app, [
        "train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images", str(fixture_data / "images"),
        "--arch", "w16-small", "--batch", "8", "--epochs", "1", "--recipe", "strong", "--teacher", str(tiny_weights),
        "--teacher-mode", "match", "--teacher-flip", "--gt-weight", "0.5", "--mixup", "0.5", "--out", str(run)])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["teacher"] == str(tiny_weights.resolve()) and config["teacher_mode"] == "match"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(history[-1]["loss"]) and history[-1]["loss"] > 0
    assert (run / "last.pt").is_file()


def test_cli_bad_hrnet_teachers(tmp_path, fixture_data, tiny_weights):
    base = ["train", "--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images",
            str(fixture_data / "images"), "--out", str(tmp_path / "run")]
    # fill mode is MoveNet's: an HRNet teacher has no "unlabelled joints only" mode
    assert_one_line_error(runner.invoke(app, base + ["--teacher", str(tiny_weights)]), "--teacher", "--teacher-mode match")
    # a teacher of other keypoints cannot teach these
    config = HRNetConfig.from_arch("w16-small", num_joints=4)
    mouse = save_checkpoint(tmp_path / "mouse.pt", PoseHRNet(config), config)
    assert_one_line_error(runner.invoke(app, base + ["--teacher", str(mouse), "--teacher-mode", "match"]),
                          "mouse.pt", "4 keypoints", "has 17")
    # a teacher of another aspect ratio would see the crops stretched
    config = HRNetConfig.from_arch("w16-small", input_size=(256, 256))
    square = save_checkpoint(tmp_path / "square.pt", PoseHRNet(config), config)
    assert_one_line_error(runner.invoke(app, base + ["--teacher", str(square), "--teacher-mode", "match"]),
                          "square.pt", "256x256", "aspect ratio")
    # a file that is no checkpoint
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert_one_line_error(runner.invoke(app, base + ["--teacher", str(junk), "--teacher-mode", "match"]), "junk.pt")
    assert not (tmp_path / "run").exists()
