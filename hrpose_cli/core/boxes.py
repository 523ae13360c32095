"""Person boxes: overlap and greedy non-maximum suppression, batched over images on any device."""

from __future__ import annotations

import torch


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes (..., N, 4) against (..., M, 4), both x1, y1, x2, y2 -> (..., N, M)."""
    top_left = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    bottom_right = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter).clamp(min=1e-9)


def batched_nms(boxes: torch.Tensor, valid: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS for every image of a batch at once: which of the boxes (B, K, 4) survive, as a (B, K) mask.

    Boxes must be sorted by score, best first, within each image; ``valid`` marks real candidates (the
    rest is padding). The same result as per-image greedy NMS: box k is kept unless a kept box before it
    overlaps it by more than ``iou_threshold``. One step per candidate rank, all images in parallel, no
    synchronisation with the host.
    """
    overlaps = box_iou(boxes, boxes) > iou_threshold  # (B, K, K)
    keep = valid.clone()
    later = torch.ones_like(overlaps[0]).triu(diagonal=1)  # (K, K): j after i
    suppress = overlaps & later
    for k in range(boxes.shape[1]):
        keep = keep & ~(suppress[:, k, :] & keep[:, k : k + 1])
    return keep & valid


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat([boxes[..., :2], boxes[..., 2:] - boxes[..., :2]], dim=-1)
