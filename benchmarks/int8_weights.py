"""Carry a checkpoint through the device's 64 MiB limits as int8: a w32 in fp16 is 55 MiB, in int8 28 MiB.

    python benchmarks/int8_weights.py pack RUN/last_model.pt w32.int8.pt    # here, before a device call
    python benchmarks/int8_weights.py unpack w32.int8.pt w32.pt             # on the device, then --weights w32.pt

Every convolution weight is stored as int8 with one fp32 scale per output channel (symmetric: the channel's
largest magnitude maps to 127); BatchNorm vectors, biases and counters stay as they are (fp16 in an exported
model). `unpack` writes an ordinary hrpose checkpoint (fp32) with the config, keypoint set and meta kept.
"""

import argparse
import sys
from pathlib import Path

import torch

from hrpose_cli.errors import HrposeError
from hrpose_cli.files import atomic_write
from hrpose_cli.model.checkpoints import read_checkpoint, save_checkpoint
from hrpose_cli.model.hrnet import HRNetConfig

FORMAT = "hrpose-int8"


def pack(source: Path, target: Path) -> None:
    checkpoint = read_checkpoint(source)
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, dict) or "config" not in checkpoint:
        raise HrposeError(f"{source}: not an hrpose checkpoint (no state_dict and config)")
    quantized, scales, kept = {}, {}, {}
    for key, value in state_dict.items():
        if value.is_floating_point() and value.dim() == 4:
            flat = value.float().reshape(value.shape[0], -1)
            scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            quantized[key] = torch.round(flat / scale[:, None]).to(torch.int8).reshape(value.shape)
            scales[key] = scale
        else:
            kept[key] = value
    payload = {key: value for key, value in checkpoint.items() if key != "state_dict"}
    payload.update(format=FORMAT, int8=quantized, scales=scales, kept=kept)
    atomic_write(target, lambda f: torch.save(payload, f))


def unpack(source: Path, target: Path) -> None:
    packed = read_checkpoint(source)  # one-line errors for a missing or unreadable file
    if packed.get("format") != FORMAT:
        raise HrposeError(f"{source}: not a file written by `int8_weights.py pack`")
    state_dict = {key: value.float() for key, value in packed["kept"].items()}
    for key, q in packed["int8"].items():
        state_dict[key] = q.float() * packed["scales"][key].reshape(-1, *([1] * (q.dim() - 1)))
    extra = {k: v for k, v in packed.items() if k not in ("format", "version", "config", "int8", "scales", "kept")}
    save_checkpoint(target, state_dict, HRNetConfig.from_dict(packed["config"]), **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    try:
        (pack if args.action == "pack" else unpack)(args.source, args.target)
    except HrposeError as e:
        sys.exit(f"error: {e}")
    print(f"{args.target}: {args.target.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
