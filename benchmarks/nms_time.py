"""Seconds of eval's rescored results and per-image OKS-NMS (model_eval.keypoint_results) on the CPU, for the
person layout of `bench_speed.py --sections eval`: coco-real train copied 58 times (8,062 persons, 2,610 images).

    python benchmarks/nms_time.py [DATA_DIR]      # ../shared/data by default; best of 5

Keypoints, boxes and scores are random (the time depends on how many persons share an image, not on where
their joints are).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from hrpose_cli.engine.model_eval import keypoint_results


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data")
    ann = data / "coco-real/annotations/person_keypoints_train.json"
    if not ann.is_file():
        sys.exit(f"error: {ann}: not found (DATA_DIR is laid out as ../shared/data)")
    persons = [a["image_id"] for a in json.loads(ann.read_text())["annotations"] if not a["iscrowd"] and a["num_keypoints"]]
    ids = np.concatenate([np.asarray(persons) + 10**7 * copy for copy in range(58)])
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 400, (len(ids), 17, 3)).astype(np.float32)
    keypoints[..., 2] = rng.uniform(0, 1, (len(ids), 17))
    boxes = np.c_[rng.uniform(0, 200, (len(ids), 2)), rng.uniform(20, 200, (len(ids), 2))]
    scores = rng.uniform(0, 1, len(ids))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        kept = keypoint_results(ids, keypoints, scores, boxes, 0.75)
        times.append(time.perf_counter() - start)
    print(f"{len(ids)} persons of {len(set(ids.tolist()))} images: {min(times):.3f} s (best of 5), {len(kept)} kept")


if __name__ == "__main__":
    main()
