"""Where a run's time goes, stage by stage, without slowing the run down.

Device stages are timed with CUDA events recorded into the stream as the work is queued, and read only when
the totals are asked for (where the run waits for the device anyway), so timing adds no host-device waits.
Host stages (waiting for decoded images, NMS, scoring) are perf_counter spans. On the CPU every stage is a
perf_counter span: its operations are synchronous. Device stages overlap the host ones, so the stages of a
pipelined run add up to more than its wall time.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import torch


class StageClock:
    """Seconds per named stage; ``lap`` charges device work, ``host``/``add`` host time."""

    def __init__(self, device: torch.device | str = "cpu", enabled: bool = True):
        self.cuda = torch.device(device).type == "cuda"
        self.enabled = enabled
        self._host: dict[str, float] = {}
        self._laps: list[tuple[str, object, object]] = []  # (stage, start, end): events on CUDA, floats on the CPU
        self._mark: object | None = None

    def _now(self) -> object:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def mark(self) -> None:
        """A boundary charged to no stage: call it after a wait (for data, say) so that the device's idle
        time during the wait is not charged to the next lap."""
        if self.enabled:
            self._mark = self._now()

    def lap(self, stage: str) -> None:
        """Charge the (device) time since the last boundary to ``stage``; this is the next lap's start."""
        if not self.enabled:
            return
        now = self._now()
        if self._mark is not None:
            self._laps.append((stage, self._mark, now))
        self._mark = now

    def add(self, stage: str, seconds: float) -> None:
        if self.enabled:
            self._host[stage] = self._host.get(stage, 0.0) + seconds

    @contextmanager
    def host(self, stage: str) -> Iterator[None]:
        """Charge the host time of the block to ``stage``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def seconds(self, reset: bool = True) -> dict[str, float]:
        """Seconds per stage, in the order the stages first appeared; waits for the last recorded event."""
        totals = dict(self._host)
        if self._laps and self.cuda:
            self._laps[-1][2].synchronize()  # type: ignore[attr-defined]
        for stage, start, end in self._laps:
            spent = start.elapsed_time(end) / 1000 if self.cuda else end - start  # type: ignore[attr-defined,operator]
            totals[stage] = totals.get(stage, 0.0) + spent
        if reset:
            self._host, self._laps, self._mark = {}, [], None
        return totals


def merge(*parts: dict[str, float]) -> dict[str, float]:
    """Stage totals added up, rounded to the millisecond (the form that JSON and metrics.jsonl keep)."""
    total: dict[str, float] = {}
    for part in parts:
        for stage, seconds in part.items():
            total[stage] = total.get(stage, 0.0) + seconds
    return {stage: round(seconds, 3) for stage, seconds in total.items()}


def describe(stages: dict[str, float]) -> str:
    """'data_wait 1.20 s, upload 0.31 s, ...' for the end-of-run line."""
    return ", ".join(f"{stage.replace('_', ' ')} {seconds:.2f} s" for stage, seconds in stages.items())
