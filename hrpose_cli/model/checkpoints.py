"""Loading and saving network weights: hrpose's own checkpoints, the official HRNet files, the embedded default.

hrpose checkpoint = {"format": "hrpose", "version": 1, "config": HRNetConfig.to_dict(), "state_dict": {...},
plus optional extra keys such as "train_state", "meta" or "keypoints" (the keypoint set, core.schema's
KeypointSchema.to_dict; files without it are COCO-17)}. Everything in it is tensors, numbers, strings, lists
and dicts, so it loads with torch.load(weights_only=True) and never runs pickled code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hrpose_cli.core.schema import KeypointSchema, for_joints
from hrpose_cli.resources import asset_path
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import atomic_write
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet

FORMAT = "hrpose"
VERSION = 1
RESERVED_KEYS = ("format", "version", "config", "state_dict")
DEFAULT_INPUT_SIZE = (256, 192)
DEFAULT_WEIGHTS_NAME = "hrpose_default.pt"
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile wrappers
_INPUT_SIZE_IN_NAME = re.compile(r"(\d+)x(\d+)")


def default_weights_path() -> Path | None:
    """The embedded default model (assets/hrpose_default.pt, shipped as package data), or None if absent."""
    path = asset_path(DEFAULT_WEIGHTS_NAME)
    return path if path.is_file() else None


# The notes of the hrpose checkpoints read so far, by file version: commands print the default model's note
# after load_model has read the file, and reading all of it again for the note cost a predict about 0.3 s.
_notes_read: dict[tuple[str, int, int], str | None] = {}


# The keypoint sets of the checkpoints loaded so far, by file version (load_model reads them with the weights).
_schemas_read: dict[tuple[str, int, int], KeypointSchema] = {}


def _file_version(path: Path) -> tuple[str, int, int]:
    """Resolved path, mtime and size: a file rewritten in place is a new version."""
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def _note_of(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("meta")
    return meta.get("note") if isinstance(meta, Mapping) else None


def default_model_note() -> str | None:
    """The shipped default model's own caveat (its card's 'note'), for commands to print when they use it."""
    return checkpoint_note(None)


def checkpoint_note(path: str | Path | None) -> str | None:
    """A checkpoint's model card line ('note'; None when it has none), the default model's when ``path`` is None."""
    path = default_weights_path() if path is None else Path(path)
    if path is None:
        return None
    version = _file_version(path)
    if version not in _notes_read:
        _notes_read[version] = _note_of(read_checkpoint(path))
    return _notes_read[version]


def checkpoint_schema(path: str | Path | None) -> KeypointSchema:
    """The keypoint set a model file was trained for (the default model's when ``path`` is None): its
    "keypoints" entry, else COCO-17 (official files, the default model and files from before the entry)."""
    path = default_weights_path() if path is None else Path(path)
    if path is None:
        raise HrposeError("no --weights given and no default model is installed")
    version = _file_version(path)
    if version not in _schemas_read:
        load_model(path)
    return _schemas_read[version]


def _schema_of(path: Path, obj: Mapping[str, Any], num_joints: int) -> KeypointSchema:
    entry = obj.get("keypoints") if obj.get("format") == FORMAT else None
    if entry is None:
        return for_joints(num_joints)
    if not isinstance(entry, Mapping):
        raise HrposeError(f"{path}: its 'keypoints' entry is not a keypoint set")
    schema = KeypointSchema.from_dict(entry, str(path))
    if schema.num_joints != num_joints:
        raise HrposeError(f"{path}: its keypoint set names {schema.num_joints} keypoints, its network predicts {num_joints}")
    return schema


def _strip_wrappers(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop 'module.' / '_orig_mod.' prefixes when every key carries them (a wrapped model's state dict)."""
    sd = dict(state_dict)
    changed = True
    while changed and sd:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                changed = True
    return sd


def save_checkpoint(
    path: str | Path,
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    config: HRNetConfig,
    *,
    half: bool = False,
    **extra: Any,
) -> Path:
    """Write an hrpose checkpoint atomically (temp file in the same folder, then os.replace).

    A crash mid-write never leaves a truncated file under ``path``. ``half=True`` stores floating tensors as
    float16 (half the size, for a shipped model); load_model turns them back into float32.
    """
    clash = set(extra) & set(RESERVED_KEYS)
    if clash:
        raise ValueError(f"extra checkpoint keys clash with reserved ones: {', '.join(sorted(clash))}")
    if isinstance(model_or_state_dict, nn.Module):
        state_dict = model_or_state_dict.state_dict()
    else:
        state_dict = model_or_state_dict
    tensors: dict[str, torch.Tensor] = {}
    for key, value in _strip_wrappers(state_dict).items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.half()
        tensors[key] = value
    payload = {"format": FORMAT, "version": VERSION, "config": config.to_dict(), "state_dict": tensors, **extra}

    return atomic_write(Path(path), lambda f: torch.save(payload, f))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load (weights only) with every failure turned into a one-line HrposeError naming the file."""
    path = Path(path)
    if not path.exists():
        raise HrposeError(f"{path}: no such file")
    if path.is_dir():
        raise HrposeError(f"{path}: is a directory, not a checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, pickled classes, permissions...
        first_line = (str(e).strip().splitlines() or [""])[0].split(". ")[0]  # torch's messages run on for lines
        raise HrposeError(f"{path}: cannot read checkpoint ({type(e).__name__}: {first_line})") from e
    if not isinstance(obj, Mapping):
        raise HrposeError(f"{path}: not a checkpoint: it holds a {type(obj).__name__}, not a dict")
    return dict(obj)


def _find_state_dict(path: Path, obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise HrposeError(f"{path}: not an HRNet checkpoint: no state dict of tensors found")
    return _strip_wrappers(obj)


def _max_index(keys: list[str], pattern: str) -> int:
    found = [int(m.group(1)) for k in keys if (m := re.match(pattern, k))]
    return max(found) + 1 if found else 0


def infer_config(state_dict: Mapping[str, torch.Tensor], input_size: tuple[int, int]) -> HRNetConfig | None:
    """Read width, stage depths, blocks per branch and joints off an official-layout state dict."""
    keys = list(state_dict)
    if "transition1.0.0.weight" in state_dict:
        width = state_dict["transition1.0.0.weight"].shape[0]
    elif "stage2.0.branches.0.0.conv1.weight" in state_dict:
        width = state_dict["stage2.0.branches.0.0.conv1.weight"].shape[0]
    else:
        return None
    modules = tuple(_max_index(keys, rf"stage{s}\.(\d+)\.") for s in (2, 3, 4))
    blocks = _max_index(keys, r"stage2\.0\.branches\.0\.(\d+)\.")
    final = state_dict.get("final_layer.weight")
    if final is None or min(modules) == 0 or blocks == 0:
        return None
    return HRNetConfig(
        width=int(width), stage_modules=modules, num_blocks=blocks, num_joints=int(final.shape[0]), input_size=input_size
    )


def _input_size_from_name(path: Path) -> tuple[int, int] | None:
    m = _INPUT_SIZE_IN_NAME.search(path.name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _load_strict(path: Path, model: PoseHRNet, state_dict: dict[str, torch.Tensor], arch: str) -> None:
    """load_state_dict(strict=True), with torch's multi-line report replaced by one line naming the keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} (file {list(state_dict[k].shape)}, model {list(v.shape)})"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or wrong:

        def few(items: list[str], n: int = 4) -> str:
            more = f" ... ({len(items)} in all)" if len(items) > n else ""
            return ", ".join(items[:n]) + more

        parts = []
        if missing:
            parts.append(f"missing keys {few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {few(unexpected)}")
        if wrong:
            parts.append(f"wrong shapes {few(wrong, 2)}")
        raise HrposeError(f"{path}: not an HRNet checkpoint for {arch}: {'; '.join(parts)}")
    # assign=True: the module was built on the meta device, so the file's tensors become its parameters.
    model.load_state_dict(state_dict, strict=True, assign=True)


def load_model(
    path: str | Path | None,
    input_size: tuple[int, int] | None = None,
    arch: str | None = None,
) -> tuple[PoseHRNet, HRNetConfig]:
    """Build the network a checkpoint describes and load its weights (strict), in eval mode on the CPU.

    ``path=None`` loads the embedded default. hrpose checkpoints carry their config; for official files it is
    inferred from the tensor shapes and key names, and the input size comes from ``input_size``, else a
    "HxW" in the file name (pose_hrnet_w32_384x288.pth), else 256x192. ``arch`` declares what the file must be
    (its mismatch is an error rather than a silent rebuild). Stored float16 tensors come back as float32.
    """
    if path is None:
        path = default_weights_path()
        if path is None:
            raise HrposeError("no --weights given and no default model is installed")
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        raise HrposeError(f"{path}: an ONNX model runs in predict and eval; this needs a torch checkpoint")
    obj = read_checkpoint(path)

    if obj.get("format") == FORMAT:
        _notes_read[_file_version(path)] = _note_of(obj)
        version = obj.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise HrposeError(f"{path}: hrpose checkpoint version {version!r} is newer than this hrpose reads")
        try:
            stored = HRNetConfig.from_dict(obj["config"])
        except (KeyError, TypeError, ValueError, HrposeError) as e:
            raise HrposeError(f"{path}: hrpose checkpoint with a bad config ({e})") from e
        size = tuple(input_size) if input_size else stored.input_size
        if arch:
            config = HRNetConfig.from_arch(arch, input_size=size, num_joints=stored.num_joints)
        else:
            config = HRNetConfig.from_dict({**stored.to_dict(), "input_size": list(size)})
        state_dict = _find_state_dict(path, obj)
    else:
        state_dict = _find_state_dict(path, obj)
        size = tuple(input_size) if input_size else (_input_size_from_name(path) or DEFAULT_INPUT_SIZE)
        inferred = infer_config(state_dict, size)
        if arch:
            joints = inferred.num_joints if inferred else 17
            config = HRNetConfig.from_arch(arch, input_size=size, num_joints=joints)
        elif inferred is None:
            raise HrposeError(
                f"{path}: not an HRNet checkpoint: no transition1/stage2/final_layer weights "
                f"(first keys: {', '.join(list(state_dict)[:3])})"
            )
        else:
            config = inferred

    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    with torch.device("meta"):  # no memory and no random init for weights that are overwritten at once
        model = PoseHRNet(config, random_init=False)
    _load_strict(path, model, state_dict, arch or config.arch)
    _schemas_read[_file_version(path)] = _schema_of(path, obj, config.num_joints)
    return model.eval(), config
