"""Inference speed on one GPU: the network alone, and `hrpose eval` end to end with flip test.

Run on the device (see benchmarks/README.md):
    python benchmarks/bench_infer.py --data DATA_DIR [--arch w32] [--out results.json]

DATA_DIR holds coco-real/ and fashion17/ as in ../shared/data. The weights are random (speed does not
depend on them); the AP printed for them is meaningless and not reported.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.engine.model_eval import coco_results, person_records, predict_records
from hrpose_cli.engine.predictor import Predictor
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet

OFFICIAL = {  # HRNET_SPEC.md, one H100, synthetic input, network only, W32 256x192
    "network fp32 b128 (official)": 2550,
    "network bf16+channels_last b256": 4928,
    "network bf16+channels_last b256 + compile": 9397,
}


def time_network(model: torch.nn.Module, runtime: Runtime, batch: int, steps: int = 30) -> float:
    """Images/s of the network alone on random input (median of timed windows, after warm-up)."""
    x = runtime.input(torch.randn(batch, 3, 256, 192, device=runtime.device))
    with torch.inference_mode():
        for _ in range(5):
            with runtime.autocast():
                model(x)
        runtime.synchronize()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            with runtime.autocast():
                model(x)
            runtime.synchronize()
            times.append(time.perf_counter() - start)
    times.sort()
    return batch / times[len(times) // 2]


def stage_times(config: HRNetConfig, batch: int) -> None:
    """Device time per batch of each stage (crops, network with flip, decode), on 64 synthetic images."""
    import numpy as np

    from hrpose_cli.data.images import PackedImages

    runtime = Runtime.create("cuda", compile=True)
    predictor = Predictor(PoseHRNet(config), config, runtime, flip=True, pad_batches_to=batch)
    rng = np.random.default_rng(0)
    packed = PackedImages.pack([rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(64)])
    images = packed.to(runtime.device)
    index = rng.integers(0, 64, batch)
    boxes = np.column_stack([rng.uniform(0, 300, batch), rng.uniform(0, 200, batch),
                             rng.uniform(50, 300, batch), rng.uniform(80, 280, batch)])
    crop = predictor.crops(images, index, boxes)
    heatmaps = predictor.heatmaps(crop.inputs)
    stages = {
        "upload 64 images (pinned)": lambda: packed.pin_memory().to(runtime.device),
        "crops (warp + normalise)": lambda: predictor.crops(images, index, boxes),
        "network, flip (2x batch)": lambda: predictor.heatmaps(crop.inputs),
        "decode + inverse affine": lambda: predictor.decode(heatmaps, crop.crop_to_image),
    }
    for name, fn in stages.items():
        for _ in range(3):
            fn()
        runtime.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            fn()
        runtime.synchronize()
        print(f"stage {name}: {(time.perf_counter() - start) / 10 * 1000:.2f} ms per batch of {batch}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--arch", default="w32")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=8, help="pass over each set this many times (amortises start-up)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    config = HRNetConfig.from_arch(args.arch)
    rows: dict[str, float] = {}

    for name, amp, compile_, batch in [
        ("network fp32 b128 (official)", False, False, 128),
        ("network bf16+channels_last b256", True, False, 256),
        ("network bf16+channels_last b256 + compile", True, True, 256),
    ]:
        runtime = Runtime.create("cuda", compile=compile_, amp=amp)
        if not amp:
            runtime.channels_last = False
        model = runtime.prepare(PoseHRNet(config).eval())
        rows[name] = time_network(model, runtime, batch)
        print(f"{name}: {rows[name]:.0f} images/s (official recipe figure {OFFICIAL[name]})", flush=True)

    sets = {
        "coco-real val+train": [("coco-real/annotations/person_keypoints_val.json", "coco-real/images"),
                                ("coco-real/annotations/person_keypoints_train.json", "coco-real/images")],
        "fashion17": [("fashion17/annotations/person_keypoints.json", "fashion17/images")],
    }
    stage_times(config, args.batch)
    for compile_ in (False, True):
        runtime = Runtime.create("cuda", compile=compile_)
        predictor = Predictor(PoseHRNet(config), config, runtime, flip=True, pad_batches_to=args.batch)
        for set_name, pairs in sets.items():
            records = []
            for ann, images in pairs:
                records += person_records(CocoKeypoints.load(args.data / ann), args.data / images)
            predict_records(predictor, records[: args.batch * 2], args.batch)  # warm-up (and compile)
            persons = images_decoded = 0
            wait = 0.0
            start = time.perf_counter()
            for _ in range(args.repeat):  # whole passes, as `hrpose eval` runs: every image decoded each time
                estimates = predict_records(predictor, records, args.batch)
                coco_results(records, estimates)
                persons += estimates.timing.persons
                images_decoded += estimates.timing.images
                wait += estimates.timing.data_wait_s
            elapsed = time.perf_counter() - start
            key = f"eval end to end, flip, {set_name}" + (" + compile" if compile_ else "")
            rows[key] = persons / elapsed
            print(
                f"{key}: {rows[key]:.0f} persons/s ({persons} persons, {images_decoded} images decoded in "
                f"{args.repeat} passes, data wait {wait / elapsed:.0%}, peak GPU memory {runtime.peak_memory_gib():.1f} GiB)",
                flush=True,
            )

    print("\n| measurement | ours | official recipe |\n| --- | --- | --- |")
    for key, value in rows.items():
        print(f"| {key} | {value:.0f} | {OFFICIAL.get(key, '')} |")
    if args.out:
        args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
