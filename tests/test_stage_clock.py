"""Where the time goes: StageClock's sums, `hrpose eval --json`'s stage_seconds, and the compile set-up
(regions compiled in place with the state dict unchanged, the persistent cache folder)."""

import copy
import json
import os
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hrpose_cli.cli.app import app
from hrpose_cli.engine import compiling
from hrpose_cli.engine.stage_clock import StageClock, describe, merge
from hrpose_cli.model.hrnet import BasicBlock, Bottleneck, HighResolutionModule, HRNetConfig, PoseHRNet

REPO = Path(__file__).resolve().parents[1]
W32_KEYS = REPO / "tests" / "data" / "hrnet_w32_keys.txt"


def test_laps_charge_the_time_since_the_last_boundary():
    clock = StageClock("cpu")
    clock.lap("before any boundary")  # no start yet: charged to nobody, but it starts the next lap
    time.sleep(0.02)
    clock.lap("a")
    time.sleep(0.05)
    clock.mark()  # a wait: charged to nobody
    time.sleep(0.01)
    clock.lap("b")
    time.sleep(0.01)
    clock.lap("a")
    with clock.host("nms"):
        time.sleep(0.01)
    clock.add("data_wait", 1.5)
    stages = clock.seconds()
    assert set(stages) == {"a", "b", "nms", "data_wait"}
    assert 0.03 <= stages["a"] < 0.045 and 0.01 <= stages["b"] < 0.02 and 0.01 <= stages["nms"] < 0.02
    assert stages["data_wait"] == 1.5
    assert clock.seconds() == {}  # read and reset


def test_a_disabled_clock_records_nothing_and_merge_rounds():
    clock = StageClock("cpu", enabled=False)
    clock.mark()
    clock.lap("a")
    clock.add("b", 1.0)
    assert clock.seconds() == {}
    assert merge({"a": 0.1234, "b": 1.0}, {"a": 0.0007}) == {"a": 0.124, "b": 1.0}
    assert describe({"data_wait": 1.234, "network": 0.5}) == "data wait 1.23 s, network 0.50 s"


def test_eval_json_and_output_say_where_the_time_went(fixture_data, tiny_weights, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["eval", "--ann", str(fixture_data / "person_keypoints.json"), "--images",
                                      str(fixture_data / "images"), "--weights", str(tiny_weights), "--device", "cpu",
                                      "--json", str(out), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    stages = json.loads(out.read_text())["stage_seconds"]
    assert list(stages) == ["load_model", "data_wait", "upload", "warps", "network", "decode", "nms", "evaluation"]
    assert all(v >= 0 for v in stages.values()) and stages["network"] > 0
    assert "time by stage: load model" in result.output and "evaluation" in result.output


def test_warm_up_keeps_its_seconds_for_the_warm_up_stage():
    """On CUDA load_predictor warms the padded shape up (autotuning, compiling, the CUDA graph's recording);
    eval reports those seconds as `warm_up`, apart from `load_model`. The same call on the CPU, padded."""
    from hrpose_cli.engine.predictor import Predictor
    from hrpose_cli.engine.runtime import Runtime

    config = HRNetConfig.from_arch("w16-small")
    predictor = Predictor(PoseHRNet(config), config, Runtime.create("cpu"), pad_batches_to=2)
    assert predictor.warm_up_s == 0.0
    predictor.warm_up()
    assert predictor.warm_up_s > 0.0


def test_compile_regions_compiles_blocks_fusions_stem_and_transitions_in_place_and_keeps_the_state_dict():
    model = PoseHRNet(HRNetConfig.from_arch("w32"), random_init=False)
    keys = list(model.state_dict())
    assert compiling.compile_regions(model) is model
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert len(blocks) == 4 + 4 * (2 * 1 + 3 * 4 + 4 * 3)  # layer1's Bottlenecks; 4 BasicBlocks per branch and module
    assert all(m._compiled_call_impl is not None for m in blocks)
    modules = [m for m in model.modules() if isinstance(m, HighResolutionModule)]
    assert len(modules) == 1 + 4 + 3 and len({m.compiled_fuse for m in modules}) == 1  # one function for all
    assert modules[0].compiled_fuse is not None and HighResolutionModule.compiled_fuse is None
    assert model.compiled_stem is not None and PoseHRNet.compiled_stem is None
    steps = [m for t in (model.transition1, model.transition2, model.transition3) for m in t.modules()
             if type(m) is torch.nn.Sequential and isinstance(m[0], torch.nn.Conv2d)]
    assert len(steps) == 4 and all(m._compiled_call_impl is not None for m in steps)  # W32's conv + BN + ReLU steps
    copied = copy.deepcopy(model)  # as a weight average copies a network: it must fuse its own layers
    assert copied.stage2[0].compiled_fuse is model.stage2[0].compiled_fuse
    official = [line.split("\t")[0] for line in W32_KEYS.read_text().splitlines() if line and not line.startswith("#")]
    assert list(model.state_dict()) == keys == official  # the official layout, no _orig_mod. prefixes


def test_compile_regions_by_branches_compiles_each_run_of_blocks_as_one_region():
    model = PoseHRNet(HRNetConfig.from_arch("w32"), random_init=False)
    compiling.compile_regions(model, unit="branch")
    runs = [m for m in model.modules() if type(m) is torch.nn.Sequential and isinstance(m[0], (BasicBlock, Bottleneck))]
    assert len(runs) == 1 + 2 * 1 + 3 * 4 + 4 * 3  # layer1, then each module's branches
    assert all(m._compiled_call_impl is not None for m in runs)
    assert not any(m._compiled_call_impl is not None for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck)))
    assert model.stage2[0].compiled_fuse is not None and model.compiled_stem is not None
    with pytest.raises(ValueError, match="unit"):
        compiling.compile_regions(model, unit="stage")


def test_compile_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    monkeypatch.delenv(compiling.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compiling.compile_cache_dir() == tmp_path / "xdg" / "hrpose" / "torch-compile"
    monkeypatch.setenv(compiling.CACHE_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "elsewhere")  # restored after the test
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    monkeypatch.setattr(functorch_config, "enable_autograd_cache", False)
    assert compiling.configure_compile_cache() == tmp_path / "mine"
    assert (tmp_path / "mine").is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    assert inductor_config.fx_graph_cache and functorch_config.enable_autograd_cache


def test_compile_cache_folder_that_cannot_be_made_is_one_line(tmp_path, monkeypatch):
    from hrpose_cli.errors import HrposeError

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(compiling.CACHE_ENV, str(tmp_path / "file" / "cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unchanged")
    with pytest.raises(HrposeError, match="compile cache folder.*HRPOSE_COMPILE_CACHE"):
        compiling.configure_compile_cache()


def test_in_place_sums_leave_the_network_trainable():
    """Autograd accepts the in-place residual and fusion sums and ReLUs, and gradient reaches the fusions."""
    torch.manual_seed(0)
    model = PoseHRNet(HRNetConfig.from_arch("w16-small")).train()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    x = torch.randn(2, 3, 256, 192)
    model(x).square().sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert grads["stage2.0.fuse_layers.0.1.0.weight"].abs().sum() > 0  # the fusion path carries gradient
