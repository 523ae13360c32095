"""Function-preserving widening of an HRNet (Net2WiderNet, Chen et al., ICLR 2016), for a wider student
that starts where a narrower one ended instead of from scratch.

Every branch of an HRNet has ``width * 2**i`` channels, so widening by an integer factor k multiplies every
such channel count by k while the stem (64) and layer1 (256) keep theirs. New channel c copies old channel
``c % n``: a tensor's output dimension is tiled, and an input dimension that grew is tiled and split among
the k copies, so that the copies' contributions add up to the old weight. The split is the old weight / k
plus noise that sums to zero over the copies: the network computes exactly the same function (BatchNorm
statistics tiled with their channels), yet the copies differ, so training can pull them apart (identical
copies would get identical gradients forever).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from hrpose_cli.errors import HrposeError
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet


def widen_state_dict(
    state_dict: dict[str, torch.Tensor], config: HRNetConfig, width: int, *, noise: float = 0.1, seed: int = 0
) -> tuple[dict[str, torch.Tensor], HRNetConfig]:
    """The state dict of ``config`` widened to ``width`` (an integer multiple), and its config.

    ``noise`` is the split noise's standard deviation relative to each weight tensor's own.
    """
    if width % config.width or width <= config.width:
        raise HrposeError(f"cannot widen w{config.width} to w{width}: the new width must be a larger multiple")
    factor = width // config.width
    wide_config = replace(config, width=width)
    target = PoseHRNet(wide_config, random_init=False).state_dict()
    generator = torch.Generator().manual_seed(seed)
    widened: dict[str, torch.Tensor] = {}
    for key, wide in target.items():
        old = state_dict[key]
        if old.shape == wide.shape:
            widened[key] = old.clone()
            continue
        new = old.float()
        if new.shape[0] != wide.shape[0]:  # output channels (and BatchNorm vectors): tiled
            new = new.repeat(factor, *([1] * (new.dim() - 1)))
        if new.dim() > 1 and new.shape[1] != wide.shape[1]:  # input channels: tiled, split among the copies
            new = _split(new, factor, noise, generator)
        if new.shape != wide.shape:
            raise HrposeError(f"cannot widen {key}: {tuple(old.shape)} does not grow to {tuple(wide.shape)} by x{factor}")
        widened[key] = new.to(old.dtype)
    return widened, wide_config


def _split(weight: torch.Tensor, factor: int, noise: float, generator: torch.Generator) -> torch.Tensor:
    """Tile the input dimension ``factor`` times; the copies of one input channel sum to the old weight."""
    shares = weight.unsqueeze(0).repeat(factor, *([1] * weight.dim())) / factor  # (factor, out, in, kh, kw)
    jitter = torch.randn(shares.shape, generator=generator) * noise * float(weight.std()) / factor
    shares = shares + jitter - jitter.mean(dim=0, keepdim=True)  # zero sum over the copies
    return torch.cat(list(shares), dim=1)
