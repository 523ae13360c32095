"""Derive a 13-keypoint body set from COCO-17 annotations: no eyes or ears, joints renamed (l_/r_ prefixes,
'head' for the nose), in another order, with its own skeleton; the same images and boxes.

A real non-COCO keypoint set with more joints than the mouse, for testing that nothing assumes COCO's names,
order or count:

    python benchmarks/derive_body13.py /work/shared/data/coco-real/annotations/person_keypoints_train.json \
        runs/body13/train.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# (new name, COCO-17 index), in the new order.
JOINTS = (
    ("head", 0),
    ("l_shoulder", 5), ("l_elbow", 7), ("l_wrist", 9),
    ("r_shoulder", 6), ("r_elbow", 8), ("r_wrist", 10),
    ("l_hip", 11), ("l_knee", 13), ("l_ankle", 15),
    ("r_hip", 12), ("r_knee", 14), ("r_ankle", 16),
)
NAMES = [name for name, _ in JOINTS]
# 1-based, as COCO files write skeletons.
LIMBS = (
    ("head", "l_shoulder"), ("head", "r_shoulder"), ("l_shoulder", "r_shoulder"),
    ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
    ("l_shoulder", "l_hip"), ("r_shoulder", "r_hip"), ("l_hip", "r_hip"),
    ("l_hip", "l_knee"), ("l_knee", "l_ankle"), ("r_hip", "r_knee"), ("r_knee", "r_ankle"),
)
SKELETON = [[NAMES.index(a) + 1, NAMES.index(b) + 1] for a, b in LIMBS]


def derive(data: dict) -> dict:
    """The COCO-17 file ``data`` as the 13-keypoint set (persons of category 1 only, every image kept)."""
    annotations = []
    for ann in data["annotations"]:
        if ann.get("category_id") != 1:
            continue
        old = ann["keypoints"]
        new = [v for _, j in JOINTS for v in old[3 * j : 3 * j + 3]]
        annotations.append({**ann, "keypoints": new, "num_keypoints": sum(1 for v in new[2::3] if v > 0)})
    return {
        "info": {"description": "COCO-17 person keypoints re-expressed as a 13-keypoint body set "
                               "(benchmarks/derive_body13.py): no eyes or ears, renamed, own skeleton"},
        "licenses": data.get("licenses", []),
        "images": data["images"],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": NAMES, "skeleton": SKELETON}],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a COCO-17 person keypoints file")
    parser.add_argument("out", type=Path, help="the 13-keypoint file to write")
    args = parser.parse_args()
    derived = derive(json.loads(args.source.read_text()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(derived))
    tmp.replace(args.out)
    print(f"{args.out}: {len(derived['images'])} images, {len(derived['annotations'])} persons, {len(NAMES)} keypoints")


if __name__ == "__main__":
    main()
