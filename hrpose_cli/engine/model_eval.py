"""The evaluation rules shared by `hrpose eval` (through Model.evaluate) and validation during training:
which persons to run (GT boxes or a detections file), and how keypoints become COCO results (rescoring
and OKS-NMS per image, as the official evaluate() does), so that both report the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from hrpose_cli.core.geometry import padded_areas
from hrpose_cli.core.oks import oks_nms, rescore
from hrpose_cli.data.coco import CocoKeypoints, PersonRecord
from hrpose_cli.data.images import ImageBatch, batch_loader
from hrpose_cli.engine.evaluator import coco_stats
from hrpose_cli.engine.predictor import Estimates, PersonBox, Predictor, estimate, group_by_image, per_image
from hrpose_cli.errors import HrposeError

RESCORE_THRESHOLD = 0.2  # joints above this score count in the person's rescoring (official in_vis_thre)
NMS_THRESHOLD = 0.9  # official oks_thre


@dataclass
class EvalOutcome:
    stats: dict[str, float]
    results: list[dict]
    estimates: Estimates
    records: list[PersonRecord]


def person_records(dataset: CocoKeypoints, images_dir: Path, boxes: str = "gt") -> list[PersonRecord]:
    """The persons to run the model on: GT boxes (cleaned as the official code) or a detections file."""
    if boxes == "gt":
        records = dataset.persons(images_dir)
    else:
        records = dataset.detections(Path(boxes), images_dir)
    if not records:
        raise HrposeError(f"{dataset.path}: no person to evaluate (no non-crowd person with labelled joints)")
    return records


def keypoint_results(image_ids: Sequence[int], keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray,
                     aspect_ratio: float, sigmas: np.ndarray | None = None) -> list[dict]:
    """COCO keypoint results of rescored persons, OKS-NMS'd per image (in order of first appearance) with
    their padded crop areas, as the official evaluate() does; rows that are not finite (skipped images) drop."""
    by_image: dict[int, list[int]] = {}
    for i, image_id in enumerate(image_ids):
        by_image.setdefault(int(image_id), []).append(i)
    kwargs = {} if sigmas is None else {"sigmas": sigmas}
    # Whole-array work first: per image, only the NMS of images with several persons is left (per-image numpy
    # calls cost coco-real train x58, 8,062 persons of 2,610 images, 0.193-0.229 s on 2 CPU cores; this
    # 0.105-0.111 s: benchmarks/nms_time.py).
    finite = np.isfinite(keypoints).all(axis=tuple(range(1, keypoints.ndim)))
    areas = padded_areas(boxes, aspect_ratio)
    flat = keypoints.reshape(len(keypoints), -1).tolist()
    person_scores = np.asarray(scores, dtype=np.float64).tolist()
    results = []
    for image_id, members in by_image.items():
        kept = [i for i in members if finite[i]]
        if len(kept) > 1:
            kept = np.asarray(kept)
            kept = kept[oks_nms(keypoints[kept], scores[kept], areas[kept], NMS_THRESHOLD, **kwargs)].tolist()
        results.extend({"image_id": image_id, "category_id": 1, "keypoints": flat[i], "score": person_scores[i]}
                       for i in kept)
    return results


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


def evaluate_predictor(
    predictor: Predictor,
    dataset: CocoKeypoints,
    records: Sequence[PersonRecord],
    batch_size: int,
    workers: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    skip_bad_images: bool = False,
) -> EvalOutcome:
    """Validation during training: predict every record with a Predictor built around the network being
    trained, and score it by the rules Model.evaluate follows."""
    estimates = predict_records(predictor, records, batch_size, workers, on_batch=on_batch,
                                skip_bad_images=skip_bad_images)
    scores = rescore(estimates.keypoints, np.array([r.score for r in records]), RESCORE_THRESHOLD)
    sigmas = predictor.schema.oks_sigmas  # the model's keypoint set's (COCO's for COCO-17)
    results = keypoint_results([r.image_id for r in records], estimates.keypoints, scores, estimates.boxes,
                               predictor.aspect_ratio, sigmas)
    return EvalOutcome(coco_stats(dataset, results, sigmas), results, estimates, list(records))
