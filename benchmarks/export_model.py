"""Export a training checkpoint as a small inference model: fp16 weights and the config, no optimizer state.

    python benchmarks/export_model.py RUN_DIR/best.pt assets/hrpose_default.pt [--raw-weights] [--note TEXT]

A run trained with --ema saves the weight average as its model; --raw-weights exports the trained weights
(kept in last.pt's training state) instead, to measure what the average gives. --note stores the one-line caveat that commands print when they
use the model as the default (the model card's short form).
"""

import argparse
import sys
from pathlib import Path

from hrpose_cli.errors import HrposeError
from hrpose_cli.model.checkpoints import load_model, read_checkpoint, save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--raw-weights", action="store_true")
    parser.add_argument("--note", help="caveat printed by commands that use this model as the default")
    args = parser.parse_args()
    source, target = args.source, args.target
    model, config = load_model(source)
    checkpoint = read_checkpoint(source)
    meta = checkpoint.get("meta", {})
    if args.raw_weights:
        raw = (checkpoint.get("train_state") or {}).get("raw_weights")
        if raw is None:
            raise HrposeError(f"{source}: no raw weights in it (only a last.pt of a run trained with --ema has them)")
        model.load_state_dict(raw)
        meta = {**meta, "weights": "raw (not the --ema average)"}
    if args.note:
        meta = {**meta, "note": args.note}
    try:
        # The keypoint set travels with the weights (a model of another set than COCO-17 keeps its names).
        extra = {"keypoints": checkpoint["keypoints"]} if checkpoint.get("keypoints") is not None else {}
        save_checkpoint(target, model, config, half=True, meta={**meta, "exported_from": source.name}, **extra)
    except OSError as err:
        raise HrposeError(f"{target}: cannot write ({err.strerror or err}: {err.filename})") from None
    print(f"{target}: {target.stat().st_size / 2**20:.1f} MiB ({config.arch}, input {config.input_size})")


if __name__ == "__main__":
    try:
        main()
    except HrposeError as err:
        sys.exit(f"error: {err}")
