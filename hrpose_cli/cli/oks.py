"""`hrpose oks`: OKS of every prediction with every person annotation of its image, exactly as pycocotools."""

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from hrpose_cli.cli.options import JsonOut
from hrpose_cli.data.coco import CocoKeypoints, load_results
from hrpose_cli.engine.evaluator import oks_pairs
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import write_json

Sigmas = Annotated[
    Optional[str],
    typer.Option("--sigmas", help="OKS sigmas s1,s2,... one per keypoint. \\[default: the keypoint set's: COCO's for COCO-17, the model's own when it was trained with --sigmas, else one uniform value (with a warning)]", show_default=False),
]


def parse_sigmas(text: Optional[str]) -> Optional[np.ndarray]:
    """'0.026,0.025,...' -> array; None stays None (the keypoint set's own sigmas)."""
    if text is None:
        return None
    try:
        values = np.array([float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        raise HrposeError(f"--sigmas {text!r}: expected comma-separated numbers, e.g. 0.026,0.025,...") from None
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise HrposeError(f"--sigmas {text!r}: sigmas must be positive numbers")
    return values


def _number(value: float) -> Optional[float]:
    """JSON has no NaN: a value that does not exist is null."""
    return None if np.isnan(value) else float(value)


def oks(
    gt: Annotated[Path, typer.Argument(help="COCO keypoint annotation file.", show_default=False)],
    pred: Annotated[Path, typer.Argument(help="COCO keypoint results file.", show_default=False)],
    json_out: JsonOut = None,
    sigmas: Sigmas = None,
) -> None:
    """OKS of every prediction with every person annotation of its image, as pycocotools' computeOks."""
    dataset = CocoKeypoints.load(gt)
    results = load_results(pred, dataset)
    oks_sigmas = parse_sigmas(sigmas)
    report = oks_pairs(dataset, results, oks_sigmas)

    best = report.best_oks
    summary = {
        "pairs": len(report.pairs),
        "images": report.images,
        "predictions": report.predictions,
        "people": len(best),
        "mean_best_oks": _number(best.mean()) if len(best) else None,
        "joint_similarity": {n: _number(v) for n, v in zip(dataset.keypoint_names, report.joint_similarity)},
    }
    if json_out is not None:
        write_json(json_out, {"gt": str(gt), "pred": str(pred), "pairs": report.pairs, "summary": summary})

    console = Console(stderr=True, highlight=False)
    if oks_sigmas is None and (warning := dataset.schema.uniform_sigma_warning()):
        console.print(f"[yellow]{warning}[/]", soft_wrap=True)
    console.print(
        f"[bold]{len(report.pairs)}[/] pairs: {report.predictions} predictions in {report.images} images "
        f"against {gt}"
    )
    if len(best):
        console.print(
            f"best OKS per person: mean [bold]{best.mean():.4f}[/] over {len(best)} people, "
            f"{int((best >= 0.5).sum())} >= 0.5, {int((best >= 0.75).sum())} >= 0.75"
        )
    console.print("keypoint similarity exp(-e) with each person's best prediction:")
    table = Table()
    table.add_column("joint")
    table.add_column("mean", justify="right")
    for name, value in zip(dataset.keypoint_names, report.joint_similarity):
        table.add_row(name, "-" if np.isnan(value) else f"{value:.4f}")
    console.print(table)
    if json_out is not None:
        console.print(f"pairs written to {json_out}")
