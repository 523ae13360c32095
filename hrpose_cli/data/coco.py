"""COCO keypoint files -> validated person records, with pycocotools underneath.

Every file a user hands us is checked here, once, so that the engine and pycocotools only ever see
well-formed data, and a bad file ends in one line naming the file and the problem instead of a KeyError deep
inside pycocotools.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from hrpose_cli.core.schema import COCO17, KeypointSchema, for_joints, from_category
from hrpose_cli.resources import asset_path
from hrpose_cli.errors import HrposeError

PERSON_CATEGORY = 1
SAMPLE_DIR = asset_path("sample")


@dataclass
class PersonRecord:
    """One person to crop: a GT annotation (ann_id >= 0) or a detector box (ann_id == -1).

    joints are (J, 3) x, y, v with COCO's v (0 unlabelled, 1 occluded, 2 visible); all zeros for detections.
    area is the annotation's area for GT persons and the box area w*h for detections.
    """

    image_id: int
    image_path: Path
    bbox: np.ndarray
    joints: np.ndarray
    area: float
    ann_id: int
    score: float = 1.0


def scored_person(ann: dict) -> bool:
    """Whether COCOeval scores this annotation: a non-crowd person with at least one labelled joint."""
    return ann["category_id"] == PERSON_CATEGORY and not ann["iscrowd"] and any(v > 0 for v in ann["keypoints"][2::3])


# What may be left after the parser's error when the text was cut inside a number or a literal.
_PARTIAL_TOKEN = re.compile(r"-?\d*(\.\d*)?([eE][+-]?\d*)?|t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?")


def _cut_short(text: str, err: json.JSONDecodeError) -> bool:
    """Whether the JSON error comes from the text ending early (a truncated file) rather than a mistake in it."""
    return err.msg.startswith("Unterminated string") or _PARTIAL_TOKEN.fullmatch(text[err.pos:].rstrip()) is not None


def read_json(path: Path) -> Any:
    """Parse a JSON file, or raise HrposeError saying whether it is missing, unreadable, truncated or not JSON."""
    path = Path(path)
    if not path.exists():
        raise HrposeError(f"{path}: file not found")
    if path.is_dir():
        raise HrposeError(f"{path}: is a directory, not a JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except PermissionError as err:
        raise HrposeError(f"{path}: cannot read the file (permission denied)") from err
    except UnicodeDecodeError as err:
        raise HrposeError(f"{path}: not a JSON file (not UTF-8 text)") from err
    except OSError as err:
        raise HrposeError(f"{path}: cannot read the file ({err.strerror or err})") from err
    if not text.strip():
        raise HrposeError(f"{path}: empty file, expected JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if _cut_short(text, err):
            raise HrposeError(f"{path}: truncated JSON (it ends at line {err.lineno} before the data does)") from err
        raise HrposeError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from err


def _few(ids: list, limit: int = 5) -> str:
    """'1, 2, 3 and 4 more': names the first few of a list in a message."""
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _numeric_rows(path: Path, rows: list[list], what: str, entry: str) -> np.ndarray:
    """Stack equal-length number lists; name the first entry holding something that is not a finite number."""
    try:
        array = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
        if np.isfinite(array).all():
            return array
    except (TypeError, ValueError, OverflowError):
        pass
    bad = next((i for i, row in enumerate(rows) if not all(_is_number(v) for v in row)), None)
    raise HrposeError(f"{path}: {entry} {bad}: {what} must be finite numbers")


def _missing(entry: Any, keys: tuple[str, ...]) -> list[str]:
    """The keys a JSON entry lacks (all of them when it is not an object)."""
    return [k for k in keys if not isinstance(entry, dict) or k not in entry]


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _silent_coco(dataset: dict) -> COCO:
    """A pycocotools COCO over an already parsed dict, without its prints."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def sample_dataset() -> tuple[Path, Path]:
    """The small sample shipped in assets/sample (annotations file, images folder) that bare commands use."""
    ann, images = SAMPLE_DIR / "person_keypoints.json", SAMPLE_DIR / "images"
    if not ann.is_file() or not images.is_dir():
        raise HrposeError(f"{SAMPLE_DIR}: the sample dataset is missing from this installation: pass --ann, --images")
    return ann, images


