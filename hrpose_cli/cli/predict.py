"""`hrpose predict`: keypoints for people in images, folders, globs and videos."""

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hrpose_cli.cli import options
from hrpose_cli.core.oks import rescore
from hrpose_cli.files import atomic_write, write_json
from hrpose_cli.data.coco import read_detections

console = Console(stderr=True, highlight=False)


def predict(
    inputs: Annotated[list[str], typer.Argument(help="Images, folders, globs ('photos/*.jpg') or videos.", show_default=False)],
    weights: options.Weights = None,
    bbox: Annotated[
        Optional[list[str]], typer.Option("--bbox", help="Person box x,y,w,h in pixels (repeat for several people).")
    ] = None,
    boxes: Annotated[Optional[Path], typer.Option("--boxes", help="COCO detection results file with person boxes.")] = None,
    min_box_score: Annotated[float, typer.Option("--min-box-score", help="Ignore detections scored below this.")] = 0.0,
    flip: options.Flip = True,
    json_out: options.JsonOut = None,
    save_heatmaps: Annotated[
        Optional[Path], typer.Option("--save-heatmaps", help="Write the decoded heatmaps (persons, J, h, w) to this .npz.")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write each image (and video) with the skeletons drawn here.")] = None,
    score_threshold: Annotated[float, typer.Option("--score-threshold", help="Joints below this score are not drawn.")] = 0.3,
    device: options.Device = "auto",
    batch: options.Batch = 64,
    workers: options.Workers = None,
    decode: options.Decode = "argmax",
    compile: options.Compile = False,
    input_size: options.InputSize = None,
) -> None:
    """Estimate the keypoints of people in images or videos (one person per image unless boxes are given)."""
    from hrpose_cli.data.images import expand_inputs
    from hrpose_cli.engine import inference
    from hrpose_cli.engine.model_eval import RESCORE_THRESHOLD
    from hrpose_cli.model.checkpoints import default_model_note

    options.check_decoder(decode)
    if bbox and boxes:
        raise typer.BadParameter("give either --bbox or --boxes, not both")
    bboxes = [inference.parse_bbox(text) for text in bbox or []]
    detections = read_detections(boxes) if boxes else None
    images, videos = expand_inputs(inputs)
    if images:
        paths, persons = inference.plan_persons(images, bboxes, detections, min_box_score)
        decoded = inference.decode_images(paths, persons, batch, workers, device)
    predictor = inference.load_predictor(
        weights, device, flip, decode, compile, options.parse_input_size(input_size), batch
    )

    if weights is None and (note := default_model_note()):
        console.print(f"[yellow]default model:[/] {note}")
    records: list[dict] = []
    heatmaps: list[np.ndarray] = []
    if images:
        with _progress(len(images)) as progress:
            task = progress.add_task("predict", total=len(images))
            estimates = inference.predict_images(
                predictor, decoded, len(persons), keep_heatmaps=save_heatmaps is not None,
                on_batch=lambda n_images, _n: progress.advance(task, n_images),
            )
        scores = rescore(estimates.keypoints, np.array([p.score for p in persons]), RESCORE_THRESHOLD)
        for i, path in enumerate(paths):
            records.append(_record(path, estimates.boxes[i], estimates.keypoints[i], scores[i]))
        if estimates.heatmaps is not None:
            heatmaps.append(estimates.heatmaps)
        if out is not None:
            _draw_images(out, paths, records, score_threshold)
            console.print(f"drawings written to {out}/")
        t = estimates.timing
        console.print(
            f"{t.images} image(s), {t.persons} person(s) in {t.total_s:.2f} s "
            f"({t.persons_per_s:.1f} persons/s, waiting for images {t.data_wait_fraction:.0%}) on {predictor.runtime.device}"
        )
    for video in videos:
        records.extend(_predict_video(predictor, video, bboxes, batch, out, score_threshold, heatmaps, save_heatmaps))

    if json_out is not None:
        write_json(json_out, records)
    if save_heatmaps is not None:
        stacked = np.concatenate(heatmaps) if heatmaps else np.zeros((0,), np.float32)
        atomic_write(save_heatmaps, lambda f: np.savez_compressed(f, heatmaps=stacked))
    _render(records)


def _record(path: Path, box: np.ndarray, keypoints: np.ndarray, score: float, frame: int | None = None) -> dict:
    record = {
        "image": str(path),
        "bbox": [round(float(v), 2) for v in box],
        "keypoints": [round(float(v), 3) for v in keypoints.reshape(-1)],
        "score": float(score),
    }
    if frame is not None:
        record["frame"] = frame
    return record


def _progress(total: int) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=total < 2,
    )


