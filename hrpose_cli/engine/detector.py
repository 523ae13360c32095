"""Person boxes for whole images: letterbox, NanoDet, decoding and NMS, batched on the device.

Images arrive packed (data.images) and already on the device; each is letterboxed to the detector's square
input (its aspect kept, centred, black around it) by the same bilinear warp that cuts the pose crops, so a
batch of photos of any sizes is detected in one forward. Only the surviving boxes come back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hrpose_cli.core import geometry
from hrpose_cli.core.boxes import batched_nms, xyxy_to_xywh
from hrpose_cli.data.images import PackedImages
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.engine.thresholds import PREDICT_THRESHOLD, check_det_threshold
from hrpose_cli.model.nanodet import INPUT_SIZE, load_nanodet

NMS_IOU = 0.6  # NanoDet's own
MAX_CANDIDATES = 200  # best-scored cells per image that enter NMS
MAX_DETECTIONS = 100  # per image, as COCO's detection protocol


@dataclass
class Detections:
    """One image's people: boxes (K, 4) x, y, w, h in image pixels and their scores (K,), best first, and the
    best score of any candidate box, kept or not (below the threshold where nobody was found: how near it came)."""

    boxes: np.ndarray
    scores: np.ndarray
    best_candidate: float = 0.0


class PersonDetector:
    """NanoDet on a runtime with its test-time rules: letterbox, forward, decode, threshold, NMS, map back."""

    def __init__(self, runtime: Runtime, threshold: float = PREDICT_THRESHOLD, nms_iou: float = NMS_IOU,
                 onnx: Path | None = None):
        """``onnx``: a detector exported by `hrpose export --detector`, run by onnxruntime instead of torch."""
        self.runtime = runtime
        self.threshold = check_det_threshold(threshold, PREDICT_THRESHOLD)
        self.nms_iou = nms_iou
        if onnx is not None:
            from hrpose_cli.engine.onnx_detector import OnnxDetector

            self.net = OnnxDetector(onnx, runtime)
        else:
            self.net = runtime.prepare(load_nanodet())

    def letterbox(self, images: PackedImages) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """BGR inputs (B, 3, S, S) in [0, 255], and each image's scale and (x, y) padding in input pixels."""
        hw = images.shapes.cpu().numpy().astype(np.float64)
        scale = INPUT_SIZE / hw.max(axis=1)
        pad = (INPUT_SIZE - hw[:, ::-1] * scale[:, None]) / 2  # x, y
        # input pixel centre x' -> image pixel centre x: x = (x' + 0.5 - pad) / scale - 0.5
        m = np.zeros((len(hw), 2, 3))
        m[:, 0, 0] = m[:, 1, 1] = 1.0 / scale
        m[:, :, 2] = (0.5 - pad) / scale[:, None] - 0.5
        index = torch.arange(len(hw), device=images.pixels.device)
        crops = geometry.warp_crops(images.pixels, images.offsets, images.shapes, index,
                                    self.runtime.upload(m, torch.float32), (INPUT_SIZE, INPUT_SIZE))
        return crops.flip(1), scale, pad  # warp_crops gives RGB; NanoDet reads BGR

    @torch.inference_mode()
    def detect(self, images: PackedImages) -> list[Detections]:
        """Person boxes of every image of a batch already on the device."""
        inputs, scale, pad = self.letterbox(images)
        with self.runtime.autocast():
            scores, boxes = self.net(self.runtime.input(inputs))
        scores, boxes = scores.float(), boxes.float()
        k = min(MAX_CANDIDATES, scores.shape[1])
        top, order = scores.topk(k, dim=1)  # sorted, best first
        boxes = torch.gather(boxes, 1, order[..., None].expand(-1, -1, 4))
        keep = batched_nms(boxes, top >= self.threshold, self.nms_iou)
        boxes = xyxy_to_xywh(boxes)
        boxes_np, scores_np, keep_np = boxes.cpu().numpy(), top.cpu().numpy(), keep.cpu().numpy()
        found = []
        for i in range(len(boxes_np)):
            b = boxes_np[i][keep_np[i]][:MAX_DETECTIONS].astype(np.float64)
            s = scores_np[i][keep_np[i]][:MAX_DETECTIONS].astype(np.float64)
            b[:, :2] = (b[:, :2] - pad[i]) / scale[i]
            b[:, 2:] /= scale[i]
            h, w = (int(v) for v in images.shapes[i])
            b = _clip(b, w, h)
            ok = (b[:, 2] > 1) & (b[:, 3] > 1)
            found.append(Detections(b[ok], s[ok], float(scores_np[i, 0])))
        return found


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """x, y, w, h boxes clipped to the image."""
    x1 = boxes[:, 0].clip(0, width)
    y1 = boxes[:, 1].clip(0, height)
    x2 = (boxes[:, 0] + boxes[:, 2]).clip(0, width)
    y2 = (boxes[:, 1] + boxes[:, 3]).clip(0, height)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
