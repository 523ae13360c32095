"""The shipped person detector as an ONNX file, its boxes decoded in the graph, and its onnxruntime runner.

The graph is NanoDet's own module, traced: letterboxed BGR images ``input`` (N, 3, 416, 416) in [0, 255]
-> ``scores`` (N, C) person scores and ``boxes`` (N, C, 4) x1, y1, x2, y2 in input pixels for every one of
the C grid cells (the GFL distance bins already turned into boxes). Letterboxing, the score threshold and
NMS stay in PersonDetector, the same for both runtimes (and are in the file's metadata for other users).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from hrpose_cli import __version__
from hrpose_cli.engine.onnx_pose import open_session, require, run_session, write_onnx
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.engine.thresholds import PREDICT_THRESHOLD
from hrpose_cli.errors import HrposeError
from hrpose_cli.model.nanodet import INPUT_SIZE, MEAN_BGR, STD_BGR, STRIDES, load_nanodet

FORMAT = "hrpose-detector"
OUTPUTS = ("scores", "boxes")


@dataclass
class ExportedDetector:
    path: Path
    size_mib: float
    max_abs_boxes: float  # ONNX vs torch on random images, input pixels, checked after writing
    max_abs_scores: float


def export_detector(out: Path) -> ExportedDetector:
    """Write the shipped detector to ``out`` atomically (any batch), then check it once against torch."""
    from hrpose_cli.engine.detector import MAX_CANDIDATES, NMS_IOU

    require("onnxruntime")
    net = load_nanodet()
    meta = {
        "format": FORMAT,
        "hrpose_version": __version__,
        "model_card": "NanoDet-g (RangiLyu/nanodet, Apache-2.0), rebuilt in torch from its TensorFlow.js graph; person class only",
        "input_size": f"{INPUT_SIZE}x{INPUT_SIZE}",
        "input": "BGR pixels in [0, 255]; each image letterboxed: its aspect kept, scaled to fit, centred, black around it",
        "normalisation": json.dumps({"mean_bgr": MEAN_BGR, "std_bgr": STD_BGR, "in_graph": True}),
        "strides": json.dumps(list(STRIDES)),
        "outputs": "scores (N,C) person score per cell; boxes (N,C,4) x1,y1,x2,y2 in input pixels (decoded in the graph)",
        "score_threshold": str(PREDICT_THRESHOLD),
        "nms_iou": str(NMS_IOU),
        "max_candidates": str(MAX_CANDIDATES),
    }
    size = write_onnx(net, torch.zeros((1, 3, INPUT_SIZE, INPUT_SIZE)), OUTPUTS, True, meta, out)
    images = torch.rand((2, 3, INPUT_SIZE, INPUT_SIZE), generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        scores, boxes = net(images)
    got_scores, got_boxes = OnnxDetector(Path(out), Runtime.create("cpu"))(images)
    return ExportedDetector(Path(out), size / 2**20, float((got_boxes - boxes).abs().max()),
                            float((got_scores - scores).abs().max()))


class OnnxDetector:
    """An exported detector in an onnxruntime session, called as PersonDetector calls NanoDet."""

    def __init__(self, path: Path, runtime: Runtime):
        self.session, meta = open_session(path, runtime, FORMAT)
        if meta.get("input_size") != f"{INPUT_SIZE}x{INPUT_SIZE}":
            raise HrposeError(f"{path}: a detector for {meta.get('input_size')} inputs; hrpose letterboxes to {INPUT_SIZE}x{INPUT_SIZE}")

    def __call__(self, bgr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return run_session(self.session, bgr, OUTPUTS)  # type: ignore[return-value]
