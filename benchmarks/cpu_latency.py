"""Latency of one prediction on the CPU, torch and onnxruntime side by side: one person, one image already
decoded, the whole Predictor.run (crop, network with or without the flip test, decoding, map back), median
of 20 after 3 warm-up runs, the two runtimes interleaved so that both see the same machine load.

    python benchmarks/cpu_latency.py [IMAGE] [--weights W] [--no-flip] [--runtime both|torch|onnx]
        [--precisions fp32,bf16]

The ONNX model is exported from the same weights into a temporary folder first (hrpose export's code);
onnxruntime gets as many threads as torch uses. Without the [onnx] extra, use --runtime torch. Each of
--precisions is a torch row of its own (hrpose predict --precision), interleaved with the others.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hrpose_cli.data.images import PackedImages, read_image
from hrpose_cli.engine.inference import load_predictor
from hrpose_cli.engine.runtime import PRECISIONS
from hrpose_cli.resources import asset_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image", nargs="?", type=Path, default=asset_path("astronaut.png"))
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--runtime", choices=("both", "torch", "onnx"), default="both")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--precisions", default="fp32", help="torch rows, of fp32 and bf16 [fp32]")
    args = parser.parse_args()
    explicit = [p for p in PRECISIONS if p != "auto"]  # each row names what it measures
    for precision in args.precisions.split(","):
        if precision not in explicit:
            sys.exit(f"error: --precisions {args.precisions!r}: expected {' or '.join(explicit)}, or both comma-separated")
    flip = not args.no_flip
    predictors = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.runtime in ("both", "torch"):
            for precision in args.precisions.split(","):
                predictors[f"torch {precision}"] = load_predictor(args.weights, "cpu", flip=flip, precision=precision)
        if args.runtime in ("both", "onnx"):
            from hrpose_cli.engine.onnx_pose import export_pose

            onnx_path = export_pose(args.weights, Path(tmp) / "model.onnx", flip=flip).path
            predictors["onnxruntime"] = load_predictor(onnx_path, "cpu", flip=flip)
        image = read_image(args.image)
        packed = PackedImages.pack([image])
        box = np.array([[0.0, 0.0, image.shape[1], image.shape[0]]])
        times: dict[str, list[float]] = {name: [] for name in predictors}
        for i in range(args.runs + 3):
            for name, predictor in predictors.items():
                start = time.perf_counter()
                predictor.run(packed, np.array([0]), box)
                if i >= 3:
                    times[name].append(time.perf_counter() - start)
    config = next(iter(predictors.values())).config
    print(f"{config.arch} {config.input_size[0]}x{config.input_size[1]}, flip {'on' if flip else 'off'}, "
          f"{torch.get_num_threads()} threads, median of {args.runs}, load average {os.getloadavg()[0]:.2f} at the end:")
    for name, values in times.items():
        print(f"  {name:14s} {np.median(values) * 1000:6.1f} ms per person (min {np.min(values) * 1000:.1f})")


if __name__ == "__main__":
    main()
