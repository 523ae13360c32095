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


def replicated_set(ann: Path, images: Path, copies: int, out: Path) -> tuple[Path, Path]:
    """The set ``copies`` times over, each copy a distinct file (a symlink) with its own ids, so every image
    is read and decoded again, as in a large dataset (the files stay in the page cache, as a warm disk's do)."""
    data = json.loads(ann.read_text())
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    step = max(i["id"] for i in data["images"]) + 1
    ann_step = max(a["id"] for a in data["annotations"]) + 1
    result = {**data, "images": [], "annotations": []}
    for k in range(copies):
        for image in data["images"]:
            name = f"{k}_{image['file_name']}"
            link = folder / name
            if not link.exists():
                link.symlink_to((images / image["file_name"]).resolve())
            result["images"].append({**image, "id": image["id"] + k * step, "file_name": name})
        for a in data["annotations"]:
            result["annotations"].append({**a, "id": a["id"] + k * ann_step, "image_id": a["image_id"] + k * step})
    path = out / "ann.json"
    path.write_text(json.dumps(result))
    return path, folder


def end_to_end(data: Path, config: HRNetConfig, batch: int, copies: int) -> dict[str, float]:
    """`hrpose eval` itself (a subprocess, GT boxes, flip test) on each replicated set: persons/s of the
    pipeline (first batch request to last result; decoding workers start while the model loads) and of
    the whole command's wall time (Python start, model load and compile included)."""
    import subprocess
    import tempfile

    from hrpose_cli.model.checkpoints import save_checkpoint

    work = Path(tempfile.mkdtemp())
    weights = work / "w32_random.pt"
    save_checkpoint(weights, PoseHRNet(config), config)
    sets = {
        "coco-real train": ("coco-real/annotations/person_keypoints_train.json", "coco-real/images"),
        "fashion17": ("fashion17/annotations/person_keypoints.json", "fashion17/images"),
    }
    rows: dict[str, float] = {}
    for name, (ann, images) in sets.items():
        rep_ann, rep_images = replicated_set(data / ann, data / images, copies, work / name.split()[0])
        for compile_ in (False, True):
            out = work / f"{name.split()[0]}_{compile_}.json"
            cmd = ["hrpose", "eval", "--ann", str(rep_ann), "--images", str(rep_images), "--weights", str(weights),
                   "--batch", str(batch), "--json", str(out), "--out", str(work / "eval")]
            if compile_:
                cmd.append("--compile")
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            result = json.loads(out.read_text())
            key = f"hrpose eval, flip, {name} x{copies}" + (" --compile" if compile_ else "")
            rows[key] = result["persons_per_s"]
            rows[key + " (whole command)"] = result["persons_evaluated"] / wall
            print(f"{key}: {result['persons_per_s']:.0f} persons/s in the pipeline, data wait "
                  f"{result['data_wait_fraction']:.0%}; {result['persons_evaluated']} persons, whole command "
                  f"{wall:.1f} s = {rows[key + ' (whole command)']:.0f} persons/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--arch", default="w32")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=8, help="copies of each set (distinct files, decoded each)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only-end-to-end", action="store_true", help="skip the network-alone timings")
    args = parser.parse_args()
    config = HRNetConfig.from_arch(args.arch)
    rows: dict[str, float] = {}

    for name, amp, compile_, batch in [] if args.only_end_to_end else [
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

    e2e = end_to_end(args.data, config, args.batch, args.repeat)
    rows.update(e2e)

    print("\n| measurement | ours | official recipe |\n| --- | --- | --- |")
    for key, value in rows.items():
        print(f"| {key} | {value:.0f} | {OFFICIAL.get(key, '')} |")
    if args.out:
        args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
