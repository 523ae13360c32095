"""The default model's choice rule (benchmarks/default_model/README.md, from call 11): a model's mean agreement
with MoveNet on the two set-aside sets, GT boxes, flip test, original images, on the CPU.

    python benchmarks/choice_rule.py MODEL.pt [MODEL2.pt ...] [--splits runs/splits]

`--splits` is the folder of `split_setaside.py` and `teacher_labels.py` (train_default_model.sh makes it):
people_setaside_teacher.json with people_setaside_images/, setaside_teacher.json with setaside_images/. A model
passes when its mean is at least 0.005 above the shipped model's (0.7897 when the rule was written).
"""

import argparse
import sys
from pathlib import Path

import hrpose_cli
from hrpose_cli.errors import HrposeError

SETS = (("people/", "people_setaside_teacher.json", "people_setaside_images"),
        ("labelled", "setaside_teacher.json", "setaside_images"))
SHIPPED_MEAN, MARGIN = 0.7897, 0.005


def agreements(weights: Path, splits: Path) -> list[float]:
    model = hrpose_cli.load(weights, device="cpu", detector=False)
    return [model.evaluate(splits / ann, splits / images).stats["AP"] for _, ann, images in SETS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--splits", type=Path, default=Path("runs/splits"))
    args = parser.parse_args()
    print(f"model | {' | '.join(name for name, _, _ in SETS)} | mean | passes (>= {SHIPPED_MEAN + MARGIN:.4f})")
    try:
        for weights in args.models:
            values = agreements(weights, args.splits)
            mean = sum(values) / len(values)
            cells = " | ".join(f"{v:.4f}" for v in values)
            print(f"{weights} | {cells} | {mean:.4f} | {'yes' if mean >= SHIPPED_MEAN + MARGIN else 'no'}", flush=True)
    except HrposeError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
