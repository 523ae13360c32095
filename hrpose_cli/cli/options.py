"""Option types shared by several commands, so each is spelled and documented once."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from hrpose_cli.errors import HrposeError

Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (auto picks CUDA when present).")]
Weights = Annotated[
    Optional[Path],
    typer.Option("--weights", help="hrpose or official HRNet checkpoint, or an ONNX model from hrpose export; default: the model shipped with hrpose."),
]
Flip = Annotated[bool, typer.Option("--flip/--no-flip", help="Flip test: average with the mirrored crop.")]
JsonOut = Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON to this file.")]
Batch = Annotated[int, typer.Option("--batch", min=1, help="Persons per network batch.")]
Workers = Annotated[
    Optional[int], typer.Option("--workers", min=0, help="Image-decoding processes (default: cores - 1, at most 16).")
]
Decode = Annotated[
    str, typer.Option("--decode", help="Heatmap decoding: argmax (official, quarter offset) or dark (DARK, beyond the paper).")
]
Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the network (CUDA; slower start, faster run).")]
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
    if height % 4 or width % 4:
        raise HrposeError(f"--input-size {text!r}: height and width must be multiples of 4")
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
