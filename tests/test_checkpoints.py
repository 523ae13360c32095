"""Checkpoints: official layouts load strictly with identical outputs, hrpose files roundtrip, errors are one line."""

import argparse
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from hrpose_cli.errors import HrposeError
from hrpose_cli.model import checkpoints
from hrpose_cli.model.checkpoints import default_weights_path, load_model, read_checkpoint, save_checkpoint
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained():
    """A small model whose every tensor (running stats included) differs from a fresh init."""
    torch.manual_seed(1)
    config = HRNetConfig.from_arch("w16-small")
    model = PoseHRNet(config)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) * 0.2 + (0.9 if "running_var" in name or "bn" in name else -0.1))
            else:
                t.fill_(7)
    return model.eval(), config, torch.randn(1, 3, 256, 192)


def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("layout", ["bare", "state_dict", "model", "module_prefix", "state_dict_module_prefix"])
def test_official_layouts_load_strictly_with_identical_outputs(tmp_path, trained, layout):
    model, config, x = trained
    sd = model.state_dict()
    prefixed = {f"module.{k}": v for k, v in sd.items()}
    obj = {
        "bare": sd,
        "state_dict": {"state_dict": sd, "epoch": 140},
        "model": {"model": sd},
        "module_prefix": prefixed,
        "state_dict_module_prefix": {"state_dict": prefixed, "perf": 0.744},
    }[layout]
    path = tmp_path / "pose_hrnet_w16.pth"
    torch.save(obj, path)
    loaded, loaded_config = load_model(path)
    assert loaded_config == config  # width, stage depths, blocks, joints read off the tensors; default 256x192
    assert not loaded.training
    assert torch.equal(outputs(loaded, x), outputs(model, x))
    assert loaded.state_dict()["bn1.num_batches_tracked"].item() == 7


def test_official_config_inference_reads_every_field(tmp_path):
    config = HRNetConfig(width=8, stage_modules=(2, 1, 3), num_blocks=3, num_joints=14, input_size=(384, 288))
    torch.save(PoseHRNet(config).state_dict(), tmp_path / "pose_hrnet_custom_384x288.pth")
    _, loaded = load_model(tmp_path / "pose_hrnet_custom_384x288.pth")
    assert loaded == config  # input size from the file name
    _, explicit = load_model(tmp_path / "pose_hrnet_custom_384x288.pth", input_size=(256, 192))
    assert explicit.input_size == (256, 192)  # an explicit size wins over the name


def test_official_fp16_file_loads_as_float32(tmp_path, trained):
    model, config, x = trained
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(half, tmp_path / "w16_256x192.pth")
    loaded, _ = load_model(tmp_path / "w16_256x192.pth")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert torch.equal(loaded.conv1.weight, model.conv1.weight.half().float())
    torch.testing.assert_close(outputs(loaded, x), outputs(model, x), rtol=0.05, atol=0.05)


@pytest.mark.parametrize("half", [False, True])
def test_hrpose_roundtrip(tmp_path, trained, half):
    model, config, x = trained
    config = HRNetConfig.from_dict({**config.to_dict(), "input_size": [384, 288]})
    path = save_checkpoint(tmp_path / "run" / "best.pt", model, config, half=half, meta={"epoch": 3, "ap": 0.5})
    raw = read_checkpoint(path)
    assert (raw["format"], raw["version"], raw["meta"]) == ("hrpose", 1, {"epoch": 3, "ap": 0.5})
    assert raw["config"] == config.to_dict()
    assert raw["state_dict"]["conv1.weight"].dtype == (torch.float16 if half else torch.float32)
    assert raw["state_dict"]["bn1.num_batches_tracked"].dtype == torch.int64
    loaded, loaded_config = load_model(path)
    assert loaded_config == config  # the stored input size, not the 256x192 default
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    if half:
        assert torch.equal(loaded.final_layer.weight, model.final_layer.weight.half().float())
        torch.testing.assert_close(outputs(loaded, x), outputs(model, x), rtol=0.05, atol=0.05)
    else:
        assert torch.equal(outputs(loaded, x), outputs(model, x))
    assert load_model(path, input_size=(256, 192))[1].input_size == (256, 192)


def test_half_checkpoint_is_half_the_size(tmp_path, trained):
    model, config, _ = trained
    full = save_checkpoint(tmp_path / "full.pt", model, config).stat().st_size
    half = save_checkpoint(tmp_path / "half.pt", model, config, half=True).stat().st_size
    assert 0.45 < half / full < 0.56


def test_save_strips_wrapper_prefixes(tmp_path, trained):
    model, config, _ = trained
    wrapped = {f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / "w.pt", wrapped, config)
    assert list(read_checkpoint(path)["state_dict"]) == list(model.state_dict())
    with pytest.raises(ValueError, match="reserved ones: format"):
        save_checkpoint(tmp_path / "x.pt", model, config, format="other")


