"""`hrpose export`: the pose model as an ONNX file that outputs keypoints and scores (flip test and decoding
inside), or with ``--detector`` the shipped person detector with its boxes decoded inside."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from hrpose_cli.cli import options
from hrpose_cli.errors import HrposeError


def parse_batch(text: str) -> int | None:
    """'dynamic' -> None (any batch); 'N' -> a fixed batch of N crops."""
    if text.strip().lower() == "dynamic":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise HrposeError(f"--batch {text!r}: expected a positive number of crops or 'dynamic'")
    return int(text)


def export(
    weights: options.Weights = None,
    out: Annotated[Path, typer.Option("--out", help="The ONNX file to write.")] = Path("runs/export/model.onnx"),
    flip: Annotated[
        Optional[bool], typer.Option("--flip/--no-flip", help="Fold the flip test into the graph (mirrored forward, flip-back, shift) [default: flip].", show_default=False)
    ] = None,
    batch: Annotated[str, typer.Option("--batch", help="Crops per call: a fixed N, or 'dynamic' for any number.")] = "dynamic",
    half: Annotated[bool, typer.Option("--half", help="Store the network in fp16 (inputs and outputs stay fp32).")] = False,
    input_size: options.InputSize = None,
    detector: Annotated[
        bool, typer.Option("--detector", help="Export the shipped person detector instead (boxes decoded in the graph; any batch).")
    ] = False,
) -> None:
    """Write the pose model as ONNX: normalised crops in; heatmaps, keypoints (heatmap pixels) and scores out."""
    from hrpose_cli.engine.onnx_pose import is_onnx

    if out.is_dir():
        raise HrposeError(f"{out}: is a directory; --out names the .onnx file to write")
    console = Console(stderr=True, highlight=False)
    if detector:
        from hrpose_cli.engine.onnx_detector import export_detector

        given = [name for name, used in (("--weights", weights is not None), ("--flip/--no-flip", flip is not None),
                                         ("--batch", batch != "dynamic"), ("--half", half), ("--input-size", input_size))
                 if used]
        if given:
            raise HrposeError(f"{', '.join(given)}: options of the pose model's export, not of --detector")
        done = export_detector(out)
        console.print(f"{done.path}: the shipped person detector, any batch, fp32, {done.size_mib:.1f} MiB; onnxruntime "
                      f"against torch on random images: boxes max abs diff {done.max_abs_boxes:.1e} px, scores {done.max_abs_scores:.1e}")
        return

    from hrpose_cli.engine.onnx_pose import export_pose

    if is_onnx(weights):
        raise HrposeError(f"{weights}: already an ONNX model; --weights takes a torch checkpoint to export")
    flip = True if flip is None else flip
    done = export_pose(weights, out, flip, parse_batch(batch), half, options.parse_input_size(input_size))
    h, w = done.config.input_size
    console.print(
        f"{done.path}: {done.config.arch} {h}x{w}, {done.config.num_joints} keypoints, flip test "
        f"{'in the graph' if flip else 'off'}, batch {batch}, {'fp16' if half else 'fp32'}, {done.size_mib:.1f} MiB; "
        f"onnxruntime against torch fp32 on random crops: heatmaps max abs diff {done.max_abs_heatmaps:.1e}"
    )
