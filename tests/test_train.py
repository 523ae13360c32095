"""`hrpose train` on the CPU with a tiny HRNet: learning, exact resume, NaN stops, the plan, and bad input."""

import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hrpose_cli.cli.app import app
from hrpose_cli.core.schema import COCO17
from hrpose_cli.data.images import batch_loader
from hrpose_cli.data.train_data import PersonTable, TrainPlan
from hrpose_cli.engine import optim, trainer
from hrpose_cli.engine.train_config import TrainConfig, read_config_file
from hrpose_cli.engine.trainer import TrainReporter
from hrpose_cli.errors import HrposeError

TINY = {"width": 8, "stage_modules": [1, 1, 1], "num_blocks": 1, "num_joints": 17, "input_size": [64, 64]}


def subset(src: Path, out: Path, persons: int, min_joints: int = 10) -> Path:
    """A COCO file with the first ``persons`` non-crowd persons having at least ``min_joints`` labelled joints."""
    data = json.loads(src.read_text())
    anns = [a for a in data["annotations"] if not a.get("iscrowd") and a["num_keypoints"] >= min_joints][:persons]
    ids = {a["image_id"] for a in anns}
    out.write_text(json.dumps({"images": [i for i in data["images"] if i["id"] in ids], "annotations": anns,
                               "categories": data["categories"]}))
    return out


def tiny(tmp_path: Path, ann: Path, images: Path, **kw) -> TrainConfig:
    values = dict(train_ann=[str(ann)], train_images=[str(images)], model=TINY, device="cpu", workers=0,
                  log_every=1000, out=str(tmp_path / "run"))
    values.update(kw)
    return TrainConfig(**values)


def run_cli(*args: str):
    result = CliRunner().invoke(app, ["train", *args])
    assert "Traceback" not in result.output, result.output
    return result


