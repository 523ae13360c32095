"""How many joints the MoveNet teacher adds to a training set (`hrpose train --teacher`'s joint labels).

    python benchmarks/teacher_fill.py ANN.json IMAGES_DIR [ANN.json IMAGES_DIR ...] [--teacher .teacher/movenet-thunder.json]

Per set: the labelled share of all joints, and how many unlabelled joints the teacher fills (score >= 0.3, in
crops where it found the annotated person), on each person's plain 256x192 crop (no augmentation).
"""

import argparse
import sys
import contextlib
from pathlib import Path

import numpy as np
import torch

from hrpose_cli.core import geometry
from hrpose_cli.data.augment import CropParams, crop_geometry
from hrpose_cli.data.images import PackedImages, read_image
from hrpose_cli.data.train_data import load_person_table
from hrpose_cli.engine.distill import Distiller
from hrpose_cli.errors import HrposeError

BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", type=Path, help="annotation file and image folder, repeated")
    parser.add_argument("--teacher", type=Path, default=Path(".teacher/movenet-thunder.json"))
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give an image folder after each annotation file")
    distiller = Distiller(args.teacher, torch.device("cpu"), (256, 192), (64, 48), 16, min_score=0.3, feature_weight=0.0)
    for ann, images_dir in zip(args.pairs[::2], args.pairs[1::2]):
        table = load_person_table([(ann, images_dir)])
        labelled = filled = people = 0
        for start in range(0, len(table), BATCH):
            rows = np.arange(start, min(start + BATCH, len(table)))
            image_ids, index = np.unique(table.image_of[rows], return_inverse=True)
            images = [read_image(table.image_paths[i]) for i in image_ids]
            packed = PackedImages.pack(images)
            centers, scales = geometry.box_to_center_scale(table.boxes[rows], 192 / 256)
            n = len(rows)
            widths = np.array([images[i].shape[1] for i in index], dtype=np.float64)
            params = CropParams(centers, scales, np.zeros(n), np.zeros(n, dtype=bool))
            crop_to_image, joints = crop_geometry(params, table.joints[rows], widths, (192, 256),
                                                   table.schema.flip_permutation())
            visible = torch.from_numpy(joints[..., 2]).float()
            _, taught, _ = distiller.label(packed.pixels, packed.offsets, packed.shapes, torch.from_numpy(index),
                                           torch.from_numpy(crop_to_image).float(), torch.from_numpy(joints[..., :2]).float(),
                                           visible, torch.ones(n), contextlib.nullcontext)
            added = (taught > 0) & (visible <= 0)
            labelled += int((visible > 0).sum())
            filled += int(added.sum())
            people += int(added.any(1).sum())
        total = len(table) * table.joints.shape[1]
        print(f"{ann}: {len(table)} persons; labelled {labelled}/{total} joints ({labelled / total:.1%}); "
              f"the teacher fills {filled} ({filled / total:.1%}), in {people} persons")


if __name__ == "__main__":
    try:
        main()
    except (HrposeError, OSError) as err:  # one line, as the CLI's errors
        sys.exit(f"error: {err}")