def _arrays(records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keypoints = np.array([r["keypoints"] for r in records], dtype=np.float64).reshape(len(records), -1, 3)
    boxes = np.array([r["bbox"] for r in records], dtype=np.float64).reshape(len(records), 4)
    scores = np.array([r["score"] for r in records], dtype=np.float64)
    return keypoints, boxes, scores


def _draw_images(out: Path, paths: list[Path], records: list[dict], score_threshold: float) -> None:
    from hrpose_cli.data.images import read_image
    from hrpose_cli.viz.draw import draw_poses, write_image

    by_image: dict[Path, list[dict]] = {}
    for path, record in zip(paths, records):
        by_image.setdefault(path, []).append(record)
    for path, people in by_image.items():
        keypoints, boxes, scores = _arrays(people)
        rgb = read_image(path)[:, :, ::-1]
        write_image(out / f"{path.stem}.jpg", draw_poses(rgb, keypoints, boxes, scores, score_threshold))


def _predict_video(predictor, video: Path, bboxes, batch: int, out: Path | None, score_threshold: float,
                   heatmaps: list, save_heatmaps: Path | None) -> list[dict]:
    """Frame by frame: JSON lines per frame (and an annotated video) under --out; records for --json."""
    import cv2

    from hrpose_cli.engine import inference
    from hrpose_cli.engine.model_eval import RESCORE_THRESHOLD

    from hrpose_cli.viz.draw import draw_poses

    capture, info = inference.open_video(video)
    records: list[dict] = []
    writer = lines = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        # Written under temporary names and renamed at the end: an interrupted run leaves earlier outputs whole.
        finals = (out / f"{video.stem}.mp4", out / f"{video.stem}.jsonl")
        partials = tuple(path.with_name(f".{path.stem}.partial{path.suffix}") for path in finals)
        writer = cv2.VideoWriter(str(partials[0]), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height))
        lines = partials[1].open("w")
    try:
        frame_index = 0
        per_batch = max(1, batch // max(1, len(bboxes) or 1))
        with _progress(info.frames) as progress:
            task = progress.add_task(video.name, total=info.frames or None)
            for frames in inference.video_frames(capture, per_batch):
                estimates, frame_of = inference.predict_frames(predictor, frames, bboxes, save_heatmaps is not None)
                scores = rescore(estimates.keypoints, np.ones(len(frame_of)), RESCORE_THRESHOLD)
                frame_records = [
                    _record(video, estimates.boxes[i], estimates.keypoints[i], scores[i], frame_index + frame_of[i])
                    for i in range(len(frame_of))
                ]
                records.extend(frame_records)
                if estimates.heatmaps is not None:
                    heatmaps.append(estimates.heatmaps)
                for f, frame in enumerate(frames):
                    people = [r for r, fo in zip(frame_records, frame_of) if fo == f]
                    if lines is not None:
                        lines.write(json.dumps({"frame": frame_index + f, "persons": people}) + "\n")
                    if writer is not None:
                        keypoints, boxes, person_scores = _arrays(people)
                        drawn = draw_poses(frame[:, :, ::-1], keypoints, boxes, person_scores, score_threshold)
                        writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
                frame_index += len(frames)
                progress.advance(task, len(frames))
    except BaseException:  # an error or Ctrl-C: no half-written video or JSON lines are left behind
        capture.release()
        if writer is not None:
            writer.release()
            lines.close()
            for partial in partials:
                partial.unlink(missing_ok=True)
        raise
    capture.release()
    if writer is not None:
        writer.release()
        lines.close()
        for partial, final in zip(partials, finals):
            os.replace(partial, final)
    console.print(f"{video}: {frame_index} frame(s)" + (f" -> {out / video.stem}.mp4, .jsonl" if out else ""))
    return records


def _render(records: list[dict]) -> None:
    if not records or len(records) > 20:
        return
    table = Table(title="hrpose predict", title_justify="left")
    for column in ("image", "box x,y,w,h", "score", "joints > 0.3"):
        table.add_column(column)
    for record in records:
        kp = np.array(record["keypoints"]).reshape(-1, 3)
        name = Path(record["image"]).name + (f" #{record['frame']}" if "frame" in record else "")
        table.add_row(name, ", ".join(f"{v:.0f}" for v in record["bbox"]), f"{record['score']:.3f}", str(int((kp[:, 2] > 0.3).sum())))
    console.print(table)
