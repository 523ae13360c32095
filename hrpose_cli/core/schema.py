"""Keypoint schemas: what a keypoint set is (joint names, flip pairs, OKS sigmas, loss weights, skeleton, the
upper body for half-body crops, each joint's drawing side), as one value passed to every place that needs it.

COCO17 is one instance. Any other set is read from its COCO annotation file's category (``keypoints`` names and
the 1-based ``skeleton``) by ``from_category``: flip pairs from left/right names, loss weights from joint names,
the upper body from where the joints lie in the training boxes, OKS sigmas given or one uniform value.
A trained model carries its schema in its checkpoint (``to_dict``/``from_dict``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from hrpose_cli.errors import HrposeError

# One sigma for every joint of a set whose own sigmas are not given: the mean of COCO's 17 (0.0669), so that a
# typical joint is judged about as strictly as a typical COCO joint. AP with it is not comparable to COCO's.
UNIFORM_SIGMA = 0.067

_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SIDES = {"left": "left", "l": "left", "right": "right", "r": "right"}
# Loss weights by joint name (the seed design's COCO weights, for any set that names these joints).
_NAME_WEIGHTS = {"elbow": 1.2, "knee": 1.2, "wrist": 1.5, "ankle": 1.5}


def name_tokens(name: str) -> tuple[str, ...]:
    """'left_ear', 'Left Ear', 'leftEar', 'ear-left' -> lowercase words; the units side and weight rules read."""
    return tuple(t.lower() for t in _TOKEN.findall(name))


def normalised(name: str) -> str:
    """A name compared across spellings: 'Left Eye' and 'left_eye' are one joint."""
    return "_".join(name_tokens(name))


def name_side(name: str) -> str:
    """'left', 'right' or 'center' from a left/right (or l/r) word anywhere in the name."""
    return next((_SIDES[t] for t in name_tokens(name) if t in _SIDES), "center")


def infer_flip_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Pairs of joints whose names differ only in a left/right word: left_ear/right_ear, l_ear/r_ear,
    ear_left/ear_right, eyeL/eyeR. A name whose twin is missing (or ambiguous) is its own mirror."""
    groups: dict[tuple[str, ...], dict[str, list[int]]] = {}
    for i, name in enumerate(names):
        tokens = name_tokens(name)
        at = next((k for k, t in enumerate(tokens) if t in _SIDES), None)
        if at is None:
            continue
        key = tokens[:at] + ("*",) + tokens[at + 1 :]
        groups.setdefault(key, {"left": [], "right": []})[_SIDES[tokens[at]]].append(i)
    pairs = [(g["left"][0], g["right"][0]) for g in groups.values() if len(g["left"]) == 1 and len(g["right"]) == 1]
    return tuple(sorted(pairs))


def infer_joint_weights(names: Sequence[str]) -> tuple[float, ...]:
    """Elbows and knees 1.2, wrists and ankles 1.5, every other joint 1.0 (COCO's seed weights, by name)."""
    return tuple(max([_NAME_WEIGHTS.get(t, 1.0) for t in name_tokens(n)] or [1.0]) for n in names)


def infer_upper_body(names: Sequence[str], mean_y: np.ndarray | None,
                     flip_pairs: Sequence[tuple[int, int]] = ()) -> tuple[int, ...]:
    """Joints above the hips by their mean height in the person boxes (``mean_y``: per joint, 0 top, 1 bottom,
    NaN where never labelled); without joints named hip, the upper half of the joints by mean height. The two
    joints of a flip pair share their mean, so that both sides fall on the same side of the line.
    Empty without ``mean_y`` (then half-body crops are off)."""
    if mean_y is None:
        return ()
    y = np.array(mean_y, dtype=np.float64)
    for a, b in flip_pairs:
        y[a] = y[b] = np.nanmean([y[a], y[b]]) if np.isfinite([y[a], y[b]]).any() else np.nan
    hips = [i for i, n in enumerate(names) if {"hip", "hips"} & set(name_tokens(n)) and np.isfinite(y[i])]
    if hips:
        line = float(np.mean(y[hips]))
        return tuple(i for i in range(len(names)) if np.isfinite(y[i]) and y[i] < line and i not in hips)
    finite = np.flatnonzero(np.isfinite(y))
    if len(finite) < 2:
        return ()
    line = float(np.median(y[finite]))
    return tuple(int(i) for i in finite if y[i] < line)