def read_detections(path: Path) -> list[dict]:
    """A checked COCO detection results file: a list of {image_id (or file_name), bbox, score}.

    ``file_name`` lets `predict` match boxes to images that have no annotation file.
    """
    path = Path(path)
    dets = read_json(path)
    if not isinstance(dets, list):
        raise HrposeError(f"{path}: not a COCO detection results file (a list of {{image_id, bbox, score}})")
    if not dets:
        raise HrposeError(f"{path}: no detections")
    for index, det in enumerate(dets):
        if not isinstance(det, dict):
            raise HrposeError(f"{path}: detection {index} is not an object")
        missing = _missing(det, ("bbox", "score"))
        if "image_id" not in det and "file_name" not in det:
            missing.append("image_id")
        if missing:
            raise HrposeError(f"{path}: detection {index} lacks {', '.join(missing)}")
        if "image_id" in det and not _is_id(det["image_id"]):
            raise HrposeError(f"{path}: detection {index}: image_id must be an integer")
        bbox = det["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise HrposeError(f"{path}: detection {index}: bbox must be four numbers [x, y, w, h]")
        if bbox[2] <= 0 or bbox[3] <= 0:
            raise HrposeError(f"{path}: detection {index} has an empty box (w={bbox[2]}, h={bbox[3]})")
        if not _is_number(det["score"]):
            raise HrposeError(f"{path}: detection {index}: score must be a finite number")
    return dets


def _keypoint_category(categories: list[dict]) -> dict | None:
    """The category whose keypoints the file labels: COCO's person (id 1) where it names keypoints, else the
    first category that does (an animal, hand or car set may number its one category 0, 2 or 7)."""
    named = [c for c in categories if isinstance(c.get("keypoints"), list)]
    return next((c for c in named if c["id"] == PERSON_CATEGORY), named[0] if named else None)


def _renumber_category(data: dict, file_id: int) -> None:
    """Swap ids ``file_id`` and PERSON_CATEGORY in the parsed file's categories and annotations, so that every
    room (training, evaluation, drawing) finds the keypoint category under one id; a swap keeps ids distinct."""
    if file_id == PERSON_CATEGORY:
        return
    swap = {file_id: PERSON_CATEGORY, PERSON_CATEGORY: file_id}
    for record in data["categories"]:
        record["id"] = swap.get(record["id"], record["id"])
    for record in data["annotations"]:
        record["category_id"] = swap.get(record["category_id"], record["category_id"])


class CocoKeypoints:
    """A validated COCO keypoint annotation file and the pycocotools index over it."""

    def __init__(self, path: Path, coco: COCO, num_joints: int, file_category_id: int = PERSON_CATEGORY) -> None:
        self.path = Path(path)
        self.coco = coco
        self.num_joints = num_joints
        # The keypoint category's id in the file; in memory it is PERSON_CATEGORY (see _renumber_category).
        self.file_category_id = file_category_id
        self.image_ids: list[int] = sorted(coco.imgs)
        self.category: dict | None = next(
            (c for c in coco.dataset["categories"] if c["id"] == PERSON_CATEGORY and isinstance(c.get("keypoints"), list)),
            None,
        )  # the keypoint category, renumbered to PERSON_CATEGORY by load()
        # The file's own keypoint set; a file that names none is taken for COCO-17 (as pycocotools does).
        self.schema: KeypointSchema = (from_category(self.category, str(self.path)) if self.category is not None
                                       else for_joints(num_joints))

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self.schema.names

    def training_schema(self, mean_y: np.ndarray | None) -> KeypointSchema:
        """The set this file trains: its category's, the upper body from ``mean_y``. A file whose category
        names no keypoints is COCO-17 (load has checked that its annotations have 17)."""
        return from_category(self.category, str(self.path), mean_y) if self.category is not None else COCO17

    @classmethod
    def load(cls, ann_path: Path, num_joints: int | None = None) -> CocoKeypoints:
        """Read and check an annotation file; J comes from the person category's keypoint names (else 17)."""
        path = Path(ann_path)
        data = read_json(path)
        if not (isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("images", "annotations"))):
            raise HrposeError(f"{path}: not a COCO annotation file (no 'images' and 'annotations' lists)")
        categories = data.setdefault("categories", [{"id": PERSON_CATEGORY, "name": "person"}])
        if not isinstance(categories, list) or not all(isinstance(c, dict) and "id" in c for c in categories):
            raise HrposeError(f"{path}: 'categories' must be a list of objects with an 'id'")
        category = _keypoint_category(categories)
        named = category is not None
        if named and num_joints is not None and len(category["keypoints"]) != num_joints:
            raise HrposeError(f"{path}: the keypoint category names {len(category['keypoints'])} keypoints, "
                              f"expected {num_joints}")
        joints = len(category["keypoints"]) if named else (num_joints or COCO17.num_joints)

        image_ids = set()
        for index, image in enumerate(data["images"]):
            missing = _missing(image, ("id", "file_name", "width", "height"))
            if missing:
                raise HrposeError(f"{path}: image {index} lacks {', '.join(missing)}")
            if not _is_id(image["id"]):
                raise HrposeError(f"{path}: image {index}: id must be an integer")
            if not (_is_number(image["width"]) and _is_number(image["height"])):
                raise HrposeError(f"{path}: image {index}: width and height must be numbers")
            image_ids.add(image["id"])
        if len(image_ids) != len(data["images"]):
            raise HrposeError(f"{path}: image ids are not unique")

        anns = data["annotations"]
        for index, ann in enumerate(anns):
            missing = _missing(ann, ("id", "image_id", "category_id", "keypoints", "bbox", "area"))
            if missing:
                raise HrposeError(f"{path}: annotation {index} lacks {', '.join(missing)}")
            if not all(_is_id(ann[k]) for k in ("id", "image_id", "category_id")):
                raise HrposeError(f"{path}: annotation {index}: id, image_id and category_id must be integers")
            if not isinstance(ann["keypoints"], list) or len(ann["keypoints"]) != 3 * joints:
                length = len(ann["keypoints"]) if isinstance(ann["keypoints"], list) else "no list"
                raise HrposeError(
                    f"{path}: annotation {index} (id {ann['id']}) has {length} keypoint values, "
                    f"expected {3 * joints} ({joints} joints x 3)"
                    + ("" if named else "; its category names no 'keypoints', so COCO's 17 are assumed")
                )
            if not isinstance(ann["bbox"], list) or len(ann["bbox"]) != 4:
                raise HrposeError(f"{path}: annotation {index} (id {ann['id']}): bbox must be [x, y, w, h]")
            if not _is_number(ann["area"]):
                raise HrposeError(f"{path}: annotation {index} (id {ann['id']}): area must be a finite number")
        if anns:
            keypoints = _numeric_rows(path, [a["keypoints"] for a in anns], "keypoints", "annotation")
            _numeric_rows(path, [a["bbox"] for a in anns], "bbox values", "annotation")
            labelled = (keypoints[:, 2::3] > 0).sum(axis=1)
            for ann, count in zip(anns, labelled):
                ann.setdefault("iscrowd", 0)
                ann.setdefault("num_keypoints", int(count))  # pycocotools' keypoint eval needs it
        if len({a["id"] for a in anns}) != len(anns):
            raise HrposeError(f"{path}: annotation ids are not unique")
        unknown = sorted({a["image_id"] for a in anns} - image_ids)
        if unknown:
            raise HrposeError(f"{path}: annotations refer to image ids missing from 'images': {_few(unknown)}")
        file_category_id = category["id"] if category is not None else PERSON_CATEGORY
        _renumber_category(data, file_category_id)
        return cls(path, _silent_coco(data), joints, file_category_id)

    def oks_sigmas(self, sigmas: np.ndarray | None = None) -> np.ndarray:
        """The per-joint OKS sigmas for this file's keypoints: the given ones, else its set's (COCO's for COCO-17)."""
        if sigmas is None:
            return self.schema.oks_sigmas
        sigmas = np.asarray(sigmas, dtype=np.float64)
        if len(sigmas) != self.num_joints:
            raise HrposeError(f"{self.path}: {self.num_joints} keypoints per person but {len(sigmas)} sigmas given")
        return sigmas

    def image_path(self, image_id: int, images_dir: Path) -> Path:
        """Where an image's file lies under images_dir."""
        if image_id not in self.coco.imgs:
            raise HrposeError(f"{self.path}: no image with id {image_id}")
        return Path(images_dir) / self.coco.imgs[image_id]["file_name"]

    def _person_annotations(self, image_id: int) -> list[dict]:
        """Non-crowd person annotations of one image with at least one labelled joint, in file order."""
        return [
            a
            for a in self.coco.imgToAnns.get(image_id, [])
            if a["category_id"] == PERSON_CATEGORY and not a["iscrowd"] and max(a["keypoints"]) > 0
        ]

    @property
    def num_people(self) -> int:
        """Non-crowd persons with at least one labelled joint: the people COCOeval scores."""
        return sum(1 for a in self.coco.dataset["annotations"] if scored_person(a))

    def persons(self, images_dir: Path) -> list[PersonRecord]:
        """The official HRNet GT set: labelled non-crowd persons, their boxes cleaned as the official loader does.

        x1 = max(0, x), y1 = max(0, y), x2 = min(W-1, x1 + max(0, w-1)), y2 = min(H-1, y1 + max(0, h-1));
        kept when area > 0 and the cleaned box is not inverted; bbox = [x1, y1, x2-x1, y2-y1].
        """
        records = []
        for image_id in self.image_ids:
            image = self.coco.imgs[image_id]
            width, height = image["width"], image["height"]
            for ann in self._person_annotations(image_id):
                x, y, w, h = ann["bbox"]
                x1, y1 = max(0, x), max(0, y)
                x2 = min(width - 1, x1 + max(0, w - 1))
                y2 = min(height - 1, y1 + max(0, h - 1))
                if not (ann["area"] > 0 and x2 >= x1 and y2 >= y1):
                    continue
                records.append(
                    PersonRecord(
                        image_id=image_id,
                        image_path=Path(images_dir) / image["file_name"],
                        bbox=np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64),
                        joints=np.array(ann["keypoints"], dtype=np.float64).reshape(self.num_joints, 3),
                        area=float(ann["area"]),
                        ann_id=int(ann["id"]),
                    )
                )
        return records

    def detections(self, dets_path: Path, images_dir: Path, min_score: float = 0.0) -> list[PersonRecord]:
        """Boxes from a COCO detection results file (category 1 or the keypoint category's id in the annotation file,
        score >= min_score), boxes as given."""
        path = Path(dets_path)
        dets = read_detections(path)
        if any("image_id" not in d for d in dets):
            index = next(i for i, d in enumerate(dets) if "image_id" not in d)
            raise HrposeError(f"{path}: detection {index} lacks image_id")
        unknown = sorted({d["image_id"] for d in dets} - set(self.coco.imgs))
        if unknown:
            raise HrposeError(f"{path}: image ids not in {self.path}: {_few(unknown)}")
        records = []
        for det in dets:
            if det.get("category_id", PERSON_CATEGORY) not in (PERSON_CATEGORY, self.file_category_id):
                continue
            x, y, w, h = det["bbox"]
            if det["score"] < min_score:
                continue
            records.append(
                PersonRecord(
                    image_id=det["image_id"],
                    image_path=self.image_path(det["image_id"], images_dir),
                    bbox=np.array([x, y, w, h], dtype=np.float64),
                    joints=np.zeros((self.num_joints, 3)),
                    area=float(w * h),
                    ann_id=-1,
                    score=float(det["score"]),
                )
            )
        return records


