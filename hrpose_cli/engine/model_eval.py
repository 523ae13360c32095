"""Evaluate a model on a COCO keypoint set: persons -> predictor -> rescoring and OKS-NMS -> COCO stats.

Shared by `hrpose eval` and by validation during training, so the two report the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from hrpose_cli.core.oks import oks_nms, rescore
from hrpose_cli.data.coco import CocoKeypoints, PersonRecord
from hrpose_cli.data.images import ImageBatch, batch_loader
from hrpose_cli.engine.evaluator import coco_stats, person_box_stats
from hrpose_cli.engine.predictor import Estimates, PersonBox, Predictor, estimate, group_by_image, per_image
from hrpose_cli.engine.runtime import resolve_device
from hrpose_cli.engine.stage_clock import StageClock, describe, merge
from hrpose_cli.engine.thresholds import EVAL_THRESHOLD
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import write_json

RESCORE_THRESHOLD = 0.2  # joints above this score count in the person's rescoring (official in_vis_thre)
NMS_THRESHOLD = 0.9  # official oks_thre


@dataclass
class EvalOutcome:
    stats: dict[str, float]
    results: list[dict]
    estimates: Estimates
    records: list[PersonRecord]


def detect_records(predictor: Predictor, dataset: CocoKeypoints, images_dir: Path, threshold: float, batch_size: int,
                   workers: int | None = None, skip_bad_images: bool = False) -> tuple[list[PersonRecord], Estimates]:
    """Run the person detector on every image of the dataset and the pose model on what it finds."""
    from hrpose_cli.engine.inference import DetectedPeople, decode_images, images_per_detection_batch, load_detector

    paths = [dataset.image_path(i, images_dir) for i in dataset.image_ids]
    device = str(predictor.runtime.device)
    per_batch = images_per_detection_batch(batch_size, predictor.runtime.device.type)
    decoded = decode_images(paths, [PersonBox(i, None) for i in range(len(paths))], per_batch, workers, device)
    people = DetectedPeople(load_detector(predictor, threshold))
    estimates = estimate(predictor, decoded, people, skip_bad_images=skip_bad_images)
    records = []
    for k, (item, score) in enumerate(zip(people.found, people.scores.tolist())):
        index = item[0].index
        box = estimates.boxes[k]
        records.append(PersonRecord(dataset.image_ids[index], paths[index], box, np.zeros((dataset.num_joints, 3)),
                                    float(box[2] * box[3]), -1, score))
    return records, estimates


def person_records(dataset: CocoKeypoints, images_dir: Path, boxes: str = "gt") -> list[PersonRecord]:
    """The persons to run the model on: GT boxes (cleaned as the official code) or a detections file."""
    if boxes == "gt":
        records = dataset.persons(images_dir)
    else:
        records = dataset.detections(Path(boxes), images_dir)
    if not records:
        raise HrposeError(f"{dataset.path}: no person to evaluate (no non-crowd person with labelled joints)")
    return records


def decode_records(
    records: Sequence[PersonRecord], batch_size: int, workers: int | None = None, pin_memory: bool = False
) -> Iterator[ImageBatch]:
    """Start decoding the records' images in worker processes now: started before the model loads, they
    have the first batches ready when it is."""
    persons = [PersonBox(i, tuple(r.bbox), r.score) for i, r in enumerate(records)]
    batches = group_by_image([r.image_path for r in records], persons, batch_size)
    return iter(batch_loader(batches, workers, pin_memory))


def predict_records(
    predictor: Predictor,
    records: Sequence[PersonRecord],
    batch_size: int,
    workers: int | None = None,
    keep_heatmaps: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
    decoded: Iterator[ImageBatch] | None = None,
    skip_bad_images: bool = False,
) -> Estimates:
    """Keypoints for each record's box; images from ``decoded`` (decode_records), else decoded now.

    An unreadable image stops with its name, or with ``skip_bad_images`` leaves its persons' rows NaN."""
    if decoded is None:
        decoded = decode_records(records, batch_size, workers, predictor.runtime.device.type == "cuda")
    return estimate(predictor, decoded, per_image(lambda people, _shape: people), len(records), keep_heatmaps,
                    skip_bad_images=skip_bad_images, on_batch=on_batch)


def coco_results(records: Sequence[PersonRecord], estimates: Estimates, sigmas: np.ndarray | None = None) -> list[dict]:
    """COCO keypoint results, rescored and OKS-NMS'd per image as the official evaluate() does."""
    keypoints = estimates.keypoints
    scores = rescore(keypoints, np.array([r.score for r in records]), RESCORE_THRESHOLD)
    areas = estimates.padded_areas
    by_image: dict[int, list[int]] = {}
    for i, record in enumerate(records):
        by_image.setdefault(record.image_id, []).append(i)
    results = []
    for image_id, members in by_image.items():
        members = np.array([i for i in members if np.isfinite(keypoints[i]).all()])  # skipped images: no rows
        if not len(members):
            continue
        kwargs = {} if sigmas is None else {"sigmas": sigmas}
        keep = oks_nms(keypoints[members], scores[members], areas[members], NMS_THRESHOLD, **kwargs)
        for i in members[np.asarray(keep, dtype=int)]:
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": 1,
                    "keypoints": [float(v) for v in keypoints[i].reshape(-1)],
                    "score": float(scores[i]),
                }
            )
    return results


def evaluate_predictor(
    predictor: Predictor,
    dataset: CocoKeypoints,
    records: Sequence[PersonRecord],
    batch_size: int,
    workers: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    skip_bad_images: bool = False,
) -> EvalOutcome:
    """Predict every record, build the results file and score it with pycocotools."""
    estimates = predict_records(predictor, records, batch_size, workers, on_batch=on_batch,
                                skip_bad_images=skip_bad_images)
    results = coco_results(records, estimates)
    stats = coco_stats(dataset, results)
    return EvalOutcome(stats, results, estimates, list(records))


