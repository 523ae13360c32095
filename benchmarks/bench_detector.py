"""The person detector alone: images/s on the GPU (bf16, batch 64) or ms per image on the CPU.

    python benchmarks/bench_detector.py IMAGES_DIR [--device cuda|cpu] [--batch 64] [--repeats 3] [--onnx DET.onnx]

``--onnx`` times the detector exported by `hrpose export --detector` in onnxruntime instead of torch.

Real photos are decoded once and packed; the timed part is what `predict` does per batch on the device:
letterbox, NanoDet forward, decoding, NMS and the boxes back on the host.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hrpose_cli.data.images import PackedImages, read_image  # noqa: E402
from hrpose_cli.engine.detector import PersonDetector  # noqa: E402
from hrpose_cli.engine.runtime import Runtime  # noqa: E402
from hrpose_cli.errors import HrposeError  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--onnx", type=Path)
    args = parser.parse_args()
    try:
        paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not paths:
            raise HrposeError(f"{args.images}: no images")
        images = [read_image(p) for p in (paths * (args.batch // len(paths) + 1))[: args.batch]]
        runtime = Runtime.create(args.device)
        detector = PersonDetector(runtime, threshold=0.35, onnx=args.onnx)
    except (HrposeError, OSError) as err:
        sys.exit(f"error: {err}")
    packed = PackedImages.pack(images).to(runtime.device)
    detector.detect(packed)  # warm-up: cuDNN autotuning, first allocations
    runtime.synchronize()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        found = detector.detect(packed)
        runtime.synchronize()
        times.append(time.perf_counter() - start)
    best = min(times)
    people = sum(len(f.scores) for f in found)
    print(f"{runtime.device}, {'onnxruntime' if args.onnx else 'torch'}: batch {len(images)}: {len(images) / best:.0f} images/s, {1000 * best / len(images):.1f} ms "
          f"per image (best of {args.repeats}), {people} people found")


if __name__ == "__main__":
    main()
