"""`hrpose visualize-heatmaps`: one PNG per person comparing GT and predicted heatmaps on the network's crop."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from hrpose_cli.cli import options
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import check_writable
from hrpose_cli.viz.colormaps import colormap_lut
from hrpose_cli.viz.heatmaps import DEFAULT_MAX_PERSONS, SCREEN_ZOOM

console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

DEFAULT_OUT = Path("runs/visualize-heatmaps")


def _check_colormap(option: str, name: str) -> str:
    try:
        colormap_lut(name)
    except HrposeError as err:
        raise HrposeError(f"{option}: {err}") from None
    return name


def visualize_heatmaps(
    ann: Annotated[
        Optional[Path], typer.Option("--ann", help="COCO keypoint annotation file (default: the shipped sample).")
    ] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="Folder of the annotation file's images.")] = None,
    weights: options.Weights = None,
    ids: Annotated[
        Optional[list[str]],
        typer.Option("--ids", help="Annotation ids to draw, repeated or comma-separated (default: the first --max)."),
    ] = None,
    max_persons: Annotated[
        Optional[int],
        typer.Option(
            "--max",
            help=f"At most this many persons, in annotation order (default: {DEFAULT_MAX_PERSONS}; with --ids, all).",
            show_default=False,
        ),
        options.AT_LEAST_1,
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG sheets.")] = DEFAULT_OUT,
    cmap_gt: Annotated[str, typer.Option("--cmap-gt", help="Colour map of the GT heatmaps (OpenCV name).")] = "winter",
    cmap_pred: Annotated[str, typer.Option("--cmap-pred", help="Colour map of the predicted heatmaps.")] = "hot",
    alpha: Annotated[float, typer.Option("--alpha", help="Heatmap opacity at value 1, from 0 to 1."), options.SCORE] = 0.5,
    joints: Annotated[
        Optional[str],
        typer.Option("--joints", help="Joints to show: names or indices, comma-separated (default: all)."),
    ] = None,
    columns: Annotated[int, typer.Option("--columns", help="Joint panels per row."), options.AT_LEAST_1] = 6,
    full_size: Annotated[
        bool, typer.Option("--full-size", help="Panels zoomed for print (about 2,400 x 2,900 px) instead of screen-sized.")
    ] = False,
    device: options.Device = "auto",
    input_size: options.InputSize = None,
    flip: options.Flip = True,
    decode: options.Decode = "argmax",
) -> None:
    """Draw, per person, the network's input crop with GT and predicted heatmaps, per joint and combined."""
    options.check_decoder(decode)
    _check_colormap("--cmap-gt", cmap_gt)
    _check_colormap("--cmap-pred", cmap_pred)
    check_writable(out, folder=True)
    from hrpose_cli.engine.heatmap_view import iter_views, parse_ids, plan_views
    from hrpose_cli.model.checkpoints import default_model_note

    plan = plan_views(
        ann, images, weights, parse_ids(ids), max_persons, joints, device, flip, decode,
        options.parse_input_size(input_size),
    )
    console.print(plan.model_note)
    if weights is None and not plan.gt_only and (caveat := default_model_note()):
        console.print(f"default model: {caveat}")

    from hrpose_cli.viz.draw import write_image
    from hrpose_cli.viz.heatmaps import heatmap_sheet

    written = []
    for view in iter_views(plan):
        record = view.record
        name = f"{record.image_path.stem}_ann{record.ann_id}.png"
        title = f"{record.image_path.name} | annotation {record.ann_id}"
        if view.oks is not None:
            title += f" | OKS {view.oks:.3f}"
        if plan.gt_only:
            title += " | ground truth only (no model)"
        sheet = heatmap_sheet(
            view.crop, list(plan.joint_names), view.gt_heatmaps, view.pred_heatmaps, view.gt_joints,
            view.pred_joints, view.oks_terms, plan.shown, cmap_gt, cmap_pred, alpha, title, columns,
            *((None, None) if full_size else SCREEN_ZOOM), outline=True,
        )
        written.append(write_image(out / name, sheet))
        console.print(f"  {written[-1]}" + (f"  OKS {view.oks:.3f}" if view.oks is not None else ""))
    console.print(
        f"wrote {len(written)} sheet(s) to {out} "
        f"({len(plan.records)} of {plan.available} labelled persons in {plan.ann})"
    )