def test_atomic_save_leaves_no_temp_file(tmp_path, trained, monkeypatch):
    model, config, _ = trained
    path = tmp_path / "last.pt"
    save_checkpoint(path, model, config, meta={"n": 1})
    save_checkpoint(path, model, config, meta={"n": 2})  # overwrite in place
    assert os.listdir(tmp_path) == ["last.pt"]
    assert read_checkpoint(path)["meta"] == {"n": 2}

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, config, meta={"n": 3})
    assert os.listdir(tmp_path) == ["last.pt"]  # no temp file left behind
    monkeypatch.undo()
    assert read_checkpoint(path)["meta"] == {"n": 2}  # the old file is intact


def one_line_error(path, **kw) -> str:
    with pytest.raises(HrposeError) as info:
        load_model(path, **kw)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_wrong_width_for_declared_arch(tmp_path, trained):
    model, config, _ = trained
    path = save_checkpoint(tmp_path / "w16.pt", model, config)
    message = one_line_error(path, arch="w18-small")
    assert "not an HRNet checkpoint for w18-small" in message
    # stem and layer1 are width-independent; the first widened tensor is transition1.0.0.weight
    assert "wrong shapes transition1.0.0.weight (file [16, 256, 3, 3], model [18, 256, 3, 3])" in message
    # an official-layout full-depth w16 file declared as the shallower w16-small
    torch.save(PoseHRNet(HRNetConfig.from_arch("w16")).state_dict(), tmp_path / "pose_hrnet_w16.pth")
    message = one_line_error(tmp_path / "pose_hrnet_w16.pth", arch="w16-small")
    assert "unexpected keys stage2.0.branches.0.2.conv1.weight" in message and "in all)" in message


def test_renamed_key_is_named(tmp_path, trained):
    model, _, _ = trained
    sd = dict(model.state_dict())
    sd["final_layer.b"] = sd.pop("final_layer.bias")
    torch.save({"state_dict": sd}, tmp_path / "renamed.pth")
    message = one_line_error(tmp_path / "renamed.pth")
    assert message == (
        f"{tmp_path / 'renamed.pth'}: not an HRNet checkpoint for w16-small: "
        "missing keys final_layer.bias; unexpected keys final_layer.b"
    )


def test_not_hrnet_at_all(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pth")
    assert "not an HRNet checkpoint" in one_line_error(tmp_path / "resnet.pth")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    assert "holds a Tensor" in one_line_error(tmp_path / "tensor.pth")
    torch.save({"epoch": 3}, tmp_path / "nostate.pth")
    assert "no state dict" in one_line_error(tmp_path / "nostate.pth")


def test_corrupt_truncated_unsafe_and_missing_files(tmp_path, trained):
    model, config, _ = trained
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint")
    assert "cannot read checkpoint" in one_line_error(tmp_path / "junk.pth")
    good = save_checkpoint(tmp_path / "good.pt", model, config).read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    assert "cannot read checkpoint" in one_line_error(tmp_path / "cut.pt")
    torch.save({"args": argparse.Namespace(lr=1)}, tmp_path / "pickled.pth")  # refused by weights_only
    assert "cannot read checkpoint" in one_line_error(tmp_path / "pickled.pth")
    assert "no such file" in one_line_error(tmp_path / "nope.pth")
    assert "is a directory" in one_line_error(tmp_path)


def test_newer_hrpose_format_is_refused(tmp_path, trained):
    model, config, _ = trained
    path = save_checkpoint(tmp_path / "v.pt", model, config)
    raw = read_checkpoint(path)
    raw["version"] = 2
    torch.save(raw, path)
    assert "version 2 is newer" in one_line_error(path)


def test_default_model(tmp_path, trained, monkeypatch):
    model, config, x = trained
    monkeypatch.setattr(checkpoints, "default_weights_path", lambda: None)
    with pytest.raises(HrposeError, match="^no --weights given and no default model is installed$"):
        load_model(None)
    path = save_checkpoint(tmp_path / "hrpose_default.pt", model, config, half=True)
    monkeypatch.setattr(checkpoints, "default_weights_path", lambda: path)
    loaded, loaded_config = load_model(None)
    assert loaded_config == config
    assert torch.equal(loaded.final_layer.bias, model.final_layer.bias.half().float())


def test_default_weights_path_finds_the_asset_or_none():
    candidates = [REPO / "hrpose_cli" / "assets" / "hrpose_default.pt", REPO / "assets" / "hrpose_default.pt"]
    found = default_weights_path()
    if any(c.is_file() for c in candidates):
        assert found is not None and found.resolve() in [c.resolve() for c in candidates]
    else:
        assert found is None
