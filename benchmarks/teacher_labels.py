"""Label person boxes with the MoveNet teacher: a COCO keypoint file whose keypoints are MoveNet's answers.

    python benchmarks/teacher_labels.py BOXES.json IMAGES_DIR OUT.json [--teacher .teacher/movenet-thunder.json]
                                        [--min-score 0.3]

Each non-crowd box is cropped as `teacher_ap.py` crops it (a square of 1.25 x the box's longer side); joints
scoring at least --min-score are labelled visible (v = 2), the others unlabelled; `area` is the box's. Used to
compare models on photos without human keypoints (benchmarks/default_model/README.md, the choice rule): AP
against these labels measures agreement with MoveNet (AP 0.514 on coco-real val), not accuracy.
"""

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from hrpose_cli.core import geometry
from hrpose_cli.data.images import read_image
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import write_json
from hrpose_cli.model.movenet import MoveNetTeacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ann", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--teacher", type=Path, default=Path(".teacher/movenet-thunder.json"))
    parser.add_argument("--min-score", type=float, default=0.3)
    args = parser.parse_args()
    if not args.ann.is_file():
        raise HrposeError(f"{args.ann}: annotation file not found")
    if not args.images.is_dir():
        raise HrposeError(f"{args.images}: images folder not found")
    if not 0 <= args.min_score <= 1:
        raise HrposeError(f"--min-score {args.min_score}: must be between 0 and 1")
    teacher = MoveNetTeacher.load(args.teacher)
    size = teacher.input_size
    data = json.loads(args.ann.read_text())
    images = {img["id"]: img for img in data["images"]}
    labelled = 0
    for ann in data["annotations"]:
        if ann.get("iscrowd") or ann["image_id"] not in images:
            continue
        image = images[ann["image_id"]]
        rgb = np.ascontiguousarray(read_image(args.images / image["file_name"])[:, :, ::-1])
        center, scale = geometry.box_to_center_scale(np.array([ann["bbox"]], dtype=np.float64), 1.0)
        crop = cv2.warpAffine(rgb, geometry.crop_matrices(center, scale, (size, size))[0], (size, size),
                              flags=cv2.INTER_LINEAR)
        with torch.no_grad():
            joints = teacher(torch.from_numpy(crop).permute(2, 0, 1)[None].float())[0].numpy()
        xy = geometry.apply_affine(joints[None, :, :2], geometry.crop_matrices(center, scale, (size, size), inverse=True))[0]
        keep = joints[:, 2] >= args.min_score
        keypoints = np.concatenate([xy, np.where(keep, 2, 0)[:, None]], axis=1)
        keypoints[~keep] = 0
        ann["keypoints"] = [round(float(v), 2) for v in keypoints.reshape(-1)]
        ann["num_keypoints"] = int(keep.sum())
        ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
        labelled += bool(keep.any())
    write_json(args.out, data)  # temp file, then rename: an interrupted run keeps an earlier file
    print(f"{args.out}: {labelled} of {len(data['annotations'])} boxes labelled by the teacher")


if __name__ == "__main__":
    try:
        main()
    except (HrposeError, OSError, KeyError, ValueError) as err:  # one line, as the CLI's errors
        sys.exit(f"error: {err}")
