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
from hrpose_cli.core.schema import KeypointSchema
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import atomic_write, check_writable, write_json
from hrpose_cli.data.coco import read_detections
from hrpose_cli.engine.thresholds import PREDICT_THRESHOLD, check_det_threshold

console = Console(stderr=True, highlight=False)


def predict(
    inputs: Annotated[list[str], typer.Argument(help="Images, folders, globs ('photos/*.jpg') or videos.", show_default=False)],
    weights: options.Weights = None,
    bbox: Annotated[
        Optional[list[str]], typer.Option("--bbox", help="Person box x,y,w,h in pixels (repeat for several people).")
    ] = None,
    boxes: Annotated[Optional[Path], typer.Option("--boxes", help="COCO detection results file with person boxes.")] = None,
    min_box_score: Annotated[
        float, typer.Option("--min-box-score", help="Ignore detections scored below this (0 to 1)."), options.SCORE
    ] = 0.0,
    flip: options.Flip = True,
    json_out: options.JsonOut = None,
    save_heatmaps: Annotated[
        Optional[Path], typer.Option("--save-heatmaps", help="Write the decoded heatmaps (persons, J, h, w) to this .npz.")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write each image (and video) with the skeletons drawn here.")] = None,
    score_threshold: options.ScoreThreshold = 0.3,
    device: options.Device = "auto",
    batch: options.Batch = 64,
    workers: options.Workers = None,
    decode: options.Decode = "argmax",
    compile: options.Compile = False,
    precision: options.Precision = "auto",
    input_size: options.InputSize = None,
    detector: options.Detector = "nanodet",
    det_threshold: Annotated[
        Optional[float], typer.Option("--det-threshold", help=f"Detector score a person box needs (default {PREDICT_THRESHOLD}).")
    ] = None,
    save_boxes: Annotated[
        Optional[Path], typer.Option("--save-boxes", help="Write the detected person boxes as a COCO detection results file.")
    ] = None,
    skip_bad_images: options.SkipBadImages = False,
) -> None:
    """Find the people in images or videos and estimate their keypoints (a detector finds them unless boxes are given)."""
    from hrpose_cli import api
    from hrpose_cli.data.images import expand_inputs
    from hrpose_cli.engine import inference

    options.check_decoder(decode)
    threshold = check_det_threshold(det_threshold, PREDICT_THRESHOLD)
    if bbox and boxes:
        raise typer.BadParameter("give either --bbox or --boxes, not both")
    detect = options.check_detector(detector) != "none" and not bbox and not boxes
    if save_boxes is not None and not detect:
        raise HrposeError("--save-boxes writes the detector's boxes: it needs the detector (no --bbox, --boxes or --detector none)")
    bboxes = [inference.parse_bbox(text) for text in bbox or []]
    detections = read_detections(boxes) if boxes else None
    images, videos = expand_inputs(inputs)
    for path in (json_out, save_heatmaps, save_boxes):
        check_writable(path)
    check_writable(out, folder=True)
    model = api.load(weights, device, detector if detect else False, flip=flip, decode=decode, compile=compile,
                     input_size=options.parse_input_size(input_size), batch=batch, det_threshold=threshold, lazy=True,
                     precision=precision)

    records: list[dict] = []
    heatmaps: list[np.ndarray] = []
    found_per_image: dict[str, tuple[int, float]] | None = None  # people found, the best candidate's score
    if images:
        given, box_scores, unmatched = (None, None, [])
        if detections is not None:
            given, box_scores, unmatched = inference.boxes_from_detections(images, detections, min_box_score)
        elif bboxes:
            given = [np.array(bboxes, dtype=np.float64)] * len(images)
        with _progress(len(images)) as progress:
            task = progress.add_task("predict", total=len(images))
            run = model.run(images, given, box_scores, batch=batch, heatmaps=save_heatmaps is not None,
                            workers=workers, skip_bad_images=skip_bad_images,
                            on_batch=lambda n_images, _n: progress.advance(task, n_images))
        _default_note(model, weights)
        _detector_note(model, detect)
        for result in run.results:
            for i in range(len(result)):
                records.append(_record(result.path, result.boxes[i], result.keypoints[i], result.scores[i],
                                       model.predictor.schema, det_score=float(result.box_scores[i]) if detect else None))
            if result.heatmaps is not None:
                heatmaps.append(result.heatmaps)
        if detect:
            found_per_image = {str(result.path): (len(result), result.best_candidate or 0.0) for result in run.results}
        drawn = [result.path for result in run.results if detect or len(result)]  # nobody found: drawn as it is
        if out is not None:
            _draw_images(out, drawn, records, score_threshold, model.predictor.schema)
            console.print(f"drawings written to {out}/")
        t = run.timing
        nearest = [best for n, best in (found_per_image or {}).values() if n == 0]
        console.print(
            f"{t.images} image(s), {t.persons} person(s) in {t.total_s:.2f} s "
            f"({t.persons_per_s:.1f} persons/s, waiting for images {t.data_wait_fraction:.0%}) on {run.device}"
            + (f"; nobody found in {len(nearest)} image(s) (the detector's best box there scored {max(nearest):.2f}, "
               f"--det-threshold is {threshold:.2f})" if nearest else "")
        )
        if detections is not None:
            _report_boxes(boxes, images, [p for p, b in zip(images, given) if len(b)], unmatched)
    else:
        _default_note(model, weights)
    for video in videos:
        records.extend(_predict_video(model.predictor, video, bboxes, batch, out, score_threshold, heatmaps,
                                      save_heatmaps, model.detector))

    if json_out is not None:
        write_json(json_out, records)
    if save_heatmaps is not None:
        stacked = np.concatenate(heatmaps) if heatmaps else np.zeros((0,), np.float32)
        atomic_write(save_heatmaps, lambda f: np.savez_compressed(f, heatmaps=stacked))
    if save_boxes is not None:
        write_json(save_boxes, _detection_results(records))
    _render(records, found_per_image, threshold)
    if images and run.failures:  # last, so that the run ends by naming what it left out
        console.print(f"[yellow]skipped {len(run.failures)} unreadable image(s):[/] " + "; ".join(run.failures),
                      soft_wrap=True)


def _default_note(model, weights: Path | None) -> None:
    """The default model's caveat, once its predictor is loaded."""
    from hrpose_cli.engine.inference import default_note

    if note := default_note(model.predictor, weights):
        console.print(f"[yellow]default model:[/] {note}")


def _detector_note(model, detect: bool) -> None:
    """The detector finds people: say so when the model's keypoints are of something else."""
    category = model.predictor.schema.category
    if detect and category != "person":
        console.print(f"[yellow]the model's keypoints are of '{category}', but the detector finds people:[/] give "
                      "the boxes (--boxes, --bbox) or --detector none (the whole image)", soft_wrap=True)


def _report_boxes(boxes: Path, images: list[Path], paths: list[Path], unmatched: list[dict]) -> None:
    """Say which images got no box and which detections matched no image, instead of dropping them silently."""
    without = len(set(images) - set(paths))
    if without:
        console.print(f"[yellow]{without} of {len(images)} image(s) had no box in {boxes}[/] (no detection, or all "
                      "below --min-box-score): no person estimated in them", soft_wrap=True)
    if unmatched:
        keys = sorted({str(d.get("file_name", d.get("image_id"))) for d in unmatched})
        console.print(f"[yellow]{len(unmatched)} detection(s) in {boxes} matched no image[/] ({', '.join(keys[:5])}"
                      + (", ..." if len(keys) > 5 else "") + "): boxes match by file_name, else by image_id = the "
                      "file name's trailing digits", soft_wrap=True)


def _record(path: Path, box: np.ndarray, keypoints: np.ndarray, score: float, schema: KeypointSchema,
            frame: int | None = None, det_score: float | None = None, track_id: int | None = None) -> dict:
    record = {
        "image": str(path),
        "bbox": [round(float(v), 2) for v in box],
        "keypoints": [round(float(v), 3) for v in keypoints.reshape(-1)],
        "keypoint_names": list(schema.names),  # the model's set: K names for the K x, y, score triples
        "score": float(score),
    }
    if det_score is not None:
        record["det_score"] = round(det_score, 4)
    if frame is not None:
        record["frame"] = frame
    if track_id is not None:
        record["track_id"] = track_id
    return record


def _detection_results(records: list[dict]) -> list[dict]:
    """Detected boxes as a COCO detection results file that `--boxes` reads back (matched by file_name).

    Video frames have no file of their own: only image records are written.
    """
    from hrpose_cli.engine.inference import image_id_of

    results = []
    for record in records:
        if "frame" in record:
            continue
        path = Path(record["image"])
        entry = {"file_name": path.name, "category_id": 1, "bbox": record["bbox"], "score": record["det_score"]}
        if (image_id := image_id_of(path)) is not None:
            entry["image_id"] = image_id
        results.append(entry)
    return results


def _progress(total: int) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=total < 2,
    )


