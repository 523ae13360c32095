"""Training augmentation as numbers: per-sample crop parameters (half-body, scale, rotation, flip) for a batch.

Only parameters are drawn here, on the host, from a seeded generator (so a resumed run draws the same ones);
the pixels are warped on the device by geometry.warp_crops. ``crop_geometry`` turns the parameters into the
crop matrices and the joints in crop pixels, exactly as the official JointsDataset does per sample: the flip
mirrors the whole image (x -> W - 1 - x, pairs swapped, center mirrored) before the crop.

The 'strong' recipe adds appearance changes for small training sets (``sample_pixel_params`` on the host,
``apply_pixel_params`` to a whole batch of crops on the device): an occluding patch cut from another crop of
the batch, colour jitter, blur (a person seen at lower resolution) and noise. They move no joint, so the
targets stay those of the geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hrpose_cli.core import geometry
from hrpose_cli.core.schema import KeypointSchema

RECIPES = ("seed", "official", "strong")
LUMA = (0.299, 0.587, 0.114)  # RGB weights of grey, as ITU-R BT.601


@dataclass(frozen=True)
class AugmentConfig:
    """The two recipes of HRNET_SPEC.md, 'seed' (the default) and 'official' (the published 74.4 AP run), and
    'strong': the seed geometry plus the appearance changes below."""

    recipe: str = "seed"
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6  # official only; the seed recipe rotates every sample
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5
    flip: bool = True
    # 'strong' only: each change applies to a sample with its probability
    occlusion_prob: float = 0.5
    occlusion_area: tuple[float, float] = (0.03, 0.2)  # fraction of the crop
    jitter: float = 0.35  # brightness and contrast factors in 1 +- jitter; saturation 1 +- 1.5 x jitter
    grey_prob: float = 0.1
    blur_prob: float = 0.3
    blur_sigma: tuple[float, float] = (0.5, 2.5)  # crop pixels
    noise_prob: float = 0.2
    noise_std: tuple[float, float] = (2.0, 10.0)  # of 255

    @property
    def changes_pixels(self) -> bool:
        return self.recipe == "strong"

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
    joints: np.ndarray, visible: np.ndarray, rng: np.random.Generator, aspect_ratio: float, padding: float,
    upper_body: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray] | None:
    """The official half_body_transform: a box around the upper or the lower body's labelled joints.

    Keeps the official coin, ``randn() < 0.5`` (upper body about 69% of the time when it has > 2 joints).
    """
    upper_mask = np.zeros(len(joints), bool)
    upper_mask[list(upper_body)] = True
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
    schema: KeypointSchema,
) -> CropParams:
    """Draw one batch of augmentation parameters for boxes given as center/scale and joints (N, J, 3) of
    ``schema``'s set (its upper body for half-body crops: none, no half-body crops)."""
    n = len(centers)
    centers = np.array(centers, dtype=np.float64)
    scales = np.array(scales, dtype=np.float64)
    rotations = np.zeros(n)
    flips = np.zeros(n, dtype=bool)
    for i in range(n):
        visible = joints[i, :, 2] > 0
        if schema.upper_body and visible.sum() > config.half_body_min_joints and rng.random() < config.half_body_prob:
            box = half_body(joints[i], visible, rng, aspect_ratio, config.half_body_padding, schema.upper_body)
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
    params: CropParams, joints: np.ndarray, image_widths: np.ndarray, output_size: tuple[int, int],
    flip_perm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop->image matrices (N, 2, 3) for the warp and the joints (N, J, 3) in crop pixels for the targets.

    A flipped sample is cropped from the mirrored image around the mirrored center, its joints mirrored and
    their left/right pairs (``flip_perm``, the set's flip_permutation) swapped (visibility too), as the official
    fliplr_joints does.
    """
    widths = np.asarray(image_widths, dtype=np.float64)
    centers = params.centers.copy()
    joints = joints.astype(np.float64).copy()
    f = params.flips
    perm = flip_perm
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


# Columns of the per-sample appearance parameters (PixelParams.values).
PIXEL_COLUMNS = ("x0", "y0", "x1", "y1", "source", "brightness", "contrast", "saturation", "blur", "noise")
BLUR_RADIUS = 7  # taps each side: covers 3 sigma of the widest blur


@dataclass
class PixelParams:
    """Per-sample appearance changes: an (N, len(PIXEL_COLUMNS)) float array, identity where a change is off.

    The occluder is the box x0..x1, y0..y1 (fractions of the crop; empty when x0 == x1) filled from the crop
    at batch position ``source``; brightness, contrast and saturation are factors; blur and noise are a
    Gaussian sigma (crop pixels) and a standard deviation (of 255), 0 for none. ``noise_seed`` seeds the
    batch's noise, so that a resumed run adds the same.
    """

    values: np.ndarray
    noise_seed: int


def sample_pixel_params(rng: np.random.Generator, n: int, config: AugmentConfig) -> PixelParams:
    """Draw the appearance changes of n samples (after the crop parameters, from the same generator)."""
    v = np.zeros((n, len(PIXEL_COLUMNS)))
    col = {name: i for i, name in enumerate(PIXEL_COLUMNS)}
    occlude = rng.random(n) < config.occlusion_prob
    area = rng.uniform(*config.occlusion_area, n)
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3), n))  # width / height, as a fraction of the crop's
    w = np.minimum(np.sqrt(area * aspect), 1.0)
    h = np.minimum(np.sqrt(area / aspect), 1.0)
    x0 = rng.random(n) * (1 - w)
    y0 = rng.random(n) * (1 - h)
    v[:, col["x0"]], v[:, col["y0"]] = x0, y0
    v[:, col["x1"]] = np.where(occlude, x0 + w, x0)
    v[:, col["y1"]] = np.where(occlude, y0 + h, y0)
    v[:, col["source"]] = rng.random(n)  # a fraction of the batch: the rank's share sets the position
    j = config.jitter
    v[:, col["brightness"]] = rng.uniform(1 - j, 1 + j, n)
    v[:, col["contrast"]] = rng.uniform(1 - j, 1 + j, n)
    saturation = rng.uniform(max(0.0, 1 - 1.5 * j), 1 + 1.5 * j, n)
    v[:, col["saturation"]] = np.where(rng.random(n) < config.grey_prob, 0.0, saturation)
    v[:, col["blur"]] = np.where(rng.random(n) < config.blur_prob, rng.uniform(*config.blur_sigma, n), 0.0)
    v[:, col["noise"]] = np.where(rng.random(n) < config.noise_prob, rng.uniform(*config.noise_std, n), 0.0)
    return PixelParams(v, int(rng.integers(0, 2**31)))


def apply_pixel_params(crops: torch.Tensor, params: torch.Tensor, noise_seed: int) -> torch.Tensor:
    """Apply PixelParams.values (on the crops' device) to crops (B, 3, H, W), RGB in [0, 255]; same shape back.

    Order: occluder (from the other crop as warped), saturation, contrast (about the crop's mean grey),
    brightness, blur, noise; then clipped to [0, 255]. Every sample goes through every step (identity where
    its change is off), so nothing here waits for the device.
    """
    b, _, h, w = crops.shape
    p = {name: params[:, i].float() for i, name in enumerate(PIXEL_COLUMNS)}
    device = crops.device
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    inside = ((ys[None, :, None] >= p["y0"][:, None, None]) & (ys[None, :, None] < p["y1"][:, None, None])
              & (xs[None, None, :] >= p["x0"][:, None, None]) & (xs[None, None, :] < p["x1"][:, None, None]))
    source = (p["source"] * b).long().clamp(max=b - 1)
    positions = torch.arange(b, device=device)
    source = torch.where(source == positions, (source + 1) % b, source)
    out = torch.where(inside[:, None], crops[source], crops) if b > 1 else crops
    luma = torch.tensor(LUMA, device=device).view(1, 3, 1, 1)
    grey = (out * luma).sum(1, keepdim=True)
    out = grey + (out - grey) * p["saturation"].view(b, 1, 1, 1)
    mean = (out * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    out = (mean + (out - mean) * p["contrast"].view(b, 1, 1, 1)) * p["brightness"].view(b, 1, 1, 1)
    taps = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps[None] / p["blur"].clamp_min(1e-3)[:, None]) ** 2)  # sigma 0: one tap
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(3, 0)  # (B * 3, taps), separable
    flat = out.reshape(1, b * 3, h, w)
    flat = F.conv2d(F.pad(flat, (BLUR_RADIUS, BLUR_RADIUS, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=b * 3)
    flat = F.conv2d(F.pad(flat, (0, 0, BLUR_RADIUS, BLUR_RADIUS), mode="replicate"), kernel[:, None, :, None], groups=b * 3)
    out = flat.reshape(b, 3, h, w)
    generator = torch.Generator(device=device).manual_seed(noise_seed)
    out = out + torch.randn(out.shape, generator=generator, device=device) * p["noise"].view(b, 1, 1, 1)
    return out.clamp(0, 255)


MIXUP_WEIGHT = (0.5, 1.0)  # the weight of a mixed crop's own pixels


def sample_mixup(rng: np.random.Generator, n: int, probability: float) -> np.ndarray:
    """Mixup draws (N, 2) for one batch: the partner (a fraction of the batch, as the occluder's source) and the
    weight of the crop's own pixels, 1 where the crop is not mixed (probability 1 - ``probability``)."""
    mixed = rng.random(n) < probability
    weight = rng.uniform(*MIXUP_WEIGHT, n)
    partner = rng.random(n)
    return np.stack([partner, np.where(mixed, weight, 1.0)], 1)


def apply_mixup(crops: torch.Tensor, draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend crops (B, 3, H, W) with another crop of the batch: w x own + (1 - w) x partner, for sample_mixup's
    draws on the crops' device; returns the crops and which were mixed (B,) bool. A batch of one is left as is."""
    b = crops.shape[0]
    weight = draws[:, 1].float()
    if b < 2:
        return crops, torch.zeros(b, dtype=torch.bool, device=crops.device)
    partner = (draws[:, 0].float() * b).long().clamp(max=b - 1)
    positions = torch.arange(b, device=crops.device)
    partner = torch.where(partner == positions, (partner + 1) % b, partner)
    w = weight.view(b, 1, 1, 1)
    return w * crops + (1 - w) * crops[partner], weight < 1
