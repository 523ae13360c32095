"""The pose network as an ONNX file: export (flip test and argmax decoding inside the graph, hrpose's
metadata in the file) and running it through onnxruntime as the Predictor's network.

The exported graph is Predictor's own PoseGraph, traced: normalised crops ``input`` (N, 3, H, W) float32 ->
``heatmaps`` (N, J, H/4, W/4), ``keypoints`` (N, J, 2) in heatmap pixels (argmax with the quarter-pixel
step) and ``scores`` (N, J). Crops and the map back to image pixels stay outside, in the Predictor (or, for
users without hrpose, in the README's snippet): they depend on the image and the box, not on the weights.
onnx and onnxruntime are the optional extra ``[onnx]``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hrpose_cli import __version__
from hrpose_cli.core.geometry import IMAGENET_MEAN, IMAGENET_STD
from hrpose_cli.core.schema import KeypointSchema, for_joints
from hrpose_cli.engine.predictor import PoseGraph
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import atomic_write
from hrpose_cli.model.checkpoints import checkpoint_note, checkpoint_schema, load_model
from hrpose_cli.model.hrnet import HRNetConfig, fold_batchnorm

FORMAT = "hrpose-pose"
OPSET = 17
INPUT = "input"
OUTPUTS = ("heatmaps", "keypoints", "scores")
EXTRA_HINT = 'pip install "hrpose[onnx]" (from a checkout: pip install -e ".[onnx]")'


def require(module: str):
    """Import onnx or onnxruntime, or a one-line error naming the optional extra that provides them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise HrposeError(f"ONNX models need {module}, part of the optional extra [onnx]: {EXTRA_HINT}") from None


def cuda_provider_available() -> bool:
    """Whether the installed onnxruntime can run on CUDA (onnxruntime-gpu); the PyPI default cannot."""
    return "CUDAExecutionProvider" in require("onnxruntime").get_available_providers()


def is_onnx(path: Path | str | None) -> bool:
    """Whether --weights names an ONNX model (by its suffix) rather than a torch checkpoint."""
    return path is not None and Path(path).suffix.lower() == ".onnx"


class _Half(nn.Module):
    """An fp16 network behind fp32 inputs and outputs, so that the exported file's interface stays fp32."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()


def metadata(config: HRNetConfig, flip: bool, batch: int | None, half: bool, card: str, default: bool,
             schema: KeypointSchema) -> dict[str, str]:
    """What a user of the file needs besides the graph, as ONNX metadata_props (strings; lists as JSON);
    "keypoints" holds the whole keypoint set, as a checkpoint's entry."""
    return {
        "format": FORMAT,
        "hrpose_version": __version__,
        "model_card": card,
        "default_model": "1" if default else "0",  # commands then print its caveat, as for the torch file
        "config": json.dumps(config.to_dict()),
        "input_size": f"{config.input_size[0]}x{config.input_size[1]}",
        "heatmap_size": f"{config.heatmap_size[0]}x{config.heatmap_size[1]}",
        "keypoint_names": json.dumps(list(schema.names)),
        "flip_pairs": json.dumps([list(p) for p in schema.flip_pairs]),
        "sigmas": json.dumps(list(schema.sigmas)),
        "skeleton": json.dumps([list(p) for p in schema.skeleton]),
        "keypoints": json.dumps(schema.to_dict()),
        "flip_test": "1" if flip else "0",
        "batch": "dynamic" if batch is None else str(batch),
        "precision": "fp16" if half else "fp32",
        "pixel_mean_rgb": json.dumps([round(m * 255, 4) for m in IMAGENET_MEAN]),
        "pixel_std_rgb": json.dumps([round(s * 255, 4) for s in IMAGENET_STD]),
        "box_padding": "1.25",
        "outputs": "heatmaps (N,J,h,w); keypoints (N,J,2) x,y in heatmap pixels (x stride = crop pixels); scores (N,J)",
    }


