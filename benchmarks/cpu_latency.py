"""Latency of one prediction on the CPU: one person, one image already decoded, flip test on (median of 20).

    python benchmarks/cpu_latency.py [IMAGE] [--weights W]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from hrpose_cli.data.images import PackedImages, read_image
from hrpose_cli.engine.inference import load_predictor
from hrpose_cli.resources import asset_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image", nargs="?", type=Path, default=asset_path("astronaut.png"))
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--no-flip", action="store_true")
    args = parser.parse_args()
    predictor = load_predictor(args.weights, "cpu", flip=not args.no_flip)
    image = read_image(args.image)
    packed = PackedImages.pack([image])
    box = np.array([[0.0, 0.0, image.shape[1], image.shape[0]]])
    times = []
    for i in range(23):
        start = time.perf_counter()
        predictor.run(packed, np.array([0]), box)
        if i >= 3:
            times.append(time.perf_counter() - start)
    print(f"{predictor.config.arch} {predictor.config.input_size}, flip {'off' if args.no_flip else 'on'}, "
          f"{torch.get_num_threads()} threads: median {np.median(times) * 1000:.0f} ms per person")


if __name__ == "__main__":
    main()