def _arrays(records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    joints = len(records[0]["keypoints"]) // 3 if records else 0  # an image where nobody was found: no joints
    keypoints = np.array([r["keypoints"] for r in records], dtype=np.float64).reshape(len(records), joints, 3)
    boxes = np.array([r["bbox"] for r in records], dtype=np.float64).reshape(len(records), 4)
    scores = np.array([r["score"] for r in records], dtype=np.float64)
    return keypoints, boxes, scores


def _draw_images(out: Path, images: list[Path], records: list[dict], score_threshold: float,
                 schema: KeypointSchema) -> None:
    """Every image with its people drawn (an image where nobody was found is written as it is)."""
    from hrpose_cli.data.images import read_image
    from hrpose_cli.viz.draw import draw_poses, write_image

    by_image: dict[str, list[dict]] = {}
    for record in records:
        by_image.setdefault(record["image"], []).append(record)
    for path in dict.fromkeys(images):
        keypoints, boxes, scores = _arrays(by_image.get(str(path), []))
        rgb = read_image(path)[:, :, ::-1]
        write_image(out / f"{path.stem}.jpg", draw_poses(rgb, keypoints, boxes, scores, score_threshold, schema=schema))


def _predict_video(predictor, video: Path, bboxes, batch: int, out: Path | None, score_threshold: float,
                   heatmaps: list, save_heatmaps: Path | None, detector=None) -> list[dict]:
    """Frame by frame: JSON lines per frame (and an annotated video) under --out; records for --json.

    With the detector, people are followed from frame to frame: each record gets a ``track_id`` and each
    track is drawn in its own colour."""
    import cv2

    from hrpose_cli.core.tracking import Tracker
    from hrpose_cli.engine import inference
    from hrpose_cli.engine.model_eval import RESCORE_THRESHOLD
    from hrpose_cli.viz.colormaps import track_colour
    from hrpose_cli.viz.draw import draw_poses

    capture, info = inference.open_video(video)
    schema = predictor.schema
    tracker = Tracker(schema.oks_sigmas) if detector is not None else None
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
        if detector is not None:
            per_batch = inference.images_per_detection_batch(batch, predictor.runtime.device.type)
        else:
            per_batch = max(1, batch // max(1, len(bboxes) or 1))
        with _progress(info.frames) as progress:
            task = progress.add_task(video.name, total=info.frames or None)
            for frames in inference.video_frames(capture, per_batch):
                estimates, frame_of, box_scores = inference.predict_frames(
                    predictor, frames, bboxes, save_heatmaps is not None, detector)
                scores = rescore(estimates.keypoints, box_scores, RESCORE_THRESHOLD)
                if estimates.heatmaps is not None:
                    heatmaps.append(estimates.heatmaps)
                for f, frame in enumerate(frames):
                    members = [i for i, fo in enumerate(frame_of) if fo == f]
                    tracks = (tracker.update(estimates.boxes[members], estimates.keypoints[members])
                              if tracker is not None else [None] * len(members))
                    people = [
                        _record(video, estimates.boxes[i], estimates.keypoints[i], scores[i], schema, frame_index + f,
                                float(box_scores[i]) if detector is not None else None,
                                None if track is None else int(track))
                        for i, track in zip(members, tracks)
                    ]
                    records.extend(people)
                    if lines is not None:
                        lines.write(json.dumps({"frame": frame_index + f, "persons": people}) + "\n")
                    if writer is not None:
                        keypoints, boxes, person_scores = _arrays(people)
                        colours = None if tracker is None else [track_colour(p["track_id"]) for p in people]
                        drawn = draw_poses(frame[:, :, ::-1], keypoints, boxes, person_scores, score_threshold,
                                           box_colours=colours, schema=schema)
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
    if frame_index == 0:
        if writer is not None:
            for partial in partials:
                partial.unlink(missing_ok=True)
        raise HrposeError(f"{video}: no readable frame in this video")
    if writer is not None:
        for partial, final in zip(partials, finals):
            os.replace(partial, final)
    summary = f"{video}: {frame_index} frame(s)"
    if tracker is not None:
        lengths = np.bincount([r["track_id"] for r in records]) if records else np.zeros(0, int)
        lengths = lengths[lengths > 0]
        summary += f", {len(lengths)} track(s)" + (f" (median {np.median(lengths):.0f} frames, longest {lengths.max()})"
                                                    if len(lengths) else "")
    console.print(summary + (f" -> {out / video.stem}.mp4, .jsonl" if out else ""))
    return records


def _render(records: list[dict], found_per_image: dict[str, tuple[int, float]] | None = None,
            threshold: float = PREDICT_THRESHOLD) -> None:
    """A table of what was found: per person, or with the detector per image (how many people it found; where
    it found nobody, how near its best box came to the threshold)."""
    if found_per_image is not None:
        if not found_per_image or len(found_per_image) > 20:
            return
        table = Table(title="hrpose predict", title_justify="left")
        for column in ("image", "people", "box scores", "joints > 0.3"):
            table.add_column(column)
        for image, (count, best) in found_per_image.items():
            mine = [r for r in records if r["image"] == image]
            joints = [int((np.array(r["keypoints"]).reshape(-1, 3)[:, 2] > 0.3).sum()) for r in mine]
            scores = ", ".join(f"{r['det_score']:.2f}" for r in mine[:8]) if count else f"best {best:.2f} < {threshold:.2f}"
            table.add_row(Path(image).name, str(count) if count else "nobody found",
                          scores + (" ..." if len(mine) > 8 else ""),
                          ", ".join(map(str, joints[:8])) + (" ..." if len(mine) > 8 else ""))
        console.print(table)
        return
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
