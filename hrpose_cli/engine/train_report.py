"""What a training run tells the outside world while it runs (TrainReporter), what it leaves in its run folder
after each epoch (write_history: metrics.jsonl and the curves) and what it returns (TrainResult)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from hrpose_cli.files import atomic_write


class TrainReporter:
    """What the trainer tells the outside world (rank 0 only); the default is silent.

    Any object with these methods will do: the CLI's RichReporter renders them with rich without importing
    this module (and torch) before the command runs.
    """

    def start(self, info: dict[str, Any]) -> None: ...

    def message(self, text: str) -> None: ...

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, step: int, loss: float | None, lr: float, images_per_s: float) -> None:
        """After each queued step (1-based count); ``loss`` is the epoch's running mean when it was read, else None."""

    def validation_start(self, epoch: int, persons: int) -> None: ...

    def epoch_end(self, metrics: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    history: list[dict[str, Any]]
    best_ap: float | None
    best_epoch: int | None
    world_size: int
    global_batch: int
    skipped_images: list[str]
    model: nn.Module | None = None  # the trained network (unwrapped), for Python callers and tests

    @property
    def images_per_s(self) -> float:
        rates = [m["images_per_s"] for m in self.history if m.get("images_per_s")]
        return float(np.mean(rates)) if rates else 0.0

    @property
    def data_wait_fraction(self) -> float:
        waits = [m["data_wait_fraction"] for m in self.history if "data_wait_fraction" in m]
        return float(np.mean(waits)) if waits else 0.0


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl (atomically: a crash never truncates it) and, where matplotlib is there, loss.png and ap.png."""
    lines = "".join(json.dumps(m, allow_nan=False) + "\n" for m in history)
    atomic_write(run_dir / "metrics.jsonl", lambda f: f.write(lines.encode()))
    try:
        from hrpose_cli.viz.plots import plot_curves
    except ImportError:
        return
    loss = [(m["epoch"], m["loss"]) for m in history]
    plot_curves({"train loss": loss}, "Training loss", run_dir / "loss.png", ylabel="loss")
    ap = [(m["epoch"], m["AP"]) for m in history if "AP" in m]
    if ap:
        plot_curves({"val AP": ap}, "Validation AP (GT boxes, flip test)", run_dir / "ap.png", ylabel="AP")
