"""Start-up cost of a one-photo predict: `hrpose predict` wall time as a ratio to `python -c "import torch"`.

Both run as fresh subprocesses of this interpreter, alternating, so that load from other work on the machine
falls on both alike; the medians of --runs of each and their ratio are printed. torch's import is the floor
any command pays, so the ratio is what hrpose adds on top (model build, weights, imports, the network).

    python benchmarks/startup.py [--runs 3] [--image assets/astronaut.png]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hrpose_cli.resources import asset_path


def wall_time(command: list[str]) -> float:
    """Seconds one subprocess takes, start to exit; its output is discarded, a failure raises."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each command; the median is reported")
    parser.add_argument("--image", type=Path, default=asset_path("astronaut.png"))
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    import_torch = [sys.executable, "-c", "import torch"]
    with tempfile.TemporaryDirectory() as out:
        # `-m hrpose_cli` runs what the `hrpose` script runs (hrpose_cli.cli.app:main), with this interpreter.
        predict = [sys.executable, "-m", "hrpose_cli", "predict", str(args.image), "--device", "cpu", "--out", out]
        torch_s, predict_s = [], []
        for _ in range(args.runs):
            torch_s.append(wall_time(import_torch))
            predict_s.append(wall_time(predict))
    t, p = statistics.median(torch_s), statistics.median(predict_s)
    print(f'python -c "import torch": {t:.2f} s (median of {args.runs}: {", ".join(f"{s:.2f}" for s in torch_s)})')
    print(f"hrpose predict {args.image.name} --device cpu: {p:.2f} s (median of {args.runs}: "
          f"{', '.join(f'{s:.2f}' for s in predict_s)})")
    print(f"ratio: {p / t:.2f}x")


if __name__ == "__main__":
    main()
