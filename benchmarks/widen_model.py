"""Widen a trained HRNet checkpoint to any larger width, or deepen it to more blocks per branch, computing
the same function (model/widen.py):

    python benchmarks/widen_model.py assets/hrpose_default.pt w32_init.pt --width 32
    python benchmarks/widen_model.py assets/hrpose_default.pt w16_d5_init.pt --blocks 5

then `hrpose train --weights w32_init.pt ...` trains the larger student from where the smaller one ended.
"""

import argparse
import sys
from pathlib import Path

from hrpose_cli.errors import HrposeError
from hrpose_cli.model.checkpoints import load_model, read_checkpoint, save_checkpoint
from hrpose_cli.model.widen import deepen_state_dict, widen_state_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--width", type=int, help="the new width (w18, w24, w32 from a w16)")
    parser.add_argument("--blocks", type=int, help="the new number of BasicBlocks per branch (official: 4)")
    parser.add_argument("--noise", type=float, default=0.1, help="split noise, relative to each weight's spread [0.1]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.width is None and args.blocks is None:
        parser.error("give --width, --blocks or both")
    try:
        model, config = load_model(args.source)
        state_dict, grown = model.state_dict(), config
        if args.width is not None:
            state_dict, grown = widen_state_dict(state_dict, grown, args.width, noise=args.noise, seed=args.seed)
        if args.blocks is not None:
            state_dict, grown = deepen_state_dict(state_dict, grown, args.blocks, seed=args.seed)
        checkpoint = read_checkpoint(args.source)
        extra = {"keypoints": checkpoint["keypoints"]} if checkpoint.get("keypoints") is not None else {}
        meta = {**checkpoint.get("meta", {}), "widened_from": f"{args.source.name} (w{config.width}, {config.num_blocks} blocks)"}
        save_checkpoint(args.target, state_dict, grown, meta=meta, **extra)
    except HrposeError as e:
        sys.exit(f"error: {e}")
    print(f"{args.target}: w{config.width} with {config.num_blocks} blocks per branch grown to w{grown.width} "
          f"with {grown.num_blocks}")


if __name__ == "__main__":
    main()
