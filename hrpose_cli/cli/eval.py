"""`hrpose eval`: the ten COCO keypoint numbers for a results file, or for a model run on a dataset."""

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from hrpose_cli.cli import options
from hrpose_cli.cli.oks import Sigmas, parse_sigmas
from hrpose_cli.data.coco import CocoKeypoints, load_results, sample_dataset
from hrpose_cli.engine.evaluator import STAT_NAMES, coco_stats
from hrpose_cli.engine.thresholds import EVAL_THRESHOLD, check_det_threshold
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import check_writable, write_json

STAT_LABELS = {
    "AP": "AP @ OKS 0.50:0.95",
    "AP50": "AP @ OKS 0.50",
    "AP75": "AP @ OKS 0.75",
    "APm": "AP medium",
    "APl": "AP large",
    "AR": "AR @ OKS 0.50:0.95",
    "AR50": "AR @ OKS 0.50",
    "AR75": "AR @ OKS 0.75",
    "ARm": "AR medium",
    "ARl": "AR large",
}


def render_stats(stats: dict[str, float], header_lines: list[str]) -> None:
    """Print the header lines and the ten numbers as a table on stderr (shared by both modes of eval)."""
    console = Console(stderr=True, highlight=False)
    for line in header_lines:
        console.print(line)
    table = Table()
    table.add_column("metric")
    table.add_column("key", style="dim")
    table.add_column("value", justify="right")
    for name in STAT_NAMES:
        table.add_row(STAT_LABELS[name], name, f"{stats[name]:.4f}")
    console.print(table)


def evaluate(
    ann: Annotated[
        Optional[Path], typer.Option("--ann", help="COCO keypoint annotation file (default: the shipped sample).")
    ] = None,
    results: Annotated[
        Optional[Path], typer.Option("--results", help="Score this COCO keypoint results file (no model run).")
    ] = None,
    images: Annotated[
        Optional[Path], typer.Option("--images", help="Folder of the annotation file's images (model mode).")
    ] = None,
    weights: options.Weights = None,
    boxes: Annotated[
        str, typer.Option("--boxes", help="Person boxes for model mode: 'gt', 'detector' (the shipped one) or a COCO detection results file.")
    ] = "gt",
    flip: options.Flip = True,
    results_out: Annotated[
        Optional[Path], typer.Option("--results-out", help="Write the model's COCO keypoint results to this file.")
    ] = None,
    device: options.Device = "auto",
    batch: options.Batch = 64,
    workers: options.Workers = None,
    decode: options.Decode = "argmax",
    compile: options.Compile = False,
    input_size: options.InputSize = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Folder for model-mode outputs and --analyze figures (default: runs/eval).")
    ] = None,
    json_out: options.JsonOut = None,
    sigmas: Sigmas = None,
    det_threshold: Annotated[
        Optional[float], typer.Option("--det-threshold", help=f"With --boxes detector: the score a box needs (default {EVAL_THRESHOLD}).")
    ] = None,
    analyze: Annotated[
        bool, typer.Option("--analyze", help=(
            "Keypoint error analysis (Ronchi & Perona 2017, as coco-analyze): good/jitter/inversion/swap/miss per "
            "joint, AP at OKS 0.75 after fixing each error alone and cumulatively, the worst people; PNGs under "
            "--out, an 'analysis' object in --json. Area 'all' is pycocotools' (small people included). Corrected "
            "joints land where ks equals the target (0.85 jitter, 0.5 miss): the paper's stated distance, not the "
            "code's half distance."))
    ] = False,
    skip_bad_images: options.SkipBadImages = False,
) -> None:
    """Score keypoints with pycocotools: an existing results file (--results), or the model run on a dataset."""
    oks_sigmas = parse_sigmas(sigmas)
    check_writable(json_out)
    if ann is None:
        ann, sample_images = sample_dataset()
        images = images or sample_images

    if results is not None:
        dataset = CocoKeypoints.load(ann)
        stats = coco_stats(dataset, load_results(results, dataset), oks_sigmas)
        warning = dataset.schema.uniform_sigma_warning() if oks_sigmas is None else None
        info = {
            "ann": str(ann),
            "results": str(results),
            "images": len(dataset.image_ids),
            "people": dataset.num_people,
            "boxes": f"results file {results}",
        }
        header = [
            f"[bold]{ann}[/]: {info['images']} images, {info['people']} people",
            f"boxes: {info['boxes']}",
            *([f"[yellow]{warning}[/]"] if warning else []),
        ]
    else:
        options.check_decoder(decode)
        check_det_threshold(det_threshold, EVAL_THRESHOLD)
        check_writable(results_out)
        check_writable(out, folder=True)
        try:
            from hrpose_cli.engine.model_eval import run_model_eval
        except ImportError as err:
            if err.name != "hrpose_cli.engine.model_eval":
                raise
            raise HrposeError("evaluating with a model is not built yet: pass --results") from None
        # run_model_eval returns the ten numbers, the header lines to print and the extra keys for --json.
        stats, header, info = run_model_eval(
            ann=ann, images=images, weights=weights, boxes=boxes, flip=flip, results_out=results_out,
            device=device, batch=batch, workers=workers, decode=decode, compile=compile,
            input_size=options.parse_input_size(input_size), out=out, sigmas=oks_sigmas, det_threshold=det_threshold,
            skip_bad_images=skip_bad_images,
        )

    render_stats(stats, header)
    if analyze:
        from hrpose_cli.cli.analysis import analyze_results

        used = np.array(info["sigmas"]) if "sigmas" in info else oks_sigmas  # a model's own, when it has them
        info["analysis"] = analyze_results(ann, Path(info.get("results_out", results)), images, out, used)
    if json_out is not None:
        write_json(json_out, {**info, **stats})