@dataclass(frozen=True)
class KeypointSchema:
    """One keypoint set. Indices are 0-based; ``sigmas_source`` says where the OKS sigmas came from:
    'coco' (COCO's published ones), 'given' (--sigmas) or 'uniform' (UNIFORM_SIGMA for every joint)."""

    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    joint_weights: tuple[float, ...]
    upper_body: tuple[int, ...]
    category: str = "person"
    sigmas_source: str = "given"

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        for field in ("skeleton", "flip_pairs"):
            object.__setattr__(self, field, tuple((int(a), int(b)) for a, b in getattr(self, field)))
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        object.__setattr__(self, "joint_weights", tuple(float(w) for w in self.joint_weights))
        object.__setattr__(self, "upper_body", tuple(int(j) for j in self.upper_body))
        k = len(self.names)
        if k == 0:
            raise ValueError("a keypoint set needs at least one keypoint")
        if len({normalised(n) for n in self.names}) != k:
            raise ValueError("keypoint names are not unique")
        for what, values in (("sigmas", self.sigmas), ("joint weights", self.joint_weights)):
            if len(values) != k:
                raise ValueError(f"{len(values)} {what} for {k} keypoints")
        if not all(np.isfinite(s) and s > 0 for s in self.sigmas):
            raise ValueError("sigmas must be positive numbers")
        if not all(np.isfinite(w) and w >= 0 for w in self.joint_weights):
            raise ValueError("joint weights must be numbers of at least 0")
        indices = [j for pair in self.skeleton + self.flip_pairs for j in pair] + list(self.upper_body)
        if any(not 0 <= j < k for j in indices):
            raise ValueError(f"a joint index is outside 0..{k - 1}")
        flipped = [j for pair in self.flip_pairs for j in pair]
        if len(set(flipped)) != len(flipped) or any(a == b for a, b in self.flip_pairs):
            raise ValueError("each joint may be in at most one flip pair, with another joint")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def oks_sigmas(self) -> np.ndarray:
        return np.array(self.sigmas, dtype=np.float64)

    @property
    def weights(self) -> np.ndarray:
        return np.array(self.joint_weights, dtype=np.float32)

    def flip_permutation(self) -> np.ndarray:
        """Index array that swaps left and right joints: ``flipped = joints[perm]``."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def side(self, index: int) -> str:
        """'left', 'right' or 'center' for a joint, from its name; drawings colour by side."""
        return name_side(self.names[index])

    def limb_side(self, a: int, b: int) -> str:
        """A limb's side: its joints' side, the side of its non-centre joint, or 'center' for left-right links."""
        side_a, side_b = self.side(a), self.side(b)
        if side_a == side_b:
            return side_a
        if "center" in (side_a, side_b):
            return side_b if side_a == "center" else side_a
        return "center"

    def index(self, name_or_index: str, option: str) -> int:
        """A joint named (in any spelling) or numbered on the command line; one-line error naming ``option``."""
        text = name_or_index.strip()
        lookup = {normalised(n): i for i, n in enumerate(self.names)}
        if text.isdigit() and int(text) < self.num_joints:
            return int(text)
        if normalised(text) in lookup:
            return lookup[normalised(text)]
        raise HrposeError(f"{option}: no keypoint {text!r}; the set has {', '.join(self.names)} (or indices 0-{self.num_joints - 1})")

    def same_set(self, other: KeypointSchema) -> bool:
        return [normalised(n) for n in self.names] == [normalised(n) for n in other.names]

    def uniform_sigma_warning(self) -> str | None:
        """The caveat to print when AP is computed with UNIFORM_SIGMA rather than the set's own sigmas."""
        if self.sigmas_source != "uniform":
            return None
        return (f"no --sigmas for the {self.num_joints} keypoints of '{self.category}': OKS uses one sigma, "
                f"{self.sigmas[0]:g} (the mean of COCO's 17 per-joint sigmas), for every joint, so AP is not comparable "
                "to COCO's or to AP with the set's own sigmas; pass --sigmas s1,s2,... (one per keypoint)")

    def describe(self) -> str:
        """One line for the train banner: the set, its flip pairs and upper body."""
        pairs = ", ".join(f"{self.names[a]}:{self.names[b]}" for a, b in self.flip_pairs) or "none"
        upper = ", ".join(self.names[j] for j in self.upper_body) or "none (half-body crops off)"
        return (f"keypoints ({self.num_joints}, '{self.category}'): {', '.join(self.names)}; flip pairs: {pairs}; "
                f"upper body: {upper}; OKS sigmas: {self.sigmas_source}")

    # -- files ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A checkpoint's "keypoints" entry (and ONNX metadata): lists, numbers and strings only."""
        return {
            "names": list(self.names),
            "skeleton": [list(p) for p in self.skeleton],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "sigmas": list(self.sigmas),
            "sigmas_source": self.sigmas_source,
            "joint_weights": list(self.joint_weights),
            "upper_body": list(self.upper_body),
            "category": self.category,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str) -> KeypointSchema:
        """The inverse of to_dict (COCO-17's entry gives COCO17 itself, the one instance); a bad entry is a
        one-line error naming ``source``."""
        try:
            schema = cls(
                names=tuple(data["names"]),
                skeleton=tuple(tuple(p) for p in data["skeleton"]),
                flip_pairs=tuple(tuple(p) for p in data["flip_pairs"]),
                sigmas=tuple(data["sigmas"]),
                joint_weights=tuple(data["joint_weights"]),
                upper_body=tuple(data["upper_body"]),
                category=str(data.get("category", "person")),
                sigmas_source=str(data.get("sigmas_source", "given")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise HrposeError(f"{source}: bad keypoint set ({type(err).__name__}: {err})") from None
        return COCO17 if schema == COCO17 else schema

    def with_options(
        self,
        sigmas: Sequence[float] | None = None,
        flip_pairs: Sequence[tuple[int, int]] | None = None,
        joint_weights: Sequence[float] | None = None,
        upper_body: Sequence[int] | None = None,
    ) -> KeypointSchema:
        """This set with the given parts replaced (command-line overrides of the inferred ones)."""
        changes: dict[str, Any] = {}
        if sigmas is not None:
            changes.update(sigmas=tuple(sigmas), sigmas_source="given")
        if flip_pairs is not None:
            changes["flip_pairs"] = tuple(flip_pairs)
        if joint_weights is not None:
            changes["joint_weights"] = tuple(joint_weights)
        if upper_body is not None:
            changes["upper_body"] = tuple(upper_body)
        return replace(self, **changes) if changes else self


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO17 = KeypointSchema(
    names=_COCO_NAMES,
    # COCO's skeleton, converted from its 1-based list.
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO's per-joint OKS sigmas, exactly as pycocotools' COCOeval uses them.
    sigmas=tuple(s / 10.0 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89)),
    joint_weights=infer_joint_weights(_COCO_NAMES),  # the seed design's: elbows/knees 1.2, wrists/ankles 1.5
    upper_body=tuple(range(11)),  # nose to wrists, as the official half_body_transform
    category="person",
    sigmas_source="coco",
)


def unnamed(num_joints: int) -> KeypointSchema:
    """The set of a network that names none (an official checkpoint of K != 17 joints): numbered joints, no
    flip pairs or skeleton, uniform sigmas."""
    return KeypointSchema(tuple(f"joint_{i}" for i in range(num_joints)), (), (), (UNIFORM_SIGMA,) * num_joints,
                          (1.0,) * num_joints, (), "object", "uniform")


def for_joints(num_joints: int) -> KeypointSchema:
    """The set of a model file that carries none: COCO-17 for 17 joints (official and older hrpose files)."""
    return COCO17 if num_joints == COCO17.num_joints else unnamed(num_joints)


def from_category(
    category: Mapping[str, Any],
    source: str,
    mean_y: np.ndarray | None = None,
) -> KeypointSchema:
    """The schema an annotation file's keypoint category defines (see the module docstring).

    COCO's 17 names (in any spelling) give COCO17 itself, so COCO data keeps COCO's sigmas, weights and upper
    body. ``mean_y`` (per joint, mean height in the boxes) decides the upper body of other sets.
    """
    names = category.get("keypoints") if isinstance(category, Mapping) else None
    label = f"category {category.get('id')!r} ({category.get('name', '?')})" if isinstance(category, Mapping) else "category"
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise HrposeError(f"{source}: {label} has no 'keypoints' list of names; hrpose reads the keypoint set from it")
    if len({normalised(n) for n in names}) != len(names):
        raise HrposeError(f"{source}: {label} names a keypoint twice")
    if [normalised(n) for n in names] == list(COCO17.names):
        return COCO17
    k = len(names)
    skeleton = []
    for link in category.get("skeleton") or []:
        if not (isinstance(link, list) and len(link) == 2 and all(isinstance(j, int) and 1 <= j <= k for j in link)):
            raise HrposeError(f"{source}: {label}: skeleton link {link!r} is not two keypoint numbers 1..{k} (COCO skeletons are 1-based)")
        skeleton.append((link[0] - 1, link[1] - 1))
    pairs = infer_flip_pairs(names)
    return KeypointSchema(
        names=tuple(names),
        skeleton=tuple(skeleton),
        flip_pairs=pairs,
        sigmas=(UNIFORM_SIGMA,) * k,
        joint_weights=infer_joint_weights(names),
        upper_body=infer_upper_body(names, mean_y, pairs),
        category=str(category.get("name", "object")),
        sigmas_source="uniform",
    )


def mean_heights(boxes: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Per joint, its mean height in the person boxes (0 top, 1 bottom) over the persons that label it."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    joints = np.asarray(joints, dtype=np.float64)
    rel = (joints[..., 1] - boxes[:, 1:2]) / np.maximum(boxes[:, 3:4], 1e-6)
    labelled = joints[..., 2] > 0
    count = labelled.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(labelled, rel, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)


def parse_pairs(text: str, schema: KeypointSchema, option: str = "--flip-pairs") -> tuple[tuple[int, int], ...]:
    """'left_ear:right_ear,3:4' (names or indices) -> index pairs; '' or 'none' -> no pairs."""
    if text.strip().lower() in ("", "none"):
        return ()
    pairs = []
    for part in text.split(","):
        ends = part.split(":")
        if len(ends) != 2:
            raise HrposeError(f"{option} {text!r}: expected pairs a:b separated by commas, e.g. left_ear:right_ear")
        pairs.append((schema.index(ends[0], option), schema.index(ends[1], option)))
    try:
        schema.with_options(flip_pairs=pairs)
    except ValueError as err:
        raise HrposeError(f"{option} {text!r}: {err}") from None
    return tuple(pairs)


def parse_joint_list(text: str, schema: KeypointSchema, option: str) -> tuple[int, ...]:
    """'nose,left_eye,5' -> indices; '' or 'none' -> none."""
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(schema.index(part, option) for part in text.split(","))


def checked_values(values: Sequence[float], schema: KeypointSchema, option: str, what: str,
                   positive: bool = True) -> tuple[float, ...]:
    """One finite number per keypoint (positive, or at least 0), else a one-line error naming the option."""
    values = tuple(float(v) for v in values)
    if len(values) != schema.num_joints:
        raise HrposeError(f"{option}: {len(values)} {what} given, but the set has {schema.num_joints} keypoints "
                          f"({', '.join(schema.names)})")
    if not all(np.isfinite(v) and (v > 0 if positive else v >= 0) for v in values):
        raise HrposeError(f"{option}: {what} must be {'positive' if positive else 'non-negative'} numbers")
    return values
