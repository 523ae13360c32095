"""Evaluate a model on a COCO keypoint set: persons -> predictor -> rescoring and OKS-NMS -> COCO stats.

Shared by `hrpose eval` and by validation during training, so the two report the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hrpose_cli.core.oks import oks_nms, rescore
from hrpose_cli.data.coco import CocoKeypoints, PersonRecord
from hrpose_cli.data.images import batch_loader
from hrpose_cli.engine.evaluator import coco_stats
from hrpose_cli.engine.predictor import Estimates, PersonBox, Predictor, estimate, group_by_image
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


def predict_records(
    predictor: Predictor,
    records: Sequence[PersonRecord],
    batch_size: int,
    workers: int | None = None,
    keep_heatmaps: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> Estimates:
    """Keypoints for each record's box, decoded images fed by worker processes."""
    persons = [PersonBox(i, tuple(r.bbox), r.score) for i, r in enumerate(records)]
    batches = group_by_image([r.image_path for r in records], persons, batch_size)
    loader = batch_loader(batches, workers, pin_memory=predictor.runtime.device.type == "cuda")
    return estimate(predictor, loader, lambda people, _shape: people, len(records), keep_heatmaps, on_batch=on_batch)


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
        members = np.array(members)
        kwargs = {} if sigmas is None else {"sigmas": sigmas}
        keep = oks_nms(keypoints[members], scores[members], areas[members], NMS_THRESHOLD, **kwargs)
        for i in members[np.asarray(keep, dtype=int)]:
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": 1,
                    "keypoints": [round(float(v), 3) for v in keypoints[i].reshape(-1)],
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
) -> EvalOutcome:
    """Predict every record, build the results file and score it with pycocotools."""
    estimates = predict_records(predictor, records, batch_size, workers, on_batch=on_batch)
    results = coco_results(records, estimates)
    stats = coco_stats(dataset, results)
    return EvalOutcome(stats, results, estimates, list(records))
