"""Option types shared by several commands, so each is spelled and documented once.

A number option's range is a ``Range`` in its Annotated type; app._reporting_errors checks every such value
before the command runs, so an out-of-range value is one line and exit 1 in every command (typer's own
``min=`` would give a boxed usage error, exit 2, instead).
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from hrpose_cli.errors import HrposeError


@dataclass(frozen=True)
class Range:
    """Bounds of a number option (inclusive; None: unbounded), checked by app._reporting_errors."""

    low: float | None = None
    high: float | None = None

    def check(self, flag: str, value: float | None) -> None:
        if value is None:
            return
        if not math.isfinite(value) or (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise HrposeError(f"{flag} {value}: expected {self.describe()}")

    def describe(self) -> str:
        if self.high is None:
            return f"at least {self.low:g}"
        if self.low is None:
            return f"at most {self.high:g}"
        return f"a number from {self.low:g} to {self.high:g}"


AT_LEAST_1 = Range(1)
SCORE = Range(0.0, 1.0)

Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (auto picks CUDA when present).")]
Weights = Annotated[
    Optional[Path],
    typer.Option("--weights", help="hrpose or official HRNet checkpoint, or an ONNX model from hrpose export; default: the model shipped with hrpose."),
]
Flip = Annotated[bool, typer.Option("--flip/--no-flip", help="Flip test: average with the mirrored crop.")]
JsonOut = Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON to this file.")]
Batch = Annotated[int, typer.Option("--batch", help="Persons per network batch."), AT_LEAST_1]
Workers = Annotated[
    Optional[int], typer.Option("--workers", help="Image-decoding processes (default: cores - 1, at most 16)."), Range(0)
]
ScoreThreshold = Annotated[
    float, typer.Option("--score-threshold", help="Joints below this score are not drawn (0 to 1)."), SCORE
]
SkipBadImages = Annotated[
    bool,
    typer.Option("--skip-bad-images", help="Skip unreadable or missing images (and name them) instead of stopping."),
]
Decode = Annotated[
    str, typer.Option("--decode", help="Heatmap decoding: argmax (official, quarter offset) or dark (DARK, beyond the paper).")
]
Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the network (CUDA; slower start, faster run).")]
Precision = Annotated[
    str,
    typer.Option("--precision", help="Pose network arithmetic: auto (bf16 on CUDA, fp32 on the CPU), fp32, or bf16 "
                 "(on a CPU with native bf16, AVX512-BF16 or AMX: one person with flip 1.4-1.5x faster than fp32 on a 2-core Xeon)."),
]
InputSize = Annotated[
    Optional[str],
    typer.Option("--input-size", help="HxW input of an official checkpoint (default: from its file name, else 256x192)."),
]

DECODERS = ("argmax", "dark")


def parse_input_size(text: str | None) -> tuple[int, int] | None:
    """'256x192' -> (256, 192); None stays None."""
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise HrposeError(f"--input-size {text!r}: expected HEIGHTxWIDTH, e.g. 256x192")
    height, width = int(parts[0]), int(parts[1])
    if height % 32 or width % 32:
        raise HrposeError(f"--input-size {text!r}: height and width must be multiples of 32 (HRNet's four levels)")
    return height, width


def check_decoder(name: str) -> str:
    if name not in DECODERS:
        raise HrposeError(f"--decode {name!r}: expected one of {', '.join(DECODERS)}")
    return name


DETECTOR_NAMES = ("nanodet", "none")
Detector = Annotated[
    str,
    typer.Option("--detector", help="Person detector when no boxes are given: nanodet (shipped), its ONNX export (a .onnx file from hrpose export --detector) or none (the whole image is one person)."),
]


def check_detector(name: str) -> str:
    if name not in DETECTOR_NAMES and not name.lower().endswith(".onnx"):
        raise HrposeError(f"--detector {name!r}: expected one of {', '.join(DETECTOR_NAMES)} or a .onnx file")
    return name
