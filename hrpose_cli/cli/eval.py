"""`hrpose eval`: the ten COCO keypoint numbers for a results file, or for a model run on a dataset."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

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

if TYPE_CHECKING:  # the API imports torch: model mode imports it when it runs
    from hrpose_cli.api import Evaluation, Model

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


def network_precision(model: "Model") -> str:
    """How the pose network computes: bf16 or fp32 for a torch network, onnxruntime for an ONNX model."""
    from hrpose_cli.engine.onnx_pose import is_onnx

    if is_onnx(model.weights):
        return "onnxruntime"
    return "bf16" if model.predictor.runtime.amp else "fp32"


def model_report(model: "Model", evaluation: "Evaluation", ann: Path, target: Path, flip: bool,
                 decode: str) -> tuple[list[str], dict]:
    """Write the results file to ``target``; the header lines for the table and the extra keys for --json."""
    from hrpose_cli.engine.inference import default_note
    from hrpose_cli.engine.stage_clock import describe

    replaced = target.exists()
    write_json(target, evaluation.results)
    t, box_stats, config = evaluation.timing, evaluation.box_stats, model.predictor.config
    boxes = evaluation.boxes
    box_source = ("GT boxes (cleaned as the official code)" if boxes == "gt" else
                  f"the shipped person detector (score >= {evaluation.det_threshold})" if boxes == "detector"
                  else f"detections {boxes}")
    info = {
        "ann": str(ann),
        "images": evaluation.images,
        "people": evaluation.people,
        "boxes": box_source,
        "weights": str(model.weights) if model.weights else "default model",
        "flip": flip,
        "decode": decode,
        "precision": network_precision(model),
        "results_out": str(target),
        "sigmas": [float(s) for s in evaluation.sigmas],
        "persons_evaluated": t.persons,
        "persons_per_s": round(t.persons_per_s, 1),
        "data_wait_fraction": round(t.data_wait_fraction, 3),
        "stage_seconds": t.stages,
    }
    if box_stats is not None:
        info["person_box_AP"] = round(box_stats["AP"], 4)
        info["person_box_AP50"] = round(box_stats["AP50"], 4)
    note = default_note(model.predictor, model.weights)
    header = [f"[yellow]default model:[/] {note}"] if note else []
    header += [f"[yellow]{evaluation.sigma_warning}[/]"] if evaluation.sigma_warning else []
    header += [
        f"[bold]{ann}[/]: {info['images']} images, {info['people']} people",
        f"boxes: {box_source}; model: {info['weights']} ({config.arch}, "
        f"{config.input_size[0]}x{config.input_size[1]}, {info['precision']}); flip {'on' if flip else 'off'}; decode {decode}",
        *([f"person boxes of the detector: AP {box_stats['AP']:.4f}, AP50 {box_stats['AP50']:.4f}, "
           f"AR {box_stats['AR']:.4f} (pycocotools, iouType bbox, {len(evaluation.detections)} boxes)"] if box_stats else []),
        f"{t.persons} persons in {t.total_s:.2f} s on {evaluation.device}: {t.persons_per_s:.0f} persons/s, "
        f"waiting for images {t.data_wait_fraction:.0%}; results written to {target}"
        + (" (replacing the previous one: give --out or --results-out to keep both)" if replaced else ""),
        f"time by stage{' (GPU time, overlapping the host stages)' if evaluation.device.startswith('cuda') else ''}: "
        f"{describe(t.stages)}",
    ]
    if evaluation.failures:
        header.append(f"[yellow]skipped {len(evaluation.failures)} unreadable image(s) (their people count as missed):[/] "
                      + "; ".join(evaluation.failures))
        info["skipped_images"] = len(evaluation.failures)
    return header, info


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
    precision: options.Precision = "auto",
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
        threshold = check_det_threshold(det_threshold, EVAL_THRESHOLD)
        check_writable(results_out)
        check_writable(out, folder=True)
        if images is None:
            raise HrposeError("--images is needed with --ann to run a model (or pass --results to score a file)")
        from hrpose_cli.api import load

        detector = boxes == "detector"
        model = load(weights, device, detector=detector, flip=flip, decode=decode, compile=compile,
                     input_size=options.parse_input_size(input_size), batch=batch, det_threshold=threshold, lazy=True,
                     precision=precision)
        evaluation = model.evaluate(ann, images, boxes, batch=batch, workers=workers, det_threshold=threshold,
                                    sigmas=oks_sigmas, skip_bad_images=skip_bad_images)
        stats = evaluation.stats
        header, info = model_report(model, evaluation, ann, Path(results_out or Path(out or "runs/eval") / "results.json"),
                                    flip, decode)

    render_stats(stats, header)
    if analyze:
        from hrpose_cli.cli.analysis import analyze_results

        used = np.array(info["sigmas"]) if "sigmas" in info else oks_sigmas  # a model's own, when it has them
        info["analysis"] = analyze_results(ann, Path(info.get("results_out", results)), images, out, used)
    if json_out is not None:
        write_json(json_out, {**info, **stats})
