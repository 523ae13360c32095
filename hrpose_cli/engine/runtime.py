"""Device choice and the fast-path settings (bf16 autocast, channels_last, torch.compile, CUDA graphs) in one place."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hrpose_cli.errors import HrposeError


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch.device, with a one-line error for what is not there."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise HrposeError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise HrposeError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
        return device
    raise HrposeError(f"--device {spec}: expected auto, cpu, cuda or cuda:N")


PRECISIONS = ("auto", "fp32", "bf16")


def precision_amp(precision: str) -> bool | None:
    """--precision as Runtime.create's ``amp``: None (auto: bf16 on CUDA, fp32 on the CPU), False or True."""
    if precision not in PRECISIONS:
        raise HrposeError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return None if precision == "auto" else precision == "bf16"


@dataclass
class Runtime:
    """Where and how the network runs: bf16 autocast, channels_last and CUDA graphs (for fixed-shape
    inference) on CUDA, plain fp32 on the CPU; ``amp`` set either way by --precision."""

    device: torch.device
    amp: bool
    channels_last: bool
    compile: bool = False
    cuda_graphs: bool = False

    @staticmethod
    def create(device: str = "auto", compile: bool = False, amp: bool | None = None,
               autotune: bool = True) -> "Runtime":
        """``autotune``: let cuDNN time its algorithms for each new shape (torch.backends.cudnn.benchmark, one
        flag for the process). It pays over a training run; for inference it costs seconds of start-up that
        only runs of about 100,000 persons and more win back (inference.load_predictor)."""
        dev = resolve_device(device)
        on_cuda = dev.type == "cuda"
        if on_cuda:
            torch.backends.cudnn.benchmark = autotune
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        return Runtime(dev, amp=on_cuda if amp is None else amp, channels_last=on_cuda, compile=compile,
                       cuda_graphs=on_cuda)

    def autocast(self, cache: bool = True):
        """bf16 autocast where amp is on. ``cache=False`` casts the weights inside the region every time:
        what a CUDA graph capture needs, since autocast's cached casts are freed when the region ends."""
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=cache)
        return contextlib.nullcontext()

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move the model to the device in the right memory format, and compile it when asked (by regions,
        in place: engine.compiling)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            from hrpose_cli.engine.compiling import compile_regions

            model = compile_regions(model)
        return model

    def upload(self, array: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
        """A host array on the device without stalling it: pinned, then an asynchronous copy.

        A copy from ordinary (pageable) memory makes CUDA wait for all queued work first, which would
        empty the queue between batches; pinned copies keep the device busy.
        """
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if dtype is not None:
            tensor = tensor.to(dtype)
        if self.device.type != "cuda":
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def input(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def peak_memory_gib(self) -> float:
        if self.device.type != "cuda":
            return 0.0
        return torch.cuda.max_memory_allocated(self.device) / 2**30

