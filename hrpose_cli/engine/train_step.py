"""The network's part of a training step (forward, loss, backward, optimizer) replayed as one CUDA graph.

Eager training on a fast GPU is bound by the host launching the step's kernels (about 2,200 for an HRNet
forward, more for its backward), not by the GPU: on one H200, bf16 + channels_last at batch 128, the step
recorded as a graph ran W32 at 1,635 images/s against 908 eager, w16 at 2,117 against 1,029
(benchmarks/bench_speed.py --sections train-step). Every step has the same shapes (whole batches only), so
the step is recorded once and replayed. The crops and targets stay outside the graph (packed images vary in
size, and the teacher is a network of its own), and so do the weight average and the loss bookkeeping; the
learning rate lives in a device tensor that the graph reads, so the schedule still moves every step.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

WARM_UP_STEPS = 3  # cuDNN autotuning, Adam's state and any compiling happen in these, on a side stream

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class GraphedTrainStep:
    """``step(inputs, target, weight) -> loss``: forward under ``loss_fn``, backward and ``optimizer.step()``.

    The optimizer must be capturable; its learning rates become device tensors (``set_lr`` moves them).
    The first call warms up and records; a call with other shapes runs eagerly on the same gradient tensors.
    The loss returned is the graph's own buffer: read it (or add it to a total) before the next step.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, device: torch.device):
        self.model, self.optimizer, self.loss_fn, self.device = model, optimizer, loss_fn, device
        for group in optimizer.param_groups:
            group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: tuple[torch.Tensor, ...] = ()
        self._loss: torch.Tensor | None = None

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"].fill_(lr)

    def __call__(self, inputs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self._graph is None:
            self._record(inputs, target, weight)
        if tuple(t.shape for t in (inputs, target, weight)) != tuple(t.shape for t in self._static):
            return self._eager(inputs, target, weight)
        for static, given in zip(self._static, (inputs, target, weight)):
            static.copy_(given)
        self._graph.replay()  # type: ignore[union-attr]
        return self._loss  # type: ignore[return-value]

    def _eager(self, inputs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=False)  # the graph's gradient tensors stay where it reads them
        loss = self.loss_fn(inputs, target, weight)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _record(self, inputs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> None:
        """Warm up, record, then put weights, BatchNorm statistics and Adam's state back as they were: the
        warm-up steps are not training steps, and the first replay is the run's next step."""
        self._static = tuple(t.detach().clone() for t in (inputs, target, weight))
        before = [(t, t.clone()) for t in self.model.state_dict().values()]
        had_state = {id(p) for p in self.optimizer.state}
        before += [(t, t.clone()) for p, s in self.optimizer.state.items() for t in s.values()
                   if isinstance(t, torch.Tensor)]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARM_UP_STEPS):
                self.optimizer.zero_grad(set_to_none=True)
                self.loss_fn(*self._static).backward()
                self.optimizer.step()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # backward in the graph allocates the gradients in its pool
        with torch.cuda.graph(graph):
            loss = self.loss_fn(*self._static)
            loss.backward()
            self.optimizer.step()
        with torch.no_grad():  # in place: the graph reads these very tensors
            for live, saved in before:
                live.copy_(saved)
            for p, s in self.optimizer.state.items():
                if id(p) not in had_state:  # made by the warm-up: a first step starts from zeros
                    for t in s.values():
                        if isinstance(t, torch.Tensor):
                            t.zero_()
        self._loss = loss.detach()
        self._graph = graph


def plain_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state dict with its learning rates as numbers, as an eager run saves them."""
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])
    return state
