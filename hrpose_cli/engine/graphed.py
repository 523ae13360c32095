"""The test-time network replayed as one CUDA graph: for the fixed batch shape of padded inference.

HRNet launches some 300 kernels per forward (w16: more launches than arithmetic), so on a fast GPU the
host's launching, not the device, sets the pace. Inference pads every batch to one shape, which lets the
whole forward (flip test and argmax decoding included) be recorded once and replayed with one launch.
The weights are read where they live, so a graph stays right while training updates them in place.
"""

from __future__ import annotations

import torch
from torch import nn

from hrpose_cli.engine.runtime import Runtime

WARM_UP_RUNS = 2  # cuDNN autotuning (and compiling) happen in these, on a side stream, never in the recording


class GraphedPose:
    """A PoseGraph-like callable (crops -> heatmaps, peaks, scores) recorded for one input shape.

    Inputs of another shape (an image with more persons than the padded batch) run the module eagerly.
    The outputs are copies: the graph's own buffers are overwritten by the next replay, while callers keep
    a batch's results until the next batch is queued.
    """

    def __init__(self, module: nn.Module, runtime: Runtime, shape: tuple[int, ...]):
        self.module = module
        self.flip = getattr(module, "flip", True)
        self.runtime = runtime
        self.shape = tuple(shape)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._input: torch.Tensor | None = None
        self._outputs: tuple[torch.Tensor, ...] = ()

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if tuple(inputs.shape) != self.shape or inputs.device != self.runtime.device:
            return self.module(inputs)
        with torch.inference_mode():
            if self._graph is None:
                self._record(inputs)
            self._input.copy_(inputs)  # type: ignore[union-attr]
            self._graph.replay()  # type: ignore[union-attr]
            return tuple(t.clone() for t in self._outputs)

    def _record(self, inputs: torch.Tensor) -> None:
        self._input = torch.empty_like(inputs).copy_(inputs)
        side = torch.cuda.Stream(self.runtime.device)
        side.wait_stream(torch.cuda.current_stream(self.runtime.device))
        with torch.cuda.stream(side), self.runtime.autocast(cache=False):
            for _ in range(WARM_UP_RUNS):
                self.module(self._input)
        torch.cuda.current_stream(self.runtime.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the loader's pinning thread may touch CUDA meanwhile, which only this thread must not
        with torch.cuda.graph(graph, capture_error_mode="thread_local"), self.runtime.autocast(cache=False):
            self._outputs = tuple(self.module(self._input))
        self._graph = graph
