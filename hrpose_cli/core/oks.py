"""Object keypoint similarity: the OKS matrix exactly as pycocotools, the official OKS-NMS and rescoring.

Pure numpy, vectorised over persons and joints. Keypoints are (N, J, 3) arrays of x, y and v (GT: COCO
visibility) or score (predictions).
"""

from __future__ import annotations

import numpy as np

from hrpose_cli.core.schema import COCO17


def _variances(sigmas: np.ndarray | None) -> np.ndarray:
    return (np.asarray(COCO17.sigmas if sigmas is None else sigmas, dtype=np.float64) * 2) ** 2


def _similarity(pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray, unlabelled: np.ndarray, areas: np.ndarray,
                variances: np.ndarray) -> np.ndarray:
    """exp(-e) per joint for (prediction, GT) pairs given as broadcastable arrays (..., J, 3) and (..., 4), with
    pycocotools' e = d^2 / vars / (area + eps) / 2, where d is the distance to the GT's joint or, for a GT
    without labelled joints (``unlabelled``), to its box enlarged by the box size."""
    xd, yd = pred[..., 0], pred[..., 1]
    dx, dy = xd - gt[..., 0], yd - gt[..., 1]
    x, y, w, h = (boxes[..., i, None] for i in range(4))
    x0, x1, y0, y1 = x - w, x + w * 2, y - h, y + h * 2
    box_dx = np.maximum(0, x0 - xd) + np.maximum(0, xd - x1)
    box_dy = np.maximum(0, y0 - yd) + np.maximum(0, yd - y1)
    dx = np.where(unlabelled[..., None], box_dx, dx)
    dy = np.where(unlabelled[..., None], box_dy, dy)
    return np.exp(-((dx**2 + dy**2) / variances / (areas[..., None] + np.spacing(1)) / 2))


