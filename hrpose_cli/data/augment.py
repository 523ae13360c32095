"""Training augmentation as numbers: per-sample crop parameters (half-body, scale, rotation, flip) for a batch.

Only parameters are drawn here, on the host, from a seeded generator (so a resumed run draws the same ones);
the pixels are warped on the device by geometry.warp_crops. ``crop_geometry`` turns the parameters into the
crop matrices and the joints in crop pixels, exactly as the official JointsDataset does per sample: the flip
mirrors the whole image (x -> W - 1 - x, pairs swapped, center mirrored) before the crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpose_cli.core import geometry
from hrpose_cli.core.schema import UPPER_BODY_JOINTS, flip_permutation

RECIPES = ("seed", "official")


@dataclass(frozen=True)
class AugmentConfig:
    """The two recipes of HRNET_SPEC.md: 'seed' (the default) and 'official' (the published 74.4 AP run)."""

    recipe: str = "seed"
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6  # official only; the seed recipe rotates every sample
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5
    flip: bool = True

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; expected one of {', '.join(RECIPES)}")


@dataclass
class CropParams:
    """Per-sample crop parameters: center and scale (after half-body and scaling), rotation in degrees, flip."""

    centers: np.ndarray  # (N, 2)
    scales: np.ndarray  # (N, 2)
    rotations: np.ndarray  # (N,)
    flips: np.ndarray  # (N,) bool


def half_body(
    joints: np.ndarray, visible: np.ndarray, rng: np.random.Generator, aspect_ratio: float, padding: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The official half_body_transform: a box around the upper or the lower body's labelled joints.

    Keeps the official coin, ``randn() < 0.5`` (upper body about 69% of the time when it has > 2 joints).
    """
    upper_mask = np.zeros(len(joints), bool)
    upper_mask[list(UPPER_BODY_JOINTS)] = True
    upper = joints[visible & upper_mask, :2]
    lower = joints[visible & ~upper_mask, :2]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None
    center = selected.mean(axis=0)
    w, h = selected.max(axis=0) - selected.min(axis=0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) / geometry.PIXEL_STD * padding


def sample_crop_params(
    rng: np.random.Generator,
    centers: np.ndarray,
    scales: np.ndarray,
    joints: np.ndarray,
    config: AugmentConfig,
    aspect_ratio: float,
) -> CropParams:
    """Draw one batch of augmentation parameters for boxes given as center/scale and joints (N, J, 3)."""
    n = len(centers)
    centers = np.array(centers, dtype=np.float64)
    scales = np.array(scales, dtype=np.float64)
    rotations = np.zeros(n)
    flips = np.zeros(n, dtype=bool)
    for i in range(n):
        visible = joints[i, :, 2] > 0
        if visible.sum() > config.half_body_min_joints and rng.random() < config.half_body_prob:
            box = half_body(joints[i], visible, rng, aspect_ratio, config.half_body_padding)
            if box is not None:
                centers[i], scales[i] = box
        sf, rf = config.scale_factor, config.rotation_factor
        if config.recipe == "official":
            scales[i] *= np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
            rotations[i] = np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf) if rng.random() <= config.rotation_prob else 0.0
        else:
            scales[i] *= rng.uniform(1 - sf, 1 + sf)
            rotations[i] = rng.uniform(-rf, rf)
        flips[i] = config.flip and rng.random() <= 0.5
    return CropParams(centers, scales, rotations, flips)


def crop_geometry(
    params: CropParams, joints: np.ndarray, image_widths: np.ndarray, output_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Crop->image matrices (N, 2, 3) for the warp and the joints (N, J, 3) in crop pixels for the targets.

    A flipped sample is cropped from the mirrored image around the mirrored center, its joints mirrored and
    their left/right pairs swapped (visibility too), as the official fliplr_joints does.
    """
    widths = np.asarray(image_widths, dtype=np.float64)
    centers = params.centers.copy()
    joints = joints.astype(np.float64).copy()
    f = params.flips
    perm = flip_permutation(joints.shape[1])
    centers[f, 0] = widths[f] - centers[f, 0] - 1
    mirrored = joints[f][:, perm]
    mirrored[..., 0] = widths[f, None] - mirrored[..., 0] - 1
    joints[f] = mirrored
    image_to_crop = geometry.crop_matrices(centers, params.scales, output_size, params.rotations)
    crop_to_image = geometry.crop_matrices(centers, params.scales, output_size, params.rotations, inverse=True)
    if f.any():
        crop_to_image[f] = geometry.compose(geometry.mirror_matrix(widths[f]), crop_to_image[f])
    crop_joints = joints.copy()
    crop_joints[..., :2] = geometry.apply_affine(joints[..., :2], image_to_crop)
    return crop_to_image, crop_joints
