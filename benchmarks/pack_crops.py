"""Pack training sets as one small crop per person, at the resolution the augmentation needs, for a device run.

    python3 benchmarks/pack_crops.py OUT --set NAME ANN IMAGES [--set ...] [--unlabelled NAME ANN IMAGES ...]
                                     [--every NAME=K ...] [--quality 60] [--height 360]

Each person (a non-crowd person with labelled keypoints; with ``--unlabelled``, every non-crowd person box)
becomes one JPEG (or, where the persons' crops together would hold more pixels than their photo, as in a
crowded frame, the photo is kept whole, shrunk as its most demanding person allows): the part of its image that any training crop of it can reach (the square around the box's
center of side 1.35 x the diagonal of the padded crop box: the largest scale of the augmentation, turned by
any angle), shrunk when the box is taller than ``--height`` pixels (no crop needs more: at the smallest scale,
0.65, a 256-pixel crop samples 394 of the box's pixels), and the rest of the photo dropped. The annotations
(OUT/NAME/annotations.json, images in OUT/NAME/images) hold the box and keypoints moved and scaled with it,
one person per image, the original image and annotation ids kept under ``source_image_id``/``id``. What the
crop cuts off was never seen by a training crop of this person, so training on the pack sees the pixels it
would see on the photos, up to the resizing and the JPEG quality. ``--every NAME=K`` keeps every K-th image
of a set (by id) for a smaller pack. Measure AP on the original images, not on these.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from hrpose_cli.core import geometry
from hrpose_cli.errors import HrposeError

MAX_SCALE = 1.35  # AugmentConfig.scale_factor 0.35
ASPECT = 192 / 256


def _persons(ann: Path, boxes_only: bool):
    data = json.loads(ann.read_text())
    images = {img["id"]: img for img in data["images"]}
    for a in data["annotations"]:
        if a.get("category_id", 1) != 1 or a.get("iscrowd"):
            continue
        if not boxes_only and max(a["keypoints"][2::3], default=0) <= 0:
            continue
        x, y, w, h = a["bbox"]
        if w <= 1 or h <= 1 or a["image_id"] not in images:
            continue
        yield images[a["image_id"]], a, data


def _region(bbox, shape) -> tuple[int, int, int, int, float]:
    """The part of an image (x0, y0, x1, y1) any training crop of this box can reach, and its resize factor."""
    center, scale = geometry.box_to_center_scale(np.array([bbox]), ASPECT)
    sw, sh = scale[0] * geometry.PIXEL_STD
    radius = 0.5 * MAX_SCALE * math.hypot(sw, sh)
    cx, cy = center[0]
    x0, y0 = max(0, int(math.floor(cx - radius))), max(0, int(math.floor(cy - radius)))
    x1 = min(shape[1], int(math.ceil(cx + radius)) + 1)
    y1 = min(shape[0], int(math.ceil(cy + radius)) + 1)
    return x0, y0, x1, y1, sh


def pack(out: Path, name: str, ann: Path, images_dir: Path, boxes_only: bool, every: int, quality: int,
         height: int) -> tuple[int, int]:
    if not ann.is_file():
        raise HrposeError(f"{ann}: annotation file not found")
    if not images_dir.is_dir():
        raise HrposeError(f"{images_dir}: images folder not found (paired with {ann})")
    dest = out / name / "images"
    dest.mkdir(parents=True, exist_ok=True)
    by_image: dict[int, tuple[dict, list[dict]]] = {}
    categories = None
    for image, a, data in _persons(ann, boxes_only):
        categories = data["categories"]
        if image["id"] % every == 0:
            by_image.setdefault(image["id"], (image, []))[1].append(a)
    new_images, new_anns = [], []
    total = 0
    for image, anns in by_image.values():
        pixels = cv2.imread(str(images_dir / image["file_name"]), cv2.IMREAD_COLOR)
        if pixels is None:
            raise HrposeError(f"{images_dir / image['file_name']}: not a readable image")
        regions = [_region(a["bbox"], pixels.shape) for a in anns]
        factors = [min(1.0, height / sh) for *_, sh in regions]
        crop_pixels = sum((x1 - x0) * (y1 - y0) * f * f for (x0, y0, x1, y1, _), f in zip(regions, factors))
        whole_f = max(factors)
        if crop_pixels >= pixels.shape[0] * pixels.shape[1] * whole_f * whole_f:  # a crop each would cost more
            groups = [((0, 0, pixels.shape[1], pixels.shape[0]), whole_f, anns, Path(image["file_name"]).stem)]
        else:
            groups = [(r[:4], f, [a], f"{Path(image['file_name']).stem}_{a['id']}") for r, f, a in zip(regions, factors, anns)]
        for (x0, y0, x1, y1), f, members, stem in groups:
            if x1 <= x0 or y1 <= y0:
                continue
            part = pixels[y0:y1, x0:x1]
            if f < 1:
                size = (max(1, round(part.shape[1] * f)), max(1, round(part.shape[0] * f)))
                part = cv2.resize(part, size, interpolation=cv2.INTER_AREA)
            fx, fy = part.shape[1] / (x1 - x0), part.shape[0] / (y1 - y0)
            ok, jpeg = cv2.imencode(".jpg", part, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise HrposeError(f"{images_dir / image['file_name']}: could not re-encode")
            file_name = f"{stem}.jpg"
            (dest / file_name).write_bytes(jpeg.tobytes())
            total += len(jpeg)
            new_id = len(new_images) + 1
            new_images.append({"id": new_id, "file_name": file_name, "width": part.shape[1], "height": part.shape[0],
                               "source_image_id": image["id"]})
            for a in members:
                kp = np.array(a["keypoints"], dtype=np.float64).reshape(-1, 3)
                labelled = kp[:, 2] > 0
                kp[labelled, 0] = (kp[labelled, 0] - x0 + 0.5) * fx - 0.5  # pixel centers at integers
                kp[labelled, 1] = (kp[labelled, 1] - y0 + 0.5) * fy - 0.5
                x, y, w, h = a["bbox"]
                new_anns.append({**a, "image_id": new_id, "bbox": [(x - x0) * fx, (y - y0) * fy, w * fx, h * fy],
                                 "area": a.get("area", w * h) * fx * fy,
                                 "keypoints": [round(float(v), 2) for v in kp.reshape(-1)]})
    if not new_anns:
        raise HrposeError(f"{ann}: no person to pack")
    (out / name / "annotations.json").write_text(json.dumps({"images": new_images, "annotations": new_anns,
                                                             "categories": categories}))
    return len(new_anns), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", nargs=3, action="append", default=[], metavar=("NAME", "ANN", "IMAGES"))
    parser.add_argument("--unlabelled", nargs=3, action="append", default=[], metavar=("NAME", "ANN", "IMAGES"))
    parser.add_argument("--every", action="append", default=[], metavar="NAME=K")
    parser.add_argument("--quality", type=int, default=60)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args()
    every = {}
    for item in args.every:
        key, _, value = item.partition("=")
        if not value.isdigit() or int(value) < 1:
            raise HrposeError(f"--every {item}: expected NAME=K with K a whole number of at least 1")
        every[key] = int(value)
    names = [s[0] for s in args.set + args.unlabelled]
    if not names:
        raise HrposeError("nothing to pack: give --set NAME ANN IMAGES or --unlabelled NAME ANN IMAGES")
    unknown = sorted(set(every) - set(names))
    if unknown:
        raise HrposeError(f"--every {unknown[0]}: no set of that name")
    if len(set(names)) != len(names):
        raise HrposeError(f"set names must differ: {', '.join(names)}")
    grand = 0
    for (name, ann, images), boxes_only in [(s, False) for s in args.set] + [(s, True) for s in args.unlabelled]:
        persons, size = pack(args.out, name, Path(ann), Path(images), boxes_only, every.get(name, 1), args.quality,
                             args.height)
        grand += size
        print(f"{args.out / name}: {persons} persons, {size / 2**20:.1f} MiB")
    print(f"{grand / 2**20:.1f} MiB of crops in {args.out}")


if __name__ == "__main__":
    try:
        main()
    except (HrposeError, OSError, ValueError, KeyError) as err:  # one line, as the CLI's errors
        sys.exit(f"error: {err}")
