"""The COCO-17 keypoint schema: the one home of joint names, flip pairs, OKS sigmas, loss weights and the skeleton."""

from __future__ import annotations

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_JOINTS = len(KEYPOINT_NAMES)

FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# COCO's per-joint OKS sigmas, exactly as pycocotools' COCOeval uses them.
OKS_SIGMAS = np.array(
    [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]
) / 10.0

# Per-joint loss weights of the seed design: elbows/knees 1.2, wrists/ankles 1.5, the rest 1.0.
JOINT_WEIGHTS = np.array([1.0] * 7 + [1.2, 1.2, 1.5, 1.5] + [1.0, 1.0] + [1.2, 1.2, 1.5, 1.5], dtype=np.float32)

# Half-body augmentation splits the joints into the upper body (these) and the lower body (the rest).
UPPER_BODY_JOINTS: tuple[int, ...] = tuple(range(11))

# Limbs for drawing, as 0-based joint index pairs (COCO's skeleton, converted from its 1-based list).
SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)


def flip_permutation(num_joints: int = NUM_JOINTS, pairs: tuple[tuple[int, int], ...] = FLIP_PAIRS) -> np.ndarray:
    """Index array that swaps left and right joints: ``flipped = joints[perm]``."""
    perm = np.arange(num_joints)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


def joint_side(index: int) -> str:
    """'left', 'right' or 'center' for a joint, from its name; drawings colour by side."""
    name = KEYPOINT_NAMES[index]
    return "left" if name.startswith("left") else "right" if name.startswith("right") else "center"