def _counted(gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each GT's joints that enter its mean, (G, J): the labelled ones, or all of them where none is; and which
    GTs have none labelled, (G,)."""
    labelled = gt[..., 2] > 0
    unlabelled = ~labelled.any(axis=1)
    return labelled | unlabelled[:, None], unlabelled


def oks_matrix(gt_keypoints: np.ndarray, gt_areas: np.ndarray, gt_boxes: np.ndarray, pred_keypoints: np.ndarray,
               sigmas: np.ndarray | None = None) -> np.ndarray:
    """OKS of every prediction with every GT, (P, G), as COCOeval.computeOks computes each pair, to the bit.

    Unlike computeOks this neither sorts the predictions by score nor keeps only the top maxDets: row i is
    prediction i. Each GT's mean runs over its counted joints alone, as a contiguous row of each prediction,
    which numpy sums in the same order as computeOks's one pair at a time (a sum with zeros in place of the
    others can differ in the last bit, and an OKS on a threshold would then count differently).
    """
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    pred = np.asarray(pred_keypoints, dtype=np.float64)
    if len(gt) == 0 or len(pred) == 0:
        return np.zeros((len(pred), len(gt)))
    counted, unlabelled = _counted(gt)
    boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    similarity = _similarity(pred[:, None], gt[None], boxes[None], unlabelled[None],
                             np.asarray(gt_areas, dtype=np.float64)[None], _variances(sigmas))
    oks = np.empty((len(pred), len(gt)))
    for g in range(len(gt)):
        terms = np.ascontiguousarray(similarity[:, g][:, counted[g]])  # rows in memory order, as 1-D sums read them
        oks[:, g] = terms.sum(axis=-1) / terms.shape[1]
    return oks


def oks_blocks(gt_keypoints: np.ndarray, gt_areas: np.ndarray, gt_boxes: np.ndarray, gt_counts: np.ndarray,
               pred_keypoints: np.ndarray, pred_counts: np.ndarray,
               sigmas: np.ndarray | None = None) -> list[np.ndarray]:
    """oks_matrix of many images in one pass, for COCOeval over a whole set: image i owns the next gt_counts[i]
    GTs and pred_counts[i] predictions of the stacked arrays, and block i is its (P_i, G_i) matrix, to the bit.
    The pairs of all images are laid out one per row, and the rows of GTs with the same number of counted joints
    are averaged together, each as a contiguous row (as oks_matrix does one GT at a time)."""
    variances = _variances(sigmas)
    joints = len(variances)
    gt = np.asarray(gt_keypoints, dtype=np.float64).reshape(-1, joints, 3)
    pred = np.asarray(pred_keypoints, dtype=np.float64).reshape(-1, joints, 3)
    g_counts, p_counts = np.asarray(gt_counts, dtype=np.int64), np.asarray(pred_counts, dtype=np.int64)
    sizes = g_counts * p_counts
    image = np.repeat(np.arange(len(sizes)), sizes)  # each pair's image; pairs run prediction-major
    within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    per_row = np.maximum(g_counts, 1)[image]
    pair_pred = (np.cumsum(p_counts) - p_counts)[image] + within // per_row
    pair_gt = (np.cumsum(g_counts) - g_counts)[image] + within % per_row

    counted, unlabelled = _counted(gt)
    boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    areas = np.asarray(gt_areas, dtype=np.float64).reshape(-1)
    similarity = _similarity(pred[pair_pred], gt[pair_gt], boxes[pair_gt], unlabelled[pair_gt], areas[pair_gt],
                             variances)
    count = counted.sum(axis=1)[pair_gt]
    oks = np.empty(len(pair_gt))
    for c in np.unique(count):
        rows = np.nonzero(count == c)[0]
        columns = np.argsort(~counted[pair_gt[rows]], axis=1, kind="stable")[:, :c]  # its counted joints, in order
        terms = np.take_along_axis(similarity[rows], columns, axis=1)  # C-contiguous rows, as 1-D sums read them
        oks[rows] = terms.sum(axis=-1) / c
    blocks = np.split(oks, np.cumsum(sizes)[:-1])
    return [block.reshape(int(p), int(g)) for block, p, g in zip(blocks, p_counts, g_counts)]


def mean_keypoint_similarity(gt_keypoints: np.ndarray, gt_areas: np.ndarray, pred_keypoints: np.ndarray,
                             sigmas: np.ndarray | None = None) -> np.ndarray:
    """Per joint, the mean exp(-e) over matched (GT i, prediction i) pairs where the GT labels that joint.

    Shows which joints pull OKS down; NaN for a joint no pair labels.
    """
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    pred = np.asarray(pred_keypoints, dtype=np.float64)
    joints = gt.shape[1] if gt.ndim == 3 else len(_variances(sigmas))
    if len(gt) == 0:
        return np.full(joints, np.nan)
    d2 = (pred[..., 0] - gt[..., 0]) ** 2 + (pred[..., 1] - gt[..., 1]) ** 2
    e = d2 / _variances(sigmas) / (np.asarray(gt_areas, dtype=np.float64)[:, None] + np.spacing(1)) / 2
    labelled = gt[..., 2] > 0
    count = labelled.sum(axis=0)
    total = np.where(labelled, np.exp(-e), 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _oks_iou(one: np.ndarray, others: np.ndarray, area: float, other_areas: np.ndarray,
             variances: np.ndarray) -> np.ndarray:
    """The official oks_iou (in_vis_thre None): mean over all joints, area the mean of the two persons' areas."""
    d2 = (others[..., 0] - one[:, 0]) ** 2 + (others[..., 1] - one[:, 1]) ** 2
    e = d2 / variances / ((area + other_areas[:, None]) / 2 + np.spacing(1)) / 2
    return np.exp(-e).sum(axis=1) / e.shape[1]


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float = 0.9,
            sigmas: np.ndarray | None = None) -> np.ndarray:
    """Indices of the persons kept by the official greedy OKS-NMS, highest score first.

    As lib/nms/nms.py: order = scores.argsort()[::-1] (same sort, so ties break the same way); keep the first,
    drop every remaining person whose OKS with it exceeds threshold; repeat. areas are the persons' (padded box)
    areas.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    variances = _variances(sigmas)
    order = np.asarray(scores).argsort()[::-1]
    keep = []
    while order.size > 0:
        first, rest = order[0], order[1:]
        keep.append(first)
        overlap = _oks_iou(kpts[first], kpts[rest], areas[first], areas[rest], variances)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)


def rescore(keypoints: np.ndarray, box_scores: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Person scores as the official evaluate(): box score x mean of the joint scores above threshold.

    A person with no joint above threshold scores 0 (the official kpt_score stays 0 when valid_num is 0).
    Joint scores are summed in joint order, as the official loop does, so the sums match it bit for bit.
    """
    joint_scores = np.asarray(keypoints, dtype=np.float64)[..., 2]
    above = joint_scores > threshold
    total = np.zeros(len(joint_scores))
    for j in range(joint_scores.shape[1]):
        total = total + np.where(above[:, j], joint_scores[:, j], 0.0)
    count = above.sum(axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return mean * np.asarray(box_scores, dtype=np.float64)
