"""The person detector's score thresholds and their check, kept free of torch so that option help can name them.

Drawings want no phantom people; evaluation wants every plausible box, as COCO's protocol does
(ultralytics: 0.25 to predict, 0.001 to validate). The predict threshold was chosen on coco-real *train*,
never on val: ``python benchmarks/detector_thresholds.py .../person_keypoints_train.json .../images`` gives
the best F1 of detections against the 253 labelled person boxes at IoU 0.5, 0.604, at 0.40 (0.588 at 0.35,
0.540 at 0.50). The eval threshold is a fixed 0.05, not chosen: low-scored candidates cost COCO's AP little.
"""

from __future__ import annotations

from hrpose_cli.errors import HrposeError

PREDICT_THRESHOLD = 0.40
EVAL_THRESHOLD = 0.05


def check_det_threshold(value: float | None, default: float) -> float:
    """A detector score threshold, strictly between 0 and 1 (``default`` when not given)."""
    if value is None:
        return default
    if not 0.0 < value < 1.0:
        raise HrposeError(f"--det-threshold {value}: must lie strictly between 0 and 1")
    return value
