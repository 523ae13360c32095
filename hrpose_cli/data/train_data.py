"""Training data: the person table of several COCO sets, and the deterministic plan of batches for a whole run.

The plan decides, for every epoch, the order of the persons (a permutation drawn from a generator seeded by
(seed, epoch)) and, under DistributedDataParallel, each rank's share of it (as DistributedSampler with
drop_last: every rank gets the same number of persons; rank r takes positions r, r + world, ... of each
global batch). It is a lazy sequence of batches of (image path, item) pairs for data.images.batch_loader,
so ONE DataLoader (its workers started once) serves every remaining epoch of a run: on small data an epoch
takes seconds and starting workers per epoch would dominate. Within a batch each image is decoded once, its
item naming the batch positions of the persons it holds. Nothing here draws from a global random state, so
a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hrpose_cli.core.schema import KeypointSchema, mean_heights
from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.errors import HrposeError

# Tags that keep the seed sequences of the permutation and of the augmentation apart.
_PERMUTATION_STREAM = 0
_AUGMENT_STREAM = 1
_MIXUP_STREAM = 2


@dataclass
class PersonTable:
    """Every training person of one or more annotation/image-folder pairs, as flat arrays."""

    image_paths: list[str]  # unique image files
    image_of: np.ndarray  # (N,) index into image_paths for each person
    boxes: np.ndarray  # (N, 4) x, y, w, h (cleaned GT boxes)
    joints: np.ndarray  # (N, J, 3) x, y, v
    sources: list[tuple[str, int]]  # (annotation file, persons taken from it)
    schema: KeypointSchema  # the keypoint set of the files (upper body from where their joints lie)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def num_images(self) -> int:
        return len(self.image_paths)

    def without_images(self, bad: set[int]) -> "PersonTable":
        """The table without the persons of the given image indices (images are kept, unused)."""
        keep = ~np.isin(self.image_of, np.fromiter(bad, dtype=np.int64, count=len(bad)))
        return PersonTable(self.image_paths, self.image_of[keep], self.boxes[keep], self.joints[keep], self.sources,
                           self.schema)


def load_person_table(pairs: Sequence[tuple[Path, Path]], unlabelled: Sequence[tuple[Path, Path]] = ()) -> PersonTable:
    """Read annotation files (each with its image folder) and concatenate their usable persons.

    The keypoint set is the first file's category (data.coco.CocoKeypoints.training_schema); every other
    labelled file must name the same keypoints, else a one-line error names both files.

    Usable: non-crowd persons with at least one labelled joint (v > 0) whose cleaned GT box is not empty
    (CocoKeypoints.persons). A file without any raises HrposeError naming it. The ``unlabelled`` pairs follow:
    every non-crowd person box of theirs, keypoints or not, with its joints set unlabelled (for a teacher).
    """
    image_index: dict[str, int] = {}
    image_of, boxes, joints, sources = [], [], [], []
    first = None
    for k, (ann_path, images_dir) in enumerate(list(pairs) + list(unlabelled)):
        boxes_only = k >= len(pairs)
        ann_path, images_dir = Path(ann_path), Path(images_dir)
        if not images_dir.is_dir():
            raise HrposeError(f"{images_dir}: images folder not found (paired with {ann_path})")
        dataset = CocoKeypoints.load(ann_path)
        if first is None:
            first = dataset
            first.training_schema(None)  # a labelled file without keypoint names fails here, before any image
        elif not boxes_only and not dataset.schema.same_set(first.schema):
            raise HrposeError(f"{ann_path}: its keypoints ({', '.join(dataset.keypoint_names)}) differ from those of "
                              f"{first.path} ({', '.join(first.keypoint_names)}); training files must name the same set")
        num_joints = first.num_joints
        records = _person_boxes(dataset, images_dir) if boxes_only else dataset.persons(images_dir)
        records = [r for r in records if (boxes_only or (r.joints[:, 2] > 0).any()) and r.bbox[2] > 0 and r.bbox[3] > 0]
        if not records:
            if boxes_only:
                raise HrposeError(f"{ann_path}: no usable person box (none is a non-crowd person with a box)")
            raise HrposeError(f"{ann_path}: no usable person to train on (none is a non-crowd person with labelled keypoints and a box)")
        for r in records:
            key = str(r.image_path)
            image_of.append(image_index.setdefault(key, len(image_index)))
            boxes.append(r.bbox)
            joints.append(np.zeros((num_joints, 3)) if boxes_only else r.joints)
        sources.append((str(ann_path), len(records)))
    boxes_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    joints_array = np.asarray(joints, dtype=np.float64).reshape(-1, num_joints, 3)
    return PersonTable(
        image_paths=list(image_index),
        image_of=np.asarray(image_of, dtype=np.int64),
        boxes=boxes_array,
        joints=joints_array,
        sources=sources,
        schema=first.training_schema(mean_heights(boxes_array, joints_array)),
    )


def _person_boxes(dataset: CocoKeypoints, images_dir: Path) -> list[tuple]:
    """Every non-crowd person box of a set, labelled or not, cleaned as CocoKeypoints.persons cleans them."""
    from hrpose_cli.data.coco import PERSON_CATEGORY, PersonRecord

    records = []
    for image_id in dataset.image_ids:
        image = dataset.coco.imgs[image_id]
        width, height = image["width"], image["height"]
        for ann in dataset.coco.imgToAnns.get(image_id, []):
            if ann["category_id"] != PERSON_CATEGORY or ann.get("iscrowd"):
                continue
            x, y, w, h = ann["bbox"]
            x1, y1 = max(0, x), max(0, y)
            x2 = min(width - 1, x1 + max(0, w - 1))
            y2 = min(height - 1, y1 + max(0, h - 1))
            if not (ann.get("area", w * h) > 0 and x2 >= x1 and y2 >= y1):
                continue
            records.append(PersonRecord(image_id=image_id, image_path=Path(images_dir) / image["file_name"],
                                        bbox=np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64),
                                        joints=np.zeros((dataset.num_joints, 3)), area=float(ann.get("area", w * h)),
                                        ann_id=int(ann["id"])))
    return records


def missing_images(table: PersonTable) -> list[int]:
    """Indices of image files that do not exist (checked up front, before any worker starts)."""
    return [i for i, p in enumerate(table.image_paths) if not Path(p).is_file()]


def augment_rng(seed: int, epoch: int, step: int) -> np.random.Generator:
    """The generator of one global batch's augmentation parameters: depends on (seed, epoch, step) only."""
    return np.random.default_rng([seed, _AUGMENT_STREAM, epoch, step])


