"""Choose the detector's predict threshold on a labelled set (coco-real *train*, so that val stays unbiased).

    python benchmarks/detector_thresholds.py ANN.json IMAGES_DIR

Runs the shipped detector at score 0.01 on every image, then for each threshold counts detections matched
one-to-one (greedy, best score first) to the set's non-crowd person boxes at IoU >= 0.5, and prints
precision, recall and F1; the best F1 is the threshold for drawings (engine/thresholds.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hrpose_cli.core.tracking import box_iou  # noqa: E402
from hrpose_cli.data.coco import read_json  # noqa: E402
from hrpose_cli.data.images import PackedImages, read_image  # noqa: E402
from hrpose_cli.engine.detector import PersonDetector  # noqa: E402
from hrpose_cli.engine.runtime import Runtime  # noqa: E402
from hrpose_cli.errors import HrposeError  # noqa: E402

THRESHOLDS = [round(t, 2) for t in np.arange(0.05, 0.71, 0.05)]


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/detector_thresholds.py ANN.json IMAGES_DIR")
    try:
        data = read_json(Path(sys.argv[1]))
        detector = PersonDetector(Runtime.create("auto"), threshold=0.01)
        truth: dict[int, list] = {}
        for ann in data["annotations"]:
            if not ann.get("iscrowd") and ann.get("category_id", 1) == 1:
                truth.setdefault(ann["image_id"], []).append(ann["bbox"])
        found = []
        for image in data["images"]:
            pixels = read_image(Path(sys.argv[2]) / image["file_name"])
            found.append((image["id"], detector.detect(PackedImages.pack([pixels]).to(detector.runtime.device))[0]))
    except (HrposeError, KeyError, TypeError) as err:
        sys.exit(f"error: {err}")
    people = sum(len(v) for v in truth.values())
    print(f"{len(found)} images, {people} labelled person boxes")
    print("threshold  detections  precision  recall  F1")
    best = (0.0, None)
    for threshold in THRESHOLDS:
        hits = kept = 0
        for image_id, dets in found:
            boxes = dets.boxes[dets.scores >= threshold]
            kept += len(boxes)
            gt = np.array(truth.get(image_id, []), dtype=np.float64).reshape(-1, 4)
            iou = box_iou(boxes, gt)
            used: set[int] = set()
            for row in iou:  # detections are sorted best first
                free = [(v, j) for j, v in enumerate(row) if j not in used and v >= 0.5]
                if free:
                    used.add(max(free)[1])
            hits += len(used)
        precision, recall = hits / max(kept, 1), hits / max(people, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        best = max(best, (f1, threshold))
        print(f"{threshold:9.2f}  {kept:10d}  {precision:9.3f}  {recall:6.3f}  {f1:.3f}")
    print(f"best F1 {best[0]:.3f} at threshold {best[1]}")


if __name__ == "__main__":
    main()