def one_line_error(result, code: int = 1, after_start: bool = False) -> str:
    """The error line; nothing else is printed unless the run had started (then the error is the last line)."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 or after_start, result.output
    assert sum("error" in line for line in lines) == 1 and "error" in lines[-1], result.output
    return lines[-1]


# -- learning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["coco-real", "fixture"])
def test_overfits_a_few_real_people(tmp_path, source, request):
    if source == "coco-real":
        root = request.getfixturevalue("shared_data") / "coco-real"
        ann = subset(root / "annotations" / "person_keypoints_train.json", tmp_path / "few.json", 4)
        images = root / "images"
    else:
        root = request.getfixturevalue("fixture_data")
        if not (root / "person_keypoints.json").is_file():
            pytest.skip("tests/data not present")
        ann = subset(root / "person_keypoints.json", tmp_path / "few.json", 4)
        images = root / "images"
    config = tiny(tmp_path, ann, images, epochs=60, batch=4, augment=False, val_ann=str(ann),
                  val_images=str(images), val_every=30)
    result = trainer.run(config)
    losses = [m["loss"] for m in result.history]
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    run = tmp_path / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == list(range(1, 61))
    assert {"loss", "lr", "images_per_s", "data_wait_fraction", "gpu_mem_gib", "time_s"} <= set(lines[0])
    assert "AP" not in lines[0] and {"AP", "AP50", "ARl"} <= set(lines[29]) and "AP" in lines[59]
    steps = ["data_wait", "upload", "warps", "targets", "forward", "backward", "optimizer"]
    assert list(lines[0]["stage_seconds"]) == steps and list(lines[29]["stage_seconds"]) == steps + ["validation"]
    assert all(v >= 0 for m in lines for v in m["stage_seconds"].values())
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file() and (run / "loss.png").is_file()
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"] == TINY and saved["run"]["global_batch"] == 4 and saved["run"]["lr_milestones"] == [49, 57]


def test_loss_is_the_official_weighted_mse():
    pred, target = torch.rand(2, 17, 8, 6), torch.rand(2, 17, 8, 6)
    weight = torch.ones(2, 17)
    weight[0, 3] = 0
    official = sum(0.5 * torch.mean(((pred[:, j] - target[:, j]) * weight[:, j, None, None]) ** 2) for j in range(17)) / 17
    assert torch.allclose(optim.joints_mse_loss(pred, target, weight), official)


def test_schedule_scales_the_milestones_and_warms_up():
    drops = optim.milestones(210)
    assert drops == (170, 200)
    assert optim.lr_factor(170, 0, 10, drops, 0) == 1.0 and optim.lr_factor(171, 0, 10, drops, 0) == pytest.approx(0.1)
    assert optim.lr_factor(201, 5, 10, drops, 0) == pytest.approx(0.01)
    assert optim.lr_factor(1, 0, 10, drops, 2) == pytest.approx(1 / 20)
    assert optim.lr_factor(2, 9, 10, drops, 2) == 1.0


def test_schedule_takes_given_lr_steps_or_none():
    assert optim.milestones(210, [100]) == (100,) and optim.milestones(210, []) == ()
    assert optim.lr_factor(101, 0, 10, (100,), 0) == pytest.approx(0.1)
    assert optim.lr_factor(500, 3, 10, (), 0) == 1.0


# -- the plan ---------------------------------------------------------------------------------------


def _table(n: int) -> PersonTable:
    return PersonTable([f"img{i}.jpg" for i in range(n)], np.arange(n) // 2,
                       np.ones((n, 4)), np.ones((n, 17, 3)), [], COCO17)


def test_plan_shards_each_global_batch_and_resumes_identically():
    table = _table(23)
    one = TrainPlan(table, batch=6, epochs=3, seed=7)
    ranks = [TrainPlan(table, batch=3, epochs=3, seed=7, rank=r, world=2) for r in range(2)]
    # 22 persons (drop_last over ranks), 11 per rank: 3 whole batches of 3, the partial fourth dropped
    assert ranks[0].steps_per_epoch == ranks[1].steps_per_epoch == 3
    assert ranks[0].persons_per_epoch == 18
    for epoch in (1, 2, 3):
        for step in range(ranks[0].steps_per_epoch):
            both = np.concatenate([r.rank_indices(epoch, step) for r in ranks])
            assert sorted(both) == sorted(ranks[0].global_indices(epoch, step))
            assert not set(ranks[0].rank_indices(epoch, step)) & set(ranks[1].rank_indices(epoch, step))
    assert not np.array_equal(one.permutation(1), one.permutation(2))
    resumed = TrainPlan(table, batch=6, epochs=3, seed=7, first_epoch=2)
    assert len(resumed) == 2 * one.steps_per_epoch
    for k in range(len(resumed)):
        assert resumed[k] == one[k + one.steps_per_epoch] and resumed.locate(k) == one.locate(k + one.steps_per_epoch)
    # each image is decoded once per batch; its item names the positions of its persons
    positions = sorted(p for _, items in one[0] for p in items)
    assert positions == list(range(6))


# -- resume -----------------------------------------------------------------------------------------


class _StopAfter(TrainReporter):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def epoch_end(self, metrics):
        if metrics["epoch"] == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("recipe", [{}, {"recipe": "strong", "ema": 0.9}], ids=["seed", "strong+ema"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, fixture_data, recipe):
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 6, min_joints=5)
    common = dict(epochs=3, batch=4, workers=1, val_ann=str(ann), val_images=str(fixture_data / "images"), **recipe)
    images = fixture_data / "images"
    whole = trainer.run(tiny(tmp_path, ann, images, out=str(tmp_path / "whole"), **common))
    with pytest.raises(KeyboardInterrupt):
        trainer.run(tiny(tmp_path, ann, images, out=str(tmp_path / "parts"), **common), _StopAfter(1))
    assert torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["train_state"]["epoch"] == 1
    trainer.run(TrainConfig(out=str(tmp_path / "parts"), resume=True, device="cpu", workers=1))

    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    if recipe:  # the average is saved as the model; the trained weights continue from the training state
        raw_a, raw_b = a["train_state"]["raw_weights"], b["train_state"]["raw_weights"]
        assert all(torch.equal(raw_a[k], raw_b[k]) for k in raw_a)
        assert not all(torch.equal(raw_a[k], a["state_dict"][k]) for k in raw_a)
        assert a["train_state"]["ema_updates"] == b["train_state"]["ema_updates"] == 3 * 1  # 6 persons / batch 4
    for pa, pb in zip(a["train_state"]["optimizer"]["state"].values(), b["train_state"]["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    la = [(m["epoch"], m["loss"], m.get("AP")) for m in a["train_state"]["history"]]
    lb = [(m["epoch"], m["loss"], m.get("AP")) for m in b["train_state"]["history"]]
    assert la == lb and len(la) == 3
    assert len((tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()) == 3
    assert whole.history[-1]["loss"] == la[-1][1]


def test_a_decoding_worker_outlives_ctrl_c_so_the_main_process_alone_handles_it(fixture_data):
    """Ctrl-C reaches the workers too; one that died of it left the main process (or its pin-memory thread)
    reading from a dead process, with a traceback, instead of the one word 'interrupted'."""
    paths = sorted((fixture_data / "images").glob("*.jpg"))
    if not paths:
        pytest.skip("tests/data not present")
    loader = iter(batch_loader([[(path, i)] for i, path in enumerate(paths * 2)], workers=1))
    first = next(loader)
    workers = multiprocessing.active_children()
    assert workers, "the loader started no worker process"
    for worker in workers:
        os.kill(worker.pid, signal.SIGINT)
    time.sleep(0.5)
    rest = list(loader)
    assert [batch.items for batch in [first, *rest]] == [[i] for i in range(2 * len(paths))]


def test_ctrl_c_ends_a_cli_run_with_one_word_and_its_last_save(tmp_path, fixture_data):
    interrupt_a_cli_run(tmp_path, fixture_data, "cpu")  # on CUDA: tests/test_gpu.py


def interrupt_a_cli_run(tmp_path: Path, fixture_data: Path, device: str) -> None:
    """Ctrl-C (SIGINT to the run's process group, as a terminal sends it) after the second epoch: exit 130, the
    one word 'interrupted', no traceback, the last save kept."""
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 4, min_joints=5)
    command = [sys.executable, "-m", "hrpose_cli", "train", "--train-ann", str(ann), "--train-images",
               str(fixture_data / "images"), "--arch", "w16-small", "--input-size", "64x64", "--epochs", "1000",
               "--batch", "2", "--workers", "2", "--device", device, "--save-every", "1", "--out", str(tmp_path / "run")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # its own group, as a terminal's Ctrl-C reaches
    watchdog = threading.Timer(120, process.kill)  # a run that never reaches epoch 2 fails, not hangs
    watchdog.start()
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith("epoch 2:"):
            os.killpg(process.pid, signal.SIGINT)
            break
    output += process.stdout.readlines()
    text = "".join(output)
    watchdog.cancel()
    assert process.wait(timeout=60) == 130, text
    assert "Traceback" not in text and text.strip().splitlines()[-1] == "interrupted", text
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]["epoch"] >= 2


def test_save_every_writes_last_pt_on_its_cadence_and_after_the_last_epoch(tmp_path, fixture_data):
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 4, min_joints=5)
    images = fixture_data / "images"
    common = dict(epochs=3, batch=2, save_every=2)
    saved = []

    class Watch(TrainReporter):
        def epoch_end(self, metrics):
            last = tmp_path / "parts" / "last.pt"
            saved.append(torch.load(last, weights_only=True)["train_state"]["epoch"] if last.exists() else None)
            if metrics["epoch"] == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.run(tiny(tmp_path, ann, images, out=str(tmp_path / "parts"), **common), Watch())
    assert saved == [None, 2]
    assert len((tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()) == 2
    trainer.run(TrainConfig(out=str(tmp_path / "parts"), resume=True, device="cpu", workers=0))
    whole = trainer.run(tiny(tmp_path, ann, images, out=str(tmp_path / "whole"), **common))
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)
    assert a["train_state"]["epoch"] == b["train_state"]["epoch"] == 3
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert whole.history[-1]["loss"] == b["train_state"]["history"][-1]["loss"]


def test_cli_lr_steps_set_the_schedule_and_are_kept_on_resume(tmp_path, fixture_data):
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 2, min_joints=5)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"model": TINY, "device": "cpu", "workers": 0, "epochs": 3, "batch": 2, "lr": 0.01}))
    base = ["--config", str(cfg), "--train-ann", str(ann), "--train-images", str(fixture_data / "images")]
    for steps, factors in (("1,2", [1, 0.1, 0.01]), ("none", [1, 1, 1])):
        out = tmp_path / steps.replace(",", "_")
        result = run_cli(*base, "--lr-steps", steps, "--out", str(out))
        assert result.exit_code == 0, result.output
        lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert lrs == pytest.approx([0.01 * f for f in factors])
        saved = json.loads((out / "config.json").read_text())
        assert saved["lr_steps"] == saved["run"]["lr_milestones"] == ([1, 2] if steps == "1,2" else [])
    assert "--lr-steps differs" in one_line_error(run_cli("--resume", "--out", str(out), "--lr-steps", "2"))


def test_cli_resume_of_a_finished_run_and_changed_options(tmp_path, fixture_data):
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 2, min_joints=5)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"model": TINY, "device": "cpu", "workers": 0, "epochs": 1, "batch": 2}))
    out = tmp_path / "run"
    base = ["--config", str(cfg), "--train-ann", str(ann), "--train-images", str(fixture_data / "images")]
    result = run_cli(*base, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "global batch 2" in result.output and (out / "last.pt").is_file()
    assert "already holds a training run" in one_line_error(run_cli(*base, "--out", str(out)))
    assert "--lr differs" in one_line_error(run_cli("--resume", "--out", str(out), "--lr", "0.1"))
    assert "already finished" in one_line_error(run_cli("--resume", "--out", str(out), "--device", "cpu"))


# -- NaN --------------------------------------------------------------------------------------------


def test_nan_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path, fixture_data, monkeypatch):
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 4, min_joints=5)
    calls = {"n": 0}
    real = trainer.joints_mse_loss

    def poisoned(pred, target, weight):
        calls["n"] += 1
        loss = real(pred, target, weight)
        return loss * float("nan") if calls["n"] >= 4 else loss  # epoch 2, step 2 (2 steps per epoch)

    monkeypatch.setattr(trainer, "joints_mse_loss", poisoned)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"model": TINY, "device": "cpu", "workers": 0, "epochs": 3, "batch": 2}))
    out = tmp_path / "run"
    result = run_cli("--config", str(cfg), "--train-ann", str(ann), "--train-images", str(fixture_data / "images"),
                     "--out", str(out))
    assert result.exit_code == 1, result.output
    last_line = one_line_error(result, after_start=True)
    assert f"loss became NaN at epoch 2 step 2; last good checkpoint: {out / 'last.pt'}" in last_line
    saved = torch.load(out / "last.pt", weights_only=True)
    assert saved["train_state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())


# -- bad input --------------------------------------------------------------------------------------


def test_cli_missing_annotation_file(tmp_path, fixture_data):
    missing = tmp_path / "nope.json"
    line = one_line_error(run_cli("--train-ann", str(missing), "--train-images", str(fixture_data / "images"),
                                  "--device", "cpu", "--out", str(tmp_path / "run")))
    assert str(missing) in line and "not found" in line
    assert not (tmp_path / "run").exists()


def test_cli_annotation_without_usable_person(tmp_path, fixture_data):
    data = json.loads((fixture_data / "person_keypoints.json").read_text())
    for a in data["annotations"]:
        a["keypoints"] = [0] * 51
        a["num_keypoints"] = 0
    ann = tmp_path / "empty.json"
    ann.write_text(json.dumps(data))
    line = one_line_error(run_cli("--train-ann", str(ann), "--train-images", str(fixture_data / "images"),
                                  "--device", "cpu", "--out", str(tmp_path / "run")))
    assert str(ann) in line and "no usable person" in line


@pytest.mark.parametrize("args, words", [
    (["--input-size", "256by192"], "--input-size"),
    (["--input-size", "100x80"], "multiples of 32"),
    (["--epochs", "0"], "--epochs"),
    (["--save-every", "0"], "--save-every"),
    (["--recipe", "fancy"], "--recipe"),
    (["--ema", "1"], "--ema"),
    (["--ema", "-0.5"], "--ema"),
    (["--lr-steps", "200,170"], "increasing"),
    (["--lr-steps", "ten"], "--lr-steps"),
    (["--lr-steps", "5", "--time-limit", "1"], "--time-limit"),
])
def test_cli_bad_option_values(tmp_path, fixture_data, args, words):
    line = one_line_error(run_cli("--train-ann", str(fixture_data / "person_keypoints.json"), "--train-images",
                                  str(fixture_data / "images"), "--device", "cpu", "--out", str(tmp_path / "r"), *args))
    assert words in line


def test_cli_unpaired_train_options_are_a_usage_error(fixture_data):
    line = one_line_error(run_cli("--train-ann", str(fixture_data / "person_keypoints.json")), code=2)
    assert "--train-images" in line


def test_cli_corrupt_image_stops_or_is_skipped(tmp_path, fixture_data):
    images = tmp_path / "images"
    shutil.copytree(fixture_data / "images", images)
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 12, min_joints=5)
    assert len(json.loads(ann.read_text())["images"]) == 2
    first = json.loads(ann.read_text())["images"][0]["file_name"]
    (images / first).write_bytes(b"this is not a jpeg" * 100)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"model": TINY, "device": "cpu", "workers": 1, "epochs": 2, "batch": 4}))
    base = ["--config", str(cfg), "--train-ann", str(ann), "--train-images", str(images)]

    line = one_line_error(run_cli(*base, "--out", str(tmp_path / "stop")), after_start=True)
    assert first in line and "--skip-bad-images" in line
    assert not (tmp_path / "stop" / "last.pt").exists()

    result = run_cli(*base, "--out", str(tmp_path / "skip"), "--skip-bad-images")
    assert result.exit_code == 0, result.output
    assert "skipped images" in result.output
    metrics = [json.loads(line) for line in (tmp_path / "skip" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["skipped_images"] == 1 and all(math.isfinite(m["loss"]) for m in metrics)


def test_missing_image_folder_is_named(tmp_path, fixture_data):
    with pytest.raises(HrposeError, match="images folder not found"):
        trainer.run(tiny(tmp_path, fixture_data / "person_keypoints.json", tmp_path / "nowhere"))


def test_shipped_configs_are_valid():
    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.json"))
    assert files
    for path in files:
        config = TrainConfig.from_dict(read_config_file(path), str(path))
        config.train_ann, config.train_images = ["a.json"], ["images"]
        config.validate()


def test_weight_average_hand_checked():
    net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    average = optim.WeightAverage(net, decay=0.5)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].num_batches_tracked.fill_(7)
    average.update(net)  # decay min(0.5, 2 / 11): the new weights count 9/11
    assert torch.allclose(average.model[0].weight, start + 9 / 11)
    assert int(average.model[1].num_batches_tracked) == 7
    for _ in range(20):
        average.update(net)  # decay capped at 0.5 from the 8th update: it converges on the weights
    assert torch.allclose(average.model[0].weight, net[0].weight, atol=1e-4)
    assert not average.model.training and not any(p.requires_grad for p in average.model.parameters())