def mixup_rng(seed: int, epoch: int, step: int) -> np.random.Generator:
    """The generator of one global batch's mixup draws (--mixup), apart from the augmentation's own stream, so
    that turning mixup on leaves every other draw of a run as it was."""
    return np.random.default_rng([seed, _MIXUP_STREAM, epoch, step])


class TrainPlan:
    """Batches of epochs ``first_epoch..epochs`` (1-based) for one rank: a lazy, picklable sequence.

    ``plan[k]`` is a list of (image path, positions) pairs: the images of the k-th batch of this rank, each
    with the positions (0-based, in the batch) of its persons. ``locate(k)`` gives (epoch, step).
    """

    def __init__(
        self,
        table: PersonTable,
        batch: int,
        epochs: int,
        seed: int,
        first_epoch: int = 1,
        rank: int = 0,
        world: int = 1,
    ):
        if len(table) < world:
            raise HrposeError(f"{len(table)} training persons cannot be shared by {world} processes")
        self.image_paths = table.image_paths
        self.image_of = table.image_of
        self.num_persons = len(table)
        self.batch = batch
        self.epochs = epochs
        self.seed = seed
        self.first_epoch = first_epoch
        self.rank = rank
        self.world = world
        self.per_rank = self.num_persons // world  # DistributedSampler(drop_last=True)
        # Whole batches only (the partial last one is dropped; the next epoch's permutation reaches those
        # persons): every step has one shape, so a compiled network compiles once. Tiny sets keep one batch.
        self.steps_per_epoch = max(1, self.per_rank // batch)
        self._cached: tuple[int, np.ndarray] | None = None

    @property
    def global_batch(self) -> int:
        return self.batch * self.world

    @property
    def persons_per_epoch(self) -> int:
        """Persons trained per epoch over all ranks."""
        return min(self.per_rank, self.steps_per_epoch * self.batch) * self.world

    def __len__(self) -> int:
        return max(0, self.epochs - self.first_epoch + 1) * self.steps_per_epoch

    def locate(self, k: int) -> tuple[int, int]:
        return self.first_epoch + k // self.steps_per_epoch, k % self.steps_per_epoch

    def permutation(self, epoch: int) -> np.ndarray:
        """This epoch's order of all persons (the same on every rank), cut to a multiple of the world size."""
        if self._cached is None or self._cached[0] != epoch:
            rng = np.random.default_rng([self.seed, _PERMUTATION_STREAM, epoch])
            self._cached = (epoch, rng.permutation(self.num_persons)[: self.persons_per_epoch])
        return self._cached[1]

    def global_indices(self, epoch: int, step: int) -> np.ndarray:
        """Person indices of the global batch ``step`` of ``epoch`` (all ranks together)."""
        g = self.global_batch
        return self.permutation(epoch)[step * g : (step + 1) * g]

    def rank_indices(self, epoch: int, step: int) -> np.ndarray:
        """This rank's share of the global batch: positions rank, rank + world, ..."""
        return self.global_indices(epoch, step)[self.rank :: self.world]

    def __getitem__(self, k: int) -> list[tuple[Path, tuple[int, ...]]]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        persons = self.rank_indices(*self.locate(k))
        by_image: dict[int, list[int]] = {}
        for position, person in enumerate(persons):
            by_image.setdefault(int(self.image_of[person]), []).append(position)
        return [(Path(self.image_paths[i]), tuple(positions)) for i, positions in by_image.items()]
