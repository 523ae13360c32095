"""Per-keypoint error labels after Ronchi & Perona (ICCV 2017), as matteorr/coco-analyze computes them.

Pure numpy; the definitions are those of ../shared/ERROR_ANALYSIS.md (sections 4, 4.1 and 7.1). A predicted
joint is compared with every labelled target of its image: the matched person's own joint (row 0), the same
joint of every other annotation, the matched person's left/right twin (row n) and the twins of the others. The
nearest target by keypoint similarity ks decides the label, not a fixed order of tests.
"""

from __future__ import annotations

import numpy as np

from hrpose_cli.core.oks import _oks_iou, _variances

LABELS: tuple[str, ...] = ("good", "jitter", "inversion", "swap", "miss")
GOOD, JITTER, INVERSION, SWAP, MISS = range(len(LABELS))
UNLABELLED = -1  # the GT does not label the joint: no label, never moved
NEAR_KS = 0.5  # ks below this: not near any GT joint (a miss)
HUMAN_KS = 0.85  # ks above this: within the human error margin (good)

# How far a corrected joint lands from the right GT joint. "stated": at the distance where ks equals the target
# similarity (0.85 for jitter, 0.5 for a miss, the similarity it had to the wrong target for swap/inversion), as
# the paper states. "coco-analyze": the code's distance, half of that (ks = t ** 0.25), which its published
# curves used.
CONVENTIONS: tuple[str, ...] = ("stated", "coco-analyze")
DEFAULT_CONVENTION = "stated"


def candidate_similarity(pred: np.ndarray, image_gts: np.ndarray, image_areas: np.ndarray, own: int,
                         sigmas: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """The (2n, J) ks of one prediction (J, >=2) with the 2n candidate targets of its image.

    Rows: the matched GT ``own``, then the other n-1 annotations in file order, then the flipped joints in the
    same order. Each row uses its own annotation's area, so a swap is scored at the other person's scale.
    Targets the annotation does not label are -1.
    """
    gts = np.asarray(image_gts, dtype=np.float64)
    areas = np.asarray(image_areas, dtype=np.float64)
    order = [own] + [k for k in range(len(gts)) if k != own]
    rows = np.concatenate([gts[order], gts[order][:, flip]])
    row_areas = np.concatenate([areas[order], areas[order]])
    d2 = (pred[None, :, 0] - rows[..., 0]) ** 2 + (pred[None, :, 1] - rows[..., 1]) ** 2
    ks = np.exp(-d2 / _variances(sigmas) / (row_areas[:, None] + np.spacing(1)) / 2)
    return np.where(rows[..., 2] > 0, ks, -1.0)


def label_keypoints(pred: np.ndarray, image_gts: np.ndarray, image_areas: np.ndarray, own: int,
                    sigmas: np.ndarray, flip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (J,) in LABELS codes (UNLABELLED where the matched GT lacks the joint) and the best ks (J,).

    Good: own joint nearest, ks > 0.85; jitter: own joint nearest, 0.5 <= ks < 0.85; inversion: the own
    left/right twin nearest, ks >= 0.5; swap: any joint of another person nearest, ks >= 0.5; miss: ks < 0.5.
    Ties go to the earlier row (own joint first), as np.argmax and coco-analyze do.
    """
    ks = candidate_similarity(pred, image_gts, image_areas, own, sigmas, flip)
    n = len(image_gts)
    best = ks.argmax(axis=0)
    ksmax = np.maximum(ks.max(axis=0), 0.0)
    labels = np.full(len(best), UNLABELLED)
    labels[(best == 0) & (ksmax > HUMAN_KS)] = GOOD
    labels[(best == 0) & (ksmax >= NEAR_KS) & (ksmax < HUMAN_KS)] = JITTER
    labels[(best == n) & (ksmax >= NEAR_KS)] = INVERSION
    labels[(best != 0) & (best != n) & (ksmax >= NEAR_KS)] = SWAP
    labels[ksmax < NEAR_KS] = MISS
    labels[np.asarray(image_gts)[own, :, 2] <= 0] = UNLABELLED
    return labels, ksmax


def correction_distance(ks: np.ndarray, area: float, sigmas: np.ndarray, convention: str = DEFAULT_CONVENTION
                        ) -> np.ndarray:
    """Pixel distance from the GT joint at which a corrected joint is put, per joint, for target similarity ks.

    "stated" inverts ks = exp(-d^2 / (2 A (2 sigma)^2)); "coco-analyze" uses sigma^2 where ks has (2 sigma)^2.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose one of {CONVENTIONS}")
    t = np.clip(np.asarray(ks, dtype=np.float64), np.spacing(1), 1 - np.spacing(1))
    scale = np.asarray(sigmas, dtype=np.float64) * (2 if convention == "stated" else 1)
    return np.sqrt(-2 * np.log(t) * area * scale**2)


def corrected_keypoints(pred: np.ndarray, labels: np.ndarray, ksmax: np.ndarray, gt: np.ndarray, area: float,
                        sigmas: np.ndarray, fix: set[int], convention: str = DEFAULT_CONVENTION) -> np.ndarray:
    """A copy of ``pred`` (J, 3) with the joints whose label is in ``fix`` moved next to the right GT joint.

    Jitter lands at ks 0.85, a miss at ks 0.5, a swap or inversion at the ks it had to the wrong target (all
    under the "stated" convention): the GT joint shifted along x by that distance, as coco-analyze does (ks
    depends only on the distance). Scores and the other joints are kept.
    """
    out = np.array(pred, dtype=np.float64, copy=True)
    target = np.where(labels == JITTER, HUMAN_KS, np.where(labels == MISS, NEAR_KS, ksmax))
    shift = correction_distance(target, area, sigmas, convention)
    move = np.isin(labels, sorted(fix)) & (labels != GOOD) & (labels != UNLABELLED)
    out[move, 0] = gt[move, 0] + shift[move]
    out[move, 1] = gt[move, 1]
    return out


def keypoint_box_areas(keypoints: np.ndarray) -> np.ndarray:
    """Area of the box around all J predicted points of each person, (D,): coco-analyze's soft-NMS scale."""
    points = np.asarray(keypoints, dtype=np.float64)[..., :2]
    extent = points.max(axis=1) - points.min(axis=1)
    return extent[:, 0] * extent[:, 1]


def soft_nms_scores(keypoints: np.ndarray, max_oks: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Optimal scores of one image's detections: their best OKS with a GT, decayed by Gaussian soft-NMS.

    Repeatedly the detection with the highest current score is fixed and every other remaining one is
    multiplied by exp(-oks^2 / 0.5), oks between the two over all joints (area the mean of their keypoint
    boxes), so duplicates of a well-placed detection do not all inherit its high score.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    scores = np.array(max_oks, dtype=np.float64, copy=True)
    areas = keypoint_box_areas(kpts)
    variances = _variances(sigmas)
    remaining = list(range(len(scores)))
    while remaining:
        top = max(remaining, key=lambda i: scores[i])
        remaining.remove(top)
        if not remaining:
            break
        rest = np.array(remaining)
        overlap = _oks_iou(kpts[top], kpts[rest], areas[top], areas[rest], variances)
        scores[rest] *= np.exp(-(overlap**2) / 0.5)
    return scores
