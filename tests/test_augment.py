"""Training augmentation parameters and crop geometry against the official per-sample pipeline."""

import cv2
import numpy as np
import torch

from hrpose_cli.core import geometry
from hrpose_cli.core.schema import FLIP_PAIRS
from hrpose_cli.data.augment import AugmentConfig, CropParams, crop_geometry, half_body, sample_crop_params


def test_flipped_crop_equals_official_mirror_then_warp():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (5, 5), 2)
    joints = np.zeros((1, 17, 3))
    joints[0, :, 0] = rng.uniform(50, 250, 17)
    joints[0, :, 1] = rng.uniform(40, 200, 17)
    joints[0, :, 2] = 2
    joints[0, 3, 2] = 0
    params = CropParams(np.array([[150.0, 120.0]]), np.array([[0.9, 1.2]]), np.array([20.0]), np.array([True]))
    crop_to_image, crop_joints = crop_geometry(params, joints, np.array([320]), (192, 256))

    # Official: mirror the image and the joints (pairs swapped), mirror the center, then warp.
    flipped = image[:, ::-1].copy()
    ref_joints = joints[0].copy()
    ref_joints[:, 0] = 320 - ref_joints[:, 0] - 1
    for a, b in FLIP_PAIRS:
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
    center, scale = half_body(joints, visible, np.random.default_rng(0), 0.75, 1.5)
    assert np.allclose(center, [20, 150])
    # 20 x 100 box -> width grows to 75 for the 0.75 aspect; then /200 and x1.5.
    assert np.allclose(scale, [75 / 200 * 1.5, 100 / 200 * 1.5])


def test_sample_crop_params_ranges_for_both_recipes():
    n = 4000
    centers = np.tile([[100.0, 100.0]], (n, 1))
    scales = np.ones((n, 2))
    joints = np.zeros((n, 17, 3))  # nothing labelled: no half-body
    seed = sample_crop_params(np.random.default_rng(0), centers, scales, joints, AugmentConfig("seed"), 0.75)
    assert seed.rotations.min() >= -45 and seed.rotations.max() <= 45 and (seed.rotations != 0).all()
    assert seed.scales.min() >= 0.65 and seed.scales.max() <= 1.35
    assert 0.45 < seed.flips.mean() < 0.55
    official = sample_crop_params(np.random.default_rng(0), centers, scales, joints, AugmentConfig("official"), 0.75)
    assert 0.35 < (official.rotations == 0).mean() < 0.45  # rotation with p = 0.6
    assert official.rotations.min() >= -90 and official.rotations.max() <= 90
    again = sample_crop_params(np.random.default_rng(0), centers, scales, joints, AugmentConfig("official"), 0.75)
    assert np.array_equal(again.rotations, official.rotations)  # seeded: a resumed run draws the same
