"""Seconds of the evaluator's COCO numbers (evaluator.coco_stats) against pycocotools' plain COCOeval, in one run,
on the person layout of `bench_speed.py --sections eval`: coco-real train copied 58 times (8,062 scored
persons in 6,380 images), each person predicted as its annotation plus 5 px of noise.

    python benchmarks/coco_eval_time.py [DATA_DIR]      # ../shared/data by default; best of 3 each

Both must give the same ten numbers (the script stops otherwise): the evaluator's COCOeval differs only in
computing OKS vectorised (evaluator.KeypointEval) and in copying the results one level deep.
"""

import contextlib
import copy
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools.cocoeval import COCOeval

from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.engine.evaluator import STAT_NAMES, coco_stats

COPIES = 58


def pycocotools_stats(dataset: CocoKeypoints, results: list[dict]) -> dict[str, float]:
    """What coco_stats did before: a deep copy and COCOeval as it ships."""
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(dataset.coco, dataset.coco.loadRes(copy.deepcopy(results)), iouType="keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return dict(zip(STAT_NAMES, map(float, evaluation.stats)))


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data")
    ann = data / "coco-real/annotations/person_keypoints_train.json"
    if not ann.is_file():
        sys.exit(f"error: {ann}: not found (DATA_DIR is laid out as ../shared/data)")
    source = json.loads(ann.read_text())
    images = [dict(im, id=im["id"] + 10**7 * c) for c in range(COPIES) for im in source["images"]]
    annotations = [dict(a, id=a["id"] + 10**8 * c, image_id=a["image_id"] + 10**7 * c)
                   for c in range(COPIES) for a in source["annotations"]]
    copied = Path(tempfile.mkdtemp()) / "annotations.json"
    copied.write_text(json.dumps(dict(source, images=images, annotations=annotations)))
    dataset = CocoKeypoints.load(copied)
    rng = np.random.default_rng(0)
    results = []
    for a in annotations:
        if a["iscrowd"] or not a["num_keypoints"]:
            continue
        k = np.array(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        k[:, :2] += rng.normal(0, 5, (len(k), 2))
        k[:, 2] = rng.uniform(0, 1, len(k))
        results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k.ravel().tolist(),
                        "score": float(rng.uniform())})
    seconds, stats = {}, {}
    for name, run in (("evaluator.coco_stats", coco_stats), ("pycocotools COCOeval", pycocotools_stats)):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            stats[name] = run(dataset, results)
            times.append(time.perf_counter() - start)
        seconds[name] = min(times)
    if len({json.dumps(s) for s in stats.values()}) != 1:
        sys.exit(f"error: the two gave different numbers: {stats}")
    print(f"{len(results)} persons of {len(images)} images, AP {stats['evaluator.coco_stats']['AP']:.4f} from both: "
          + ", ".join(f"{name} {s:.2f} s" for name, s in seconds.items()) + " (best of 3)")


if __name__ == "__main__":
    main()