def load_results(path: Path, dataset: CocoKeypoints) -> list[dict]:
    """Read and check a COCO keypoint results file against its annotations; category_id defaults to 1 (or
    the annotation file's keypoint category id, which means the same)."""
    path = Path(path)
    results = read_json(path)
    if not isinstance(results, list):
        raise HrposeError(f"{path}: not a COCO keypoint results file (a list of {{image_id, keypoints, score}})")
    if not results:
        raise HrposeError(f"{path}: no results (the list is empty)")
    expected = 3 * dataset.num_joints
    for index, entry in enumerate(results):
        missing = _missing(entry, ("image_id", "keypoints", "score"))
        if missing:
            raise HrposeError(f"{path}: entry {index} lacks {', '.join(missing)}")
        if not _is_id(entry["image_id"]):
            raise HrposeError(f"{path}: entry {index}: image_id must be an integer")
        keypoints = entry["keypoints"]
        if not isinstance(keypoints, list) or len(keypoints) != expected:
            length = len(keypoints) if isinstance(keypoints, list) else "no list"
            raise HrposeError(
                f"{path}: entry {index} has {length} keypoint values, "
                f"expected {expected} ({dataset.num_joints} joints x 3)"
            )
        if not _is_number(entry["score"]):
            raise HrposeError(f"{path}: entry {index}: score must be a finite number")
        if not _is_id(entry.setdefault("category_id", PERSON_CATEGORY)):
            raise HrposeError(f"{path}: entry {index}: category_id must be an integer")
        if entry["category_id"] == dataset.file_category_id:  # the keypoint category as the file numbers it
            entry["category_id"] = PERSON_CATEGORY
    _numeric_rows(path, [r["keypoints"] for r in results], "keypoints", "entry")
    unknown = sorted({r["image_id"] for r in results} - set(dataset.coco.imgs))
    if unknown:
        raise HrposeError(f"{path}: image ids not in {dataset.path}: {_few(unknown)}")
    return results
