"""The fast load path (meta device, no random init, BatchNorm folded in place) predicts what the old one did."""

from pathlib import Path

import numpy as np
import torch
from torch import nn

from hrpose_cli.data.images import PackedImages, read_image
from hrpose_cli.engine.predictor import Predictor
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.model.checkpoints import default_weights_path, load_model, read_checkpoint
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet, fold_batchnorm

IMAGES = Path(__file__).resolve().parent / "data" / "images"


def _keypoints(model: nn.Module, config: HRNetConfig) -> torch.Tensor:
    """Flip-tested keypoints (persons, 17, 3) for the whole of each test image."""
    images = [read_image(path) for path in sorted(IMAGES.glob("*.jpg"))]
    boxes = np.array([[0.0, 0.0, image.shape[1], image.shape[0]] for image in images])
    predictor = Predictor(model, config, Runtime.create("cpu"), flip=True)
    keypoints, _, _ = predictor.run(PackedImages.pack(images), np.arange(len(images)), boxes)
    return keypoints


def test_fast_load_and_in_place_fold_give_the_old_keypoints():
    # The old path: the official init drawn on the meta device, the default weights assigned over it, and
    # a folded deep copy. (Weights copied into a CPU network instead differ in float rounding, ~2e-7 in the
    # heatmaps, which can move an argmax: so the comparison is with this exact path, bit for bit.)
    stored = read_checkpoint(default_weights_path())
    config = HRNetConfig.from_dict(stored["config"])
    with torch.device("meta"):
        old = PoseHRNet(config)
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in stored["state_dict"].items()}
    old.load_state_dict(state_dict, strict=True, assign=True)
    expected = _keypoints(fold_batchnorm(old.eval()), config)
    assert any(isinstance(m, nn.BatchNorm2d) for m in old.modules())  # the copy was folded, not the original

    fast, fast_config = load_model(None)
    assert fast_config == config
    assert not any(t.is_meta for t in [*fast.parameters(), *fast.buffers()])  # every tensor came from the file
    folded = fold_batchnorm(fast, inplace=True)
    assert folded is fast and not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    got = _keypoints(folded, config)
    assert got.shape == (len(list(IMAGES.glob("*.jpg"))), 17, 3)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_network_for_training_still_gets_the_official_init():
    torch.manual_seed(0)
    model = PoseHRNet(HRNetConfig.from_arch("w16-small"))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(weights.std().item() - 0.001) < 0.0001 and torch.all(model.final_layer.bias == 0)
    assert len(weights.unique()) > 0.9 * len(weights)  # drawn, not a constant or left uninitialised
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)


def test_the_default_models_note_needs_no_second_read(monkeypatch):
    from hrpose_cli.model import checkpoints

    load_model(None)

    def no_read(path):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(checkpoints, "read_checkpoint", no_read)
    assert "unreliable" in checkpoints.default_model_note()
