"""`hrpose train` under torchrun: two gloo processes on the CPU, DistributedDataParallel, rank-0 outputs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from test_train import TINY, subset

pytestmark = pytest.mark.slow


def torchrun(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_cli_under_torchrun_two_cpu_processes(tmp_path, fixture_data):
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 10, min_joints=5)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"model": TINY, "workers": 1, "epochs": 2, "batch": 2, "val_every": 2}))
    out = tmp_path / "run"
    proc = torchrun("-m", "hrpose_cli", "train", "--config", str(cfg), "--device", "cpu", "--train-ann", str(ann),
                    "--train-images", str(fixture_data / "images"), "--val-ann", str(ann), "--val-images",
                    str(fixture_data / "images"), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("2 process(es) x batch 2 = global batch 4") == 1  # rank 0 alone reports
    assert proc.stderr.count("run folder") == 2  # the start line and the summary table, once each
    saved = json.loads((out / "config.json").read_text())
    assert saved["run"]["world_size"] == 2 and saved["run"]["global_batch"] == 4
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2] and "AP" in metrics[1]
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    assert not list(out.glob(".*.tmp"))


SCRIPT = """
import os, sys, torch
from hrpose_cli.engine import train_config, trainer
out, ann, images = sys.argv[1:4]
config = train_config.TrainConfig(train_ann=[ann], train_images=[images], model={model!r}, device="cpu", workers=0,
                             epochs=2, batch=2, log_every=1, out=out, **{extra!r})
result = trainer.run(config)
torch.save(result.model.state_dict(), os.path.join(out, "rank%s.pt" % os.environ["RANK"]))
"""


@pytest.mark.parametrize("extra", [{}, {"recipe": "strong", "ema": 0.9}], ids=["seed", "strong+ema"])
def test_ranks_average_gradients_and_end_with_identical_weights(tmp_path, fixture_data, extra):
    """Under --ema the saved model is each rank's weight average: equal too, as the weights it averages are."""
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 10, min_joints=5)
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(SCRIPT.format(model=TINY, extra=extra)))
    out = tmp_path / "run"
    out.mkdir()
    proc = torchrun(str(script), str(out), str(ann), str(fixture_data / "images"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    saved = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    assert torch.load(out / "last.pt", weights_only=True)["train_state"]["epoch"] == 2
    params = [k for k in rank0 if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(params) > 50
    for key in params:
        # The ranks saw different persons (the plan's shards are disjoint); only averaged gradients keep
        # their weights equal after 10 Adam steps. (BN running stats are rank 0's, broadcast before each
        # forward; each rank's last forward then moves its own copy, so those differ.)
        assert torch.equal(rank0[key], rank1[key]), key
    for key, value in rank0.items():
        assert torch.equal(value, saved[key]), key  # rank 0 wrote the checkpoint
    torch.manual_seed(0)
    from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet

    fresh = PoseHRNet(HRNetConfig.from_dict(TINY)).state_dict()
    assert not torch.equal(fresh["final_layer.weight"], rank0["final_layer.weight"])
