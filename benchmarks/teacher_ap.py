"""COCO AP of the MoveNet teacher itself, with GT boxes: each person's square crop of 1.25 x the box's longer side
(zero beyond the image's edges).

    python benchmarks/teacher_ap.py ANN.json IMAGES_DIR [--teacher .teacher/movenet-thunder.json] [--flip]
        [--results-out RESULTS.json]

The same crops BlazePose was measured on (../shared/data/README.md), so the three models compare directly.
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from hrpose_cli.core import geometry
from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.data.images import read_image
from hrpose_cli.engine.evaluator import STAT_NAMES, coco_stats
from hrpose_cli.model.movenet import MoveNetTeacher
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import check_writable, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ann", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--teacher", type=Path, default=Path(".teacher/movenet-thunder.json"))
    parser.add_argument("--flip", action="store_true", help="average the heads of each crop and its mirror image")
    parser.add_argument("--results-out", type=Path, help="write the COCO keypoint results (for hrpose eval --results)")
    args = parser.parse_args()
    check_writable(args.results_out)  # before the teacher's minutes, not after
    teacher = MoveNetTeacher.load(args.teacher)
    size = teacher.input_size
    dataset = CocoKeypoints.load(args.ann)
    results = []
    for record in dataset.persons(args.images):
        rgb = np.ascontiguousarray(read_image(record.image_path)[:, :, ::-1])
        center, scale = geometry.box_to_center_scale(record.bbox[None], 1.0)
        crop = cv2.warpAffine(rgb, geometry.crop_matrices(center, scale, (size, size))[0], (size, size),
                              flags=cv2.INTER_LINEAR)
        with torch.no_grad():
            joints = teacher(torch.from_numpy(crop).permute(2, 0, 1)[None].float(), args.flip)[0].numpy()
        to_image = geometry.crop_matrices(center, scale, (size, size), inverse=True)
        xy = geometry.apply_affine(joints[None, :, :2], to_image)[0]
        keypoints = np.concatenate([xy, joints[:, 2:]], axis=1)
        results.append({"image_id": record.image_id, "category_id": 1, "keypoints": keypoints.reshape(-1).tolist(),
                        "score": float(joints[:, 2].mean())})
    stats = coco_stats(dataset, results)
    if args.results_out:
        write_json(args.results_out, results)
    print(f"{args.ann}: {len(results)} persons; " + ", ".join(f"{k} {stats[k]:.3f}" for k in STAT_NAMES))


if __name__ == "__main__":
    try:
        main()
    except (HrposeError, OSError) as err:  # one line, as the CLI's errors
        sys.exit(f"error: {err}")
