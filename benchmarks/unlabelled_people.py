"""Person boxes without keypoints for the teacher to label: the people a labelled set leaves out, any folder of
photos, and video frames.

    python benchmarks/unlabelled_people.py OUT [--set NAME ANN IMAGES ...] [--photos NAME FOLDER ...]
                                           [--video NAME VIDEO --every 4] [--min-height 48] [--device cpu]

For each ``--set`` (a COCO keypoint file and its images): the persons it has boxes for but no keypoints
(``num_keypoints`` 0, not crowd), plus the shipped detector's boxes (predict threshold) that overlap none of its
boxes or crowd regions (IoU < 0.3): people nobody labelled. For each ``--photos`` (a folder; files that are not
images are passed over): the detector's boxes in every photo, so that any photo with people can join. For each
``--video``: every ``--every``-th frame, written as JPEG, with the detector's boxes. Boxes shorter than
``--min-height`` pixels are dropped (the teacher's answer for a person a few pixels tall teaches nothing). Writes
``OUT/NAME/annotations.json`` (COCO, boxes only; for videos ``OUT/NAME/images/``; photos stay in their folder),
the input of ``pack_crops.py --unlabelled``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

import hrpose_cli
from hrpose_cli.core.tracking import box_iou
from hrpose_cli.data.coco import read_json
from hrpose_cli.data.image_file import read_image
from hrpose_cli.data.images import IMAGE_SUFFIXES
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import write_json

NEW_OVERLAP = 0.3
PHOTO_BATCH = 32  # photos decoded and held at once


def _record(image_id: int, index: int, box, score: float | None) -> dict:
    x, y, w, h = (float(v) for v in box)
    record = {"id": image_id * 100 + index, "image_id": image_id, "category_id": 1, "bbox": [x, y, w, h],
              "area": w * h, "iscrowd": 0,
              "num_keypoints": 0, "keypoints": [0] * 51}
    if score is not None:
        record["det_score"] = round(float(score), 4)
    return record


def from_set(model, ann: Path, images_dir: Path, min_height: float) -> tuple[dict, dict]:
    """A labelled set's people without keypoints: its own unlabelled boxes and the detector's new ones."""
    data = read_json(ann)
    if not (isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("images", "annotations"))):
        raise HrposeError(f"{ann}: not a COCO annotation file (no 'images' and 'annotations' lists)")
    if not images_dir.is_dir():
        raise HrposeError(f"{images_dir}: images folder not found (paired with {ann})")
    by_image: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images = data["images"]
    results = model.predict([images_dir / im["file_name"] for im in images])
    out, counts = [], {"unlabelled_boxes": 0, "detector_boxes": 0}
    for im, result in zip(images, results):
        known = by_image.get(im["id"], [])
        index = 0
        for a in known:
            if a.get("num_keypoints", 0) == 0 and not a.get("iscrowd") and a["bbox"][3] >= min_height:
                out.append(_record(im["id"], index, a["bbox"], None))
                index += 1
                counts["unlabelled_boxes"] += 1
        known_boxes = np.array([a["bbox"] for a in known], dtype=np.float64).reshape(-1, 4)
        for box, score in zip(result.boxes, result.box_scores):
            if box[3] >= min_height and (box_iou(box, known_boxes) < NEW_OVERLAP).all():
                out.append(_record(im["id"], index, box, score))
                index += 1
                counts["detector_boxes"] += 1
    kept = {a["image_id"] for a in out}
    coco = {"images": [im for im in images if im["id"] in kept], "annotations": out,
            "categories": data.get("categories", [{"id": 1, "name": "person"}])}
    return coco, counts


def from_photos(model, folder: Path, min_height: float, first_id: int) -> tuple[dict, dict]:
    """The detector's person boxes in every image of a folder (not recursive), named relative to it."""
    if not folder.is_dir():
        raise HrposeError(f"{folder}: photos folder not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise HrposeError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    images, results = [], []
    for start in range(0, len(paths), PHOTO_BATCH):  # each photo decoded once: its size and the detector's input
        arrays = [read_image(path) for path in paths[start:start + PHOTO_BATCH]]
        for number, (path, array) in enumerate(zip(paths[start:], arrays), start):
            images.append({"id": first_id + number, "file_name": path.name, "height": array.shape[0],
                           "width": array.shape[1]})
        results += model.predict(arrays)
    coco = _detected(images, results, min_height)
    return coco, {"photos": len(images), "detector_boxes": len(coco["annotations"])}


def _detected(images: list[dict], results: list, min_height: float) -> dict:
    """A boxes-only COCO file of the detector's people at least ``min_height`` tall, for images with any."""
    out = []
    for im, result in zip(images, results):
        boxes = [(b, s) for b, s in zip(result.boxes, result.box_scores) if b[3] >= min_height]
        out += [_record(im["id"], i, b, s) for i, (b, s) in enumerate(boxes)]
    kept = {a["image_id"] for a in out}
    return {"images": [im for im in images if im["id"] in kept], "annotations": out,
            "categories": [{"id": 1, "name": "person"}]}


def from_video(model, video: Path, frames_dir: Path, every: int, min_height: float, first_id: int) -> tuple[dict, dict]:
    """Every ``every``-th frame of a video as a JPEG, with the detector's person boxes."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise HrposeError(f"{video}: cannot be read as a video")
    frames_dir.mkdir(parents=True, exist_ok=True)
    images, paths, frame_index = [], [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if frame_index % every == 0:
            name = f"{video.stem}_{frame_index:05d}.jpg"
            cv2.imwrite(str(frames_dir / name), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            images.append({"id": first_id + frame_index, "file_name": name, "height": frame.shape[0],
                           "width": frame.shape[1]})
            paths.append(frames_dir / name)
        frame_index += 1
    capture.release()
    coco = _detected(images, model.predict(paths), min_height)
    return coco, {"frames": len(images), "detector_boxes": len(coco["annotations"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", nargs=3, action="append", default=[], metavar=("NAME", "ANN", "IMAGES"))
    parser.add_argument("--photos", nargs=2, action="append", default=[], metavar=("NAME", "FOLDER"))
    parser.add_argument("--video", nargs=2, action="append", default=[], metavar=("NAME", "VIDEO"))
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--min-height", type=float, default=48.0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    model = hrpose_cli.load(device=args.device)
    summary = {}
    for name, ann, images in args.set:
        coco, summary[name] = from_set(model, Path(ann), Path(images), args.min_height)
        write_json(args.out / name / "annotations.json", coco)
    for number, (name, folder) in enumerate(args.photos):
        coco, summary[name] = from_photos(model, Path(folder), args.min_height, 980000000 + number * 100000)
        write_json(args.out / name / "annotations.json", coco)
    for number, (name, video) in enumerate(args.video):
        coco, summary[name] = from_video(model, Path(video), args.out / name / "images", args.every,
                                         args.min_height, 990000000 + number * 100000)
        write_json(args.out / name / "annotations.json", coco)
    print(json.dumps(summary))


if __name__ == "__main__":
    try:
        main()
    except HrposeError as error:
        sys.exit(f"error: {error}")
