"""Training augmentation parameters and crop geometry against the official per-sample pipeline."""

import cv2
import numpy as np
import torch

from hrpose_cli.core import geometry
from hrpose_cli.core.schema import COCO17
from hrpose_cli.data.augment import (PIXEL_COLUMNS, AugmentConfig, CropParams, apply_pixel_params, crop_geometry, half_body,
                                     sample_crop_params, sample_pixel_params)


def test_flipped_crop_equals_official_mirror_then_warp():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (5, 5), 2)
    joints = np.zeros((1, 17, 3))
    joints[0, :, 0] = rng.uniform(50, 250, 17)
    joints[0, :, 1] = rng.uniform(40, 200, 17)
    joints[0, :, 2] = 2
    joints[0, 3, 2] = 0
    params = CropParams(np.array([[150.0, 120.0]]), np.array([[0.9, 1.2]]), np.array([20.0]), np.array([True]))
    crop_to_image, crop_joints = crop_geometry(params, joints, np.array([320]), (192, 256), COCO17.flip_permutation())

    # Official: mirror the image and the joints (pairs swapped), mirror the center, then warp.
    flipped = image[:, ::-1].copy()
    ref_joints = joints[0].copy()
    ref_joints[:, 0] = 320 - ref_joints[:, 0] - 1
    for a, b in COCO17.flip_pairs:
        ref_joints[[a, b]] = ref_joints[[b, a]]
    center = np.array([[320 - 150.0 - 1, 120.0]])
    trans = geometry.crop_matrices(center, params.scales, (192, 256), params.rotations)
    ref_crop = cv2.warpAffine(flipped, trans[0], (192, 256), flags=cv2.INTER_LINEAR)
    ref_xy = geometry.apply_affine(ref_joints[None, :, :2], trans)[0]
    assert np.allclose(crop_joints[0, :, :2], ref_xy)
    assert np.array_equal(crop_joints[0, :, 2], ref_joints[:, 2]) and crop_joints[0, 4, 2] == 0  # vis swapped

    pixels = torch.from_numpy(image.reshape(-1))
    crop = geometry.warp_crops(pixels, torch.tensor([0]), torch.tensor([[240, 320]]), torch.tensor([0]),
                               torch.from_numpy(crop_to_image), (192, 256))
    ours = crop[0].permute(1, 2, 0).numpy()[:, :, ::-1]
    assert np.abs(ours - ref_crop).mean() < 0.6


def test_half_body_hand_checked():
    joints = np.zeros((17, 2))
    joints[11:17] = [[10, 100], [30, 100], [10, 150], [30, 150], [10, 200], [30, 200]]
    visible = np.zeros(17, bool)
    visible[11:17] = True  # only the lower body is labelled, so it is chosen whatever the coin says
    center, scale = half_body(joints, visible, np.random.default_rng(0), 0.75, 1.5, COCO17.upper_body)
    assert np.allclose(center, [20, 150])
    # 20 x 100 box -> width grows to 75 for the 0.75 aspect; then /200 and x1.5.
    assert np.allclose(scale, [75 / 200 * 1.5, 100 / 200 * 1.5])


def test_sample_crop_params_ranges_for_both_recipes():
    n = 4000
    centers = np.tile([[100.0, 100.0]], (n, 1))
    scales = np.ones((n, 2))
    joints = np.zeros((n, 17, 3))  # nothing labelled: no half-body
    seed = sample_crop_params(np.random.default_rng(0), centers, scales, joints, AugmentConfig("seed"), 0.75, COCO17)
    assert seed.rotations.min() >= -45 and seed.rotations.max() <= 45 and (seed.rotations != 0).all()
    assert seed.scales.min() >= 0.65 and seed.scales.max() <= 1.35
    assert 0.45 < seed.flips.mean() < 0.55
    official = sample_crop_params(np.random.default_rng(0), centers, scales, joints, AugmentConfig("official"), 0.75, COCO17)
    assert 0.35 < (official.rotations == 0).mean() < 0.45  # rotation with p = 0.6
    assert official.rotations.min() >= -90 and official.rotations.max() <= 90
    again = sample_crop_params(np.random.default_rng(0), centers, scales, joints, AugmentConfig("official"), 0.75, COCO17)
    assert np.array_equal(again.rotations, official.rotations)  # seeded: a resumed run draws the same