def write_onnx(module: nn.Module, example: torch.Tensor, outputs: tuple[str, ...], dynamic_batch: bool,
               meta: dict[str, str], out: Path) -> int:
    """Trace ``module`` (TorchScript exporter: no onnxscript needed) with ``meta`` as metadata_props, check
    the graph and write it to ``out`` atomically; returns its size in bytes."""
    onnx = require("onnx")
    buffer = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in (INPUT, *outputs)} if dynamic_batch else None
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(module, (example,), buffer, input_names=[INPUT], output_names=list(outputs),
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    atomic_write(out, lambda f: f.write(data))
    return len(data)


def open_session(path: Path, runtime: Runtime, expected_format: str):
    """An onnxruntime session on the runtime's device and its metadata, or one-line errors naming the file."""
    ort = require("onnxruntime")
    if not path.is_file():
        raise HrposeError(f"{path}: no such file")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # its warnings are not the user's business; errors become ours below
    if runtime.device.type == "cpu":
        options.intra_op_num_threads = torch.get_num_threads()  # the cores torch would use, no more
        # no spinning after a call: the spinning threads would take the cores from torch's crops and decoding
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list = ["CPUExecutionProvider"]
    elif cuda_provider_available():
        providers = [("CUDAExecutionProvider", {"device_id": runtime.device.index or 0}), "CPUExecutionProvider"]
    else:
        raise HrposeError(f"{path}: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu), "
                          "or pass --device cpu")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # not protobuf, truncated, unknown operators...
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise HrposeError(f"{path}: cannot read the ONNX model ({first})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("format") != expected_format:
        found = f"an {meta['format']} model" if meta.get("format") else "no hrpose metadata"
        raise HrposeError(f"{path}: not an {expected_format} model ({found}: make it with hrpose export)")
    return session, meta


@dataclass
class Exported:
    path: Path
    config: HRNetConfig
    size_mib: float
    max_abs_heatmaps: float  # ONNX vs torch (fp32) on one random crop batch, checked after writing


def export_pose(weights: Path | None, out: Path, flip: bool = True, batch: int | None = None, half: bool = False,
                input_size: tuple[int, int] | None = None) -> Exported:
    """Write the PoseGraph of a checkpoint (the default model when None) to ``out`` atomically, then run
    the written file once through onnxruntime against torch as a check."""
    require("onnxruntime")
    model, config = load_model(weights, input_size=input_size)
    schema = checkpoint_schema(weights)
    model = fold_batchnorm(model, inplace=True)  # as the CPU Predictor runs it
    perm = torch.from_numpy(schema.flip_permutation())
    reference = PoseGraph(model, perm, flip).eval()
    graph = PoseGraph(_Half(fold_batchnorm(model)) if half else model, perm, flip).eval()
    h, w = config.input_size
    card = checkpoint_note(weights) or f"{config.arch} {h}x{w} from {Path(weights).name if weights else 'the default model'}"
    meta = metadata(config, flip, batch, half, card, weights is None, schema)
    size = write_onnx(graph, torch.zeros((batch or 2, 3, h, w)), OUTPUTS, batch is None, meta, out)

    crops = torch.randn((batch or 3, 3, h, w), generator=torch.Generator().manual_seed(0))
    runner = OnnxPose(Path(out), Runtime.create("cpu"))
    with torch.no_grad():
        expected = reference(crops)[0]
    got = runner(crops)[0]
    return Exported(Path(out), config, size / 2**20, float((got - expected).abs().max()))


class OnnxPose:
    """An exported pose model in an onnxruntime session: Predictor's network (a PoseRunner).

    Inputs come as torch tensors on the runtime's device and the outputs go back there, so the crops before
    and the mapping to image pixels after are the Predictor's own. A file exported for a fixed batch runs
    in chunks of that batch, the last one padded.
    """

    def __init__(self, path: Path, runtime: Runtime, input_size: tuple[int, int] | None = None):
        self.session, meta = open_session(path, runtime, FORMAT)
        self.config = _config_of(path, meta)
        _check_graph(path, self.session, self.config)
        self.schema = _schema_of(path, meta, self.config.num_joints)
        if input_size is not None and tuple(input_size) != self.config.input_size:
            h, w = self.config.input_size
            raise HrposeError(f"{path}: exported for {h}x{w} crops, not {input_size[0]}x{input_size[1]} "
                              "(export again with --input-size, or leave it out)")
        self.flip = meta.get("flip_test") == "1"
        self.batch = None if meta.get("batch", "dynamic") == "dynamic" else int(meta["batch"])
        self.default_note = meta.get("model_card") if meta.get("default_model") == "1" else None

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return run_session(self.session, inputs, OUTPUTS, self.batch)  # type: ignore[return-value]


def run_session(session, inputs: torch.Tensor, outputs: tuple[str, ...], batch: int | None = None) -> tuple[torch.Tensor, ...]:
    """The session's outputs for a torch batch, back on its device; a fixed ``batch`` runs in chunks of
    that size, the last one padded with zeros."""
    x = inputs.detach().float().cpu().numpy()
    if batch is None:
        outs = session.run(list(outputs), {INPUT: x})
    else:
        chunks = []
        for start in range(0, len(x), batch):
            part = x[start : start + batch]
            padded = np.concatenate([part, np.zeros((batch - len(part), *x.shape[1:]), np.float32)])
            chunks.append([o[: len(part)] for o in session.run(list(outputs), {INPUT: padded})])
        outs = [np.concatenate(parts) for parts in zip(*chunks)]
    return tuple(torch.from_numpy(o).to(inputs.device) for o in outs)


def _config_of(path: Path, meta: dict[str, str]) -> HRNetConfig:
    try:
        return HRNetConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, TypeError, ValueError, HrposeError) as err:
        raise HrposeError(f"{path}: hrpose ONNX model with a bad config in its metadata ({err})") from None


def _schema_of(path: Path, meta: dict[str, str], num_joints: int) -> KeypointSchema:
    """The file's keypoint set ("keypoints"); files exported before it are COCO-17."""
    if "keypoints" not in meta:
        return for_joints(num_joints)
    try:
        data = json.loads(meta["keypoints"])
    except json.JSONDecodeError as err:
        raise HrposeError(f"{path}: hrpose ONNX model with bad keypoints in its metadata ({err})") from None
    schema = KeypointSchema.from_dict(data, str(path))
    if schema.num_joints != num_joints:
        raise HrposeError(f"{path}: its metadata names {schema.num_joints} keypoints, its config {num_joints}")
    return schema


def _check_graph(path: Path, session, config: HRNetConfig) -> None:
    """The graph's own shapes must be those its metadata names (an edited or mixed-up file is refused)."""
    inputs = session.get_inputs()
    names = [o.name for o in session.get_outputs()]
    if len(inputs) != 1 or inputs[0].name != INPUT or names[: len(OUTPUTS)] != list(OUTPUTS):
        raise HrposeError(f"{path}: expected one input '{INPUT}' and outputs {', '.join(OUTPUTS)}")
    shape = inputs[0].shape
    h, w = config.input_size
    if len(shape) != 4 or tuple(shape[1:]) != (3, h, w):
        raise HrposeError(f"{path}: its input is {_dims(shape)}, its metadata says 3x{h}x{w}")
    heatmaps = session.get_outputs()[0].shape
    if len(heatmaps) != 4 or heatmaps[1] != config.num_joints:
        raise HrposeError(f"{path}: its heatmaps are {_dims(heatmaps)}, its metadata says {config.num_joints} keypoints")


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)