def _checked(predictor: Predictor, weights: Path | None, dataset: CocoKeypoints) -> Predictor:
    """The predictor, if its model has the annotation file's keypoints (else a one-line error naming both)."""
    if predictor.config.num_joints != dataset.num_joints:
        raise HrposeError(f"{weights or 'the default model'}: the model predicts {predictor.config.num_joints} keypoints, "
                          f"{dataset.path} labels {dataset.num_joints}")
    return predictor


def run_model_eval(
    ann: Path,
    images: Path | None,
    weights: Path | None,
    boxes: str = "gt",
    flip: bool = True,
    results_out: Path | None = None,
    device: str = "auto",
    batch: int = 64,
    workers: int | None = None,
    decode: str = "argmax",
    compile: bool = False,
    input_size: tuple[int, int] | None = None,
    out: Path | None = None,
    sigmas: np.ndarray | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    det_threshold: float | None = None,
    skip_bad_images: bool = False,
) -> tuple[dict[str, float], list[str], dict]:
    """`hrpose eval` with a model: the ten numbers, the header lines for the table, and the extra JSON keys.

    The results file goes to ``results_out``, else to OUT/results.json (OUT defaults to runs/eval).
    """
    from hrpose_cli.engine.inference import default_note, load_predictor

    if images is None:
        raise HrposeError("--images is needed with --ann to run a model (or pass --results to score a file)")
    if not Path(images).is_dir():
        raise HrposeError(f"{images}: images folder not found")
    dataset = CocoKeypoints.load(ann)
    box_stats = None
    clock = StageClock()  # host stages here; the device ones come with the estimates
    if boxes == "detector":
        threshold = EVAL_THRESHOLD if det_threshold is None else det_threshold
        with clock.host("load_model"):
            predictor = _checked(load_predictor(weights, device, flip, decode, compile, input_size, batch), weights, dataset)
        records, estimates = detect_records(predictor, dataset, Path(images), threshold, batch, workers, skip_bad_images)
        box_stats = person_box_stats(dataset, [{"image_id": r.image_id, "category_id": 1, "bbox": [float(v) for v in r.bbox],
                                                "score": r.score} for r in records])
    else:
        records = person_records(dataset, Path(images), boxes)
        decoded = decode_records(records, batch, workers, pin_memory=resolve_device(device).type == "cuda")
        with clock.host("load_model"):  # compiling, cuDNN autotuning and the CUDA graph's recording included
            predictor = _checked(load_predictor(weights, device, flip, decode, compile, input_size, batch), weights, dataset)
        estimates = predict_records(predictor, records, batch, on_batch=on_batch, decoded=decoded,
                                    skip_bad_images=skip_bad_images)
    loaded = clock.seconds()
    with clock.host("nms"):
        results = coco_results(records, estimates, sigmas)
    with clock.host("evaluation"):
        stats = coco_stats(dataset, results, sigmas)
    stages = merge(loaded, estimates.timing.stages, clock.seconds())
    target = Path(results_out) if results_out else Path(out or "runs/eval") / "results.json"
    replaced = target.exists()
    write_json(target, results)
    t = estimates.timing
    box_source = ("GT boxes (cleaned as the official code)" if boxes == "gt" else
                  f"the shipped person detector (score >= {threshold})" if boxes == "detector" else f"detections {boxes}")
    info = {
        "ann": str(ann),
        "images": len(dataset.image_ids),
        "people": dataset.num_people,
        "boxes": box_source,
        "weights": str(weights) if weights else "default model",
        "flip": flip,
        "decode": decode,
        "results_out": str(target),
        "persons_evaluated": t.persons,
        "persons_per_s": round(t.persons_per_s, 1),
        "data_wait_fraction": round(t.data_wait_fraction, 3),
        "stage_seconds": stages,
    }
    if box_stats is not None:
        info["person_box_AP"] = round(box_stats["AP"], 4)
        info["person_box_AP50"] = round(box_stats["AP50"], 4)
    note = default_note(predictor, weights)
    header = [f"[yellow]default model:[/] {note}"] if note else []
    header += [
        f"[bold]{ann}[/]: {info['images']} images, {info['people']} people",
        f"boxes: {box_source}; model: {info['weights']} ({predictor.config.arch}, "
        f"{predictor.config.input_size[0]}x{predictor.config.input_size[1]}); flip {'on' if flip else 'off'}; decode {decode}",
        *([f"person boxes of the detector: AP {box_stats['AP']:.4f}, AP50 {box_stats['AP50']:.4f}, "
           f"AR {box_stats['AR']:.4f} (pycocotools, iouType bbox, {len(records)} boxes)"] if box_stats else []),
        f"{t.persons} persons in {t.total_s:.2f} s on {predictor.runtime.device}: {t.persons_per_s:.0f} persons/s, "
        f"waiting for images {t.data_wait_fraction:.0%}; results written to {target}"
        + (" (replacing the previous one: give --out or --results-out to keep both)" if replaced else ""),
        f"time by stage{' (GPU time, overlapping the host stages)' if predictor.runtime.device.type == 'cuda' else ''}: "
        f"{describe(stages)}",
    ]
    if estimates.failures:
        header.append(f"[yellow]skipped {len(estimates.failures)} unreadable image(s) (their people count as missed):[/] "
                      + "; ".join(estimates.failures))
        info["skipped_images"] = len(estimates.failures)
    return stats, header, info