def _identity(n: int) -> torch.Tensor:
    values = np.zeros((n, len(PIXEL_COLUMNS)), dtype=np.float32)
    for name in ("brightness", "contrast", "saturation"):
        values[:, PIXEL_COLUMNS.index(name)] = 1
    return torch.from_numpy(values)


def test_pixel_changes_hand_checked():
    crops = torch.from_numpy(np.random.default_rng(0).uniform(20, 230, (3, 3, 16, 12))).float()
    identity = _identity(3)
    assert torch.allclose(apply_pixel_params(crops, identity, 0), crops, atol=1e-4)
    # An occluder over the left half of the top quarter of crop 0, taken from crop 2 (source 0.9 x 3 -> 2).
    p = identity.clone()
    col = PIXEL_COLUMNS.index
    p[0, col("x1")], p[0, col("y1")], p[0, col("source")] = 0.5, 0.25, 0.9
    out = apply_pixel_params(crops, p, 0)
    assert torch.allclose(out[0, :, :4, :6], crops[2, :, :4, :6], atol=1e-4)
    assert torch.allclose(out[0, :, 4:], crops[0, :, 4:], atol=1e-4) and torch.allclose(out[1:], crops[1:], atol=1e-4)
    # A crop never occludes itself: source 0.0 at position 0 takes the next crop.
    p[0, col("source")] = 0.0
    assert torch.allclose(apply_pixel_params(crops, p, 0)[0, :, :4, :6], crops[1, :, :4, :6], atol=1e-4)
    # Saturation 0 is grey (BT.601); brightness scales; contrast keeps the mean grey; blur keeps a flat crop flat.
    p = identity.clone()
    p[0, col("saturation")], p[1, col("brightness")], p[2, col("contrast")] = 0, 0.5, 0
    out = apply_pixel_params(crops, p, 0)
    grey = (crops[0] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0)
    assert torch.allclose(out[0], grey.expand(3, -1, -1), atol=1e-3)
    assert torch.allclose(out[1], crops[1] * 0.5, atol=1e-3)
    mean_grey = (crops[2] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0).mean()
    assert torch.allclose(out[2], mean_grey.expand(3, 16, 12), atol=1e-3)
    flat = torch.full((1, 3, 16, 12), 100.0)
    p = _identity(1)
    p[0, col("blur")], p[0, col("noise")] = 2.0, 0.0
    assert torch.allclose(apply_pixel_params(flat, p, 0), flat, atol=1e-3)
    # Noise is seeded: the same seed adds the same noise, another seed other noise; pixels stay in [0, 255].
    p[0, col("noise")] = 50.0
    a, b, c = (apply_pixel_params(flat * 2.5, p, seed) for seed in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.min() >= 0 and a.max() <= 255 and (a - 250).std() > 10


def test_sample_pixel_params_ranges_and_recipes():
    config = AugmentConfig("strong")
    params = sample_pixel_params(np.random.default_rng(0), 4000, config)
    v = {name: params.values[:, i] for i, name in enumerate(PIXEL_COLUMNS)}
    occluded = v["x1"] > v["x0"]
    assert abs(occluded.mean() - config.occlusion_prob) < 0.03
    area = ((v["x1"] - v["x0"]) * (v["y1"] - v["y0"]))[occluded]
    assert area.min() >= 0.03 - 1e-9 and area.max() <= 0.2 + 1e-9  # sides of at most sqrt(0.2 x 3) < 1: never clipped
    assert v["x1"].max() <= 1 and v["y1"].max() <= 1 and v["x0"].min() >= 0 and v["y0"].min() >= 0
    assert (v["brightness"] >= 0.65).all() and (v["brightness"] <= 1.35).all()
    assert abs((v["saturation"] == 0).mean() - config.grey_prob) < 0.02
    assert abs((v["blur"] > 0).mean() - config.blur_prob) < 0.03 and v["blur"].max() <= 2.5
    assert abs((v["noise"] > 0).mean() - config.noise_prob) < 0.03
    again = sample_pixel_params(np.random.default_rng(0), 4000, config)
    assert np.array_equal(again.values, params.values) and again.noise_seed == params.noise_seed
    assert AugmentConfig("strong").changes_pixels and not AugmentConfig("seed").changes_pixels
