"""Widen a trained HRNet checkpoint to any larger width, computing the same function (model/widen.py):

    python benchmarks/widen_model.py assets/hrpose_default.pt w32_init.pt --width 32

then `hrpose train --weights w32_init.pt ...` trains the wider student from where the narrow one ended.
"""

import argparse
import sys
from pathlib import Path

from hrpose_cli.errors import HrposeError
from hrpose_cli.model.checkpoints import load_model, read_checkpoint, save_checkpoint
from hrpose_cli.model.widen import widen_state_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--width", type=int, required=True, help="the new width (w18, w24, w32 from a w16)")
    parser.add_argument("--noise", type=float, default=0.1, help="split noise, relative to each weight's spread [0.1]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        model, config = load_model(args.source)
        state_dict, wide = widen_state_dict(model.state_dict(), config, args.width, noise=args.noise, seed=args.seed)
        checkpoint = read_checkpoint(args.source)
        extra = {"keypoints": checkpoint["keypoints"]} if checkpoint.get("keypoints") is not None else {}
        meta = {**checkpoint.get("meta", {}), "widened_from": f"{args.source.name} (w{config.width})"}
        save_checkpoint(args.target, state_dict, wide, meta=meta, **extra)
    except HrposeError as e:
        sys.exit(f"error: {e}")
    print(f"{args.target}: w{config.width} widened to w{wide.width}")


if __name__ == "__main__":
    main()
