"""The loss, the lr schedule and the weight average of training (the official JointsMSELoss and MultiStep schedule)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def joints_mse_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The official JointsMSELoss: 0.5 x the mean over (B, J, H, W) of w_bj (pred - target)^2.

    The official code multiplies both heatmaps by the weight before the squared error (so a weight w
    counts as w^2); the targets' weights are 0 or 1, where the two agree. Per-joint weights (seed recipe)
    multiply each joint's loss by the weight itself, as HRNET_SPEC.md says.
    """
    return 0.5 * (weight[:, :, None, None] * (pred - target).pow(2)).mean()


def milestones(epochs: int, steps: list[int] | None = None) -> tuple[int, ...]:
    """Epochs (counts of finished epochs) after which the lr drops x0.1: ``steps`` when given (--lr-steps; empty
    for a constant lr), else the official 170 and 200 of 210, scaled to ``epochs``."""
    if steps is not None:
        return tuple(steps)
    return round(170 / 210 * epochs), round(200 / 210 * epochs)


def lr_factor(epoch: int, step: int, steps_per_epoch: int, drops: tuple[int, ...], warmup_epochs: float) -> float:
    """Multiplier of the base lr at ``step`` (0-based) of ``epoch`` (1-based): x0.1 after each of ``drops``
    (``milestones``), linear warm-up per step."""
    done = epoch - 1
    factor = 0.1 ** sum(done >= m for m in drops)
    warmup_steps = warmup_epochs * steps_per_epoch
    if warmup_steps > 0:
        factor *= min(1.0, (done * steps_per_epoch + step + 1) / warmup_steps)
    return factor


class WeightAverage:
    """An exponential moving average of the network's weights and BatchNorm statistics (--ema DECAY).

    On small data the weights of the last steps wander around a good point; their average generalises
    better. The decay ramps up as (1 + n) / (10 + n) after n updates (TensorFlow's ExponentialMovingAverage),
    so an average started from random weights forgets them quickly. The average is what a run validates and
    saves as its model; the raw weights travel in the checkpoint's training state for --resume.
    """

    def __init__(self, model: nn.Module, decay: float, updates: int = 0):
        self.decay = decay
        self.updates = updates
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._counters: list[tuple[torch.Tensor, torch.Tensor]] = []

    def update(self, model: nn.Module) -> None:
        """Fold in the model's current weights (every float tensor of its state; counters are copied)."""
        if self._pairs is None:  # the source tensors are updated in place by the optimiser: look them up once
            source, target = model.state_dict(), self.model.state_dict()
            floats = [k for k, v in target.items() if v.is_floating_point()]
            self._pairs = ([target[k] for k in floats], [source[k] for k in floats])
            self._counters = [(target[k], source[k]) for k, v in target.items() if not v.is_floating_point()]
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            torch._foreach_lerp_(self._pairs[0], self._pairs[1], 1.0 - decay)
            for mine, theirs in self._counters:
                mine.copy_(theirs)
