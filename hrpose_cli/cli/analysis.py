"""`eval --analyze` output: the rich tables on stderr and the PNGs under --out (engine.error_analysis computes)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from hrpose_cli.core.keypoint_errors import LABELS
from hrpose_cli.data.coco import CocoKeypoints, load_results
from hrpose_cli.data.image_file import read_image
from hrpose_cli.engine.error_analysis import AREAS, FIXED, REPORT_OKS, ErrorAnalysis, analyze
from hrpose_cli.viz.draw import write_image
from hrpose_cli.viz.error_plots import STAGE_STYLE, joint_bars, person_tile, pr_figure, worst_sheet

WORST_LISTED = 10
WORST_DRAWN = 6


def _ap(value: float) -> str:
    return "-" if value < 0 else f"{value:.3f}"


def render_analysis(analysis: ErrorAnalysis, console: Console, ann: Path, images: Path | None) -> None:
    """The error shares overall and per joint, the AP after fixing each error type, the worst people."""
    counts = analysis.counts
    total = sum(counts.values())
    console.print(f"[bold]error analysis[/] (Ronchi & Perona 2017): {len(analysis.candidates)} of "
                  f"{analysis.detections} detections matched to a labelled person at OKS 0.1, {total} labelled "
                  f"keypoints; corrections: {analysis.convention} convention")
    if analysis.zero_keypoint_matches:
        console.print(f"{analysis.zero_keypoint_matches} detections matched only people without labelled keypoints "
                      "(left out, as coco-analyze does)")
    table = Table(title="labelled keypoints of the analysed detections")
    for column in ("type", "keypoints", "share"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for name in LABELS:
        table.add_row(name, str(counts[name]), f"{counts[name] / max(total, 1):.1%}")
    console.print(table)

    table = Table(title="per joint: share of its labelled keypoints")
    table.add_column("joint")
    table.add_column("n", justify="right")
    for name in LABELS:
        table.add_column(name, justify="right")
    for joint, row in zip(analysis.joint_names, analysis.count_matrix):
        n = int(row.sum())
        table.add_row(joint, str(n), *(f"{v / n:.0%}" if n else "-" for v in row))
    console.print(table)

    table = Table(title=f"AP at OKS {REPORT_OKS} after fixing each error: alone / cumulatively (in this order)")
    table.add_column("fixed", no_wrap=True)
    for area in AREAS:
        table.add_column(f"{area}\nalone", justify="right")
        table.add_column(f"{area}\ncumul.", justify="right")
    table.add_row("original", *(_ap(analysis.progressive[a]["original"]) for a in AREAS for _ in (0, 1)))
    for stage in FIXED:
        table.add_row(STAGE_STYLE[stage][0], *(_ap(v) for a in AREAS
                                                for v in (analysis.ap_fixed[a][stage], analysis.progressive[a][stage])))
    console.print(table)

    worst = analysis.worst(WORST_LISTED)
    table = Table(title=f"the {len(worst)} analysed detections with the lowest OKS (ann id: visualize-heatmaps --ids)")
    for column in ("image id", "ann id", "score", "OKS", *LABELS[1:]):
        table.add_column(column, justify="right")
    for c in worst:
        per_type = [str(int((c.labels == k).sum())) for k in range(1, len(LABELS))]
        table.add_row(str(c.image_id), str(c.ann_id), f"{c.score:.3f}", f"{c.oks:.3f}", *per_type)
    console.print(table)
    if worst:
        console.print(f"open them: hrpose visualize-heatmaps --ann {ann} --images {images or 'DIR'} "
                      f"--ids {','.join(str(c.ann_id) for c in worst)}", soft_wrap=True)


def write_figures(analysis: ErrorAnalysis, dataset: CocoKeypoints, images: Path | None, out: Path) -> list[Path]:
    """analysis_pr.png (figure 2 of the paper), analysis_joints.png and, with images, analysis_worst.png."""
    written = [write_image(out / "analysis_pr.png", pr_figure(analysis.curves)),
               write_image(out / "analysis_joints.png", joint_bars(analysis.count_matrix, analysis.joint_names))]
    worst = analysis.worst(WORST_DRAWN)
    if images is None or not worst:
        return written
    tiles = []
    for c in worst:
        ann = dataset.coco.anns[c.ann_id]
        rgb = read_image(dataset.image_path(c.image_id, images))[..., ::-1]
        gt = np.array(ann["keypoints"], dtype=np.float64).reshape(dataset.num_joints, 3)
        caption = f"image {c.image_id}, ann {c.ann_id}: OKS {c.oks:.2f}, score {c.score:.2f}"
        tiles.append(person_tile(np.ascontiguousarray(rgb), gt, analysis.keypoints[c.index], c.labels,
                                 np.array(ann["bbox"], dtype=np.float64), caption, schema=dataset.schema))
    written.append(write_image(out / "analysis_worst.png", worst_sheet(tiles)))
    return written


def analyze_results(ann: Path, results: Path, images: Path | None, out: Path | None,
                    sigmas: np.ndarray | None) -> dict:
    """Analyse a results file against its annotations, print the tables, write the PNGs under out (default
    runs/eval); returns the "analysis" object of --json."""
    console = Console(stderr=True, highlight=False)
    start = time.perf_counter()
    dataset = CocoKeypoints.load(ann)
    analysis = analyze(dataset, load_results(results, dataset), sigmas)
    seconds = time.perf_counter() - start
    render_analysis(analysis, console, ann, images)
    written = write_figures(analysis, dataset, images, Path(out or "runs/eval"))
    note = "" if images is not None else " (pass --images to draw the worst people)"
    console.print(f"analysis in {seconds:.2f} s, figures in {time.perf_counter() - start - seconds:.2f} s: "
                  f"{', '.join(str(p) for p in written)}{note}")
    return analysis.to_json()
