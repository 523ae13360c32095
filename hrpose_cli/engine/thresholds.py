"""The person detector's score thresholds and their check, kept free of torch so that option help can name them.

Drawings want no phantom people; evaluation wants every plausible box, as COCO's protocol does
(ultralytics: 0.25 to predict, 0.001 to validate). These are fixed values, not yet chosen on coco-real
train as issue 14 asks (and never on val). 0.35 sits between ultralytics' 0.25 and the 0.6-0.85 of the
walkers in the vtest.avi frames looked at; faint background blobs there score 0.30-0.40, so a few still
pass. 0.05 keeps the low-scored candidates that COCO's AP rewards.
"""

from __future__ import annotations

from hrpose_cli.errors import HrposeError

PREDICT_THRESHOLD = 0.35
EVAL_THRESHOLD = 0.05


def check_det_threshold(value: float | None, default: float) -> float:
    """A detector score threshold, strictly between 0 and 1 (``default`` when not given)."""
    if value is None:
        return default
    if not 0.0 < value < 1.0:
        raise HrposeError(f"--det-threshold {value}: must lie strictly between 0 and 1")
    return value
