"""Function-preserving growth of an HRNet, for a larger student that starts where a smaller one ended instead
of from scratch: widening (Net2WiderNet, Chen et al., ICLR 2016) and, at the end, deepening
(deepen_state_dict: more BasicBlocks per branch, each starting as an identity).

Every branch of an HRNet has ``width * 2**i`` channels, so widening from width w to W turns every such count
n = w * 2**i into N = W * 2**i while the stem (64) and layer1 (256) keep theirs. New channel c copies old
channel ``c % n`` (with W a multiple of w every channel gets W / w copies; otherwise the first N % n channels
get one copy more, as w16 -> w18 gives channels 0 and 1 of each 16 a twin): a tensor's output dimension is
copied so, and an input dimension that grew is copied and split among each channel's copies, so that their
contributions add up to the old weight. The split is the old weight / its number of copies plus noise that
sums to zero over the copies: the network computes exactly the same function (BatchNorm statistics copied
with their channels), yet the copies differ, so training can pull them apart (identical copies would get
identical gradients forever).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from hrpose_cli.errors import HrposeError
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet


def widen_state_dict(
    state_dict: dict[str, torch.Tensor], config: HRNetConfig, width: int, *, noise: float = 0.1, seed: int = 0
) -> tuple[dict[str, torch.Tensor], HRNetConfig]:
    """The state dict of ``config`` widened to ``width`` (any larger width), and its config.

    ``noise`` is the split noise's standard deviation relative to each weight tensor's own.
    """
    if width <= config.width:
        raise HrposeError(f"cannot widen w{config.width} to w{width}: the new width must be larger")
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
        if new.shape[0] != wide.shape[0]:  # output channels (and BatchNorm vectors): copied
            new = new[_sources(new.shape[0], wide.shape[0], key)]
        if new.dim() > 1 and new.shape[1] != wide.shape[1]:  # input channels: copied, split among the copies
            new = _split(new, wide.shape[1], noise, generator, key)
        widened[key] = new.to(old.dtype)
    return widened, wide_config


def _sources(old: int, new: int, key: str) -> torch.Tensor:
    """The old channel each new channel copies: c % old."""
    if new < old:
        raise HrposeError(f"cannot widen {key}: {old} channels do not grow to {new}")
    return torch.arange(new) % old


def _split(weight: torch.Tensor, new_in: int, noise: float, generator: torch.Generator, key: str) -> torch.Tensor:
    """Copy the input dimension to ``new_in`` channels; the copies of one input channel sum to the old weight.

    Copy k of channel i is new channel k * n + i; the noise is drawn for every (copy, channel) slot at once,
    so that widening by an integer factor gives the weights it gave before other widths were allowed (call 12's
    WL started from them).
    """
    n = weight.shape[1]
    sources = _sources(n, new_in, key)
    copies = torch.bincount(sources, minlength=n).to(weight.dtype)  # (in,)
    slots = -(-new_in // n)
    present = (torch.arange(slots)[:, None] < copies[None, :]).to(weight.dtype)  # (slots, in)
    present = present.view(slots, 1, n, *([1] * (weight.dim() - 2)))
    count = copies.view(1, n, *([1] * (weight.dim() - 2)))
    jitter = torch.randn((slots, *weight.shape), generator=generator) * noise * float(weight.std()) / count
    jitter = jitter * (count > 1)  # a channel without a copy keeps its weight exactly
    shares = weight / count + jitter - (jitter * present).sum(0, keepdim=True) / count  # zero sum over the copies
    return torch.cat(list(shares), dim=1)[:, :new_in]  # the slots past a channel's copies fall beyond new_in


def deepen_state_dict(
    state_dict: dict[str, torch.Tensor], config: HRNetConfig, blocks: int, *, seed: int = 0
) -> tuple[dict[str, torch.Tensor], HRNetConfig]:
    """The state dict of ``config`` with ``blocks`` BasicBlocks per branch of every module (more than it has),
    and its config: the deeper network computes the same function.

    Each new block is appended to its branch with its second BatchNorm's scale and shift at zero, so it adds
    nothing to its residual and passes its input through the final ReLU unchanged (a branch's input is
    already a ReLU's output, so it is non-negative); its convolutions get the official init, N(0, 0.001),
    and learn through that BatchNorm's scale (the zero-init residual of Goyal et al., 2017).
    """
    if blocks <= config.num_blocks:
        raise HrposeError(f"cannot deepen {config.num_blocks} blocks per branch to {blocks}: it must be more")
    deep_config = replace(config, num_blocks=blocks)
    with torch.random.fork_rng():  # the caller's random state is left as it was
        torch.manual_seed(seed)
        target = PoseHRNet(deep_config).state_dict()  # the official init for the new blocks
    deepened = {}
    for key, value in target.items():
        if key in state_dict:
            deepened[key] = state_dict[key].clone()
        elif key.endswith(("bn2.weight", "bn2.bias")):
            deepened[key] = torch.zeros_like(value)
        else:
            deepened[key] = value
    missing = set(state_dict) - set(target)
    if missing:
        raise HrposeError(f"cannot deepen: {len(missing)} weights have no place in the deeper network, e.g. {min(missing)}")
    return deepened, deep_config
