"""Box-to-crop geometry against hand-checked values and the official three-point construction."""

import cv2
import numpy as np
import torch

from hrpose_cli.core import geometry


def official_affine(center, scale, rot, output_size, inv=False):
    """The official get_affine_transform, three points through cv2.getAffineTransform."""
    scale_tmp = np.asarray(scale) * 200.0
    src_w = scale_tmp[0]
    dst_w, dst_h = output_size
    rad = np.pi * rot / 180

    def rotate(p):
        sn, cs = np.sin(rad), np.cos(rad)
        return np.array([p[0] * cs - p[1] * sn, p[0] * sn + p[1] * cs])

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]])

    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + rotate([0, src_w * -0.5])
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + np.array([0, dst_w * -0.5])
    src[2] = third(src[0], src[1])
    dst[2] = third(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def test_box_to_center_scale_hand_checked():
    # 100x100 box at (10, 20): too wide for 0.75, so the height grows to 133.33; then x1.25 and /200.
    center, scale = geometry.box_to_center_scale(np.array([[10, 20, 100, 100]]), aspect_ratio=0.75)
    assert np.allclose(center, [[60, 70]])
    assert np.allclose(scale, [[100 / 200 * 1.25, (100 / 0.75) / 200 * 1.25]])
    # 30x200 box: too tall, so the width grows to 150.
    center, scale = geometry.box_to_center_scale(np.array([[0, 0, 30, 200]]), aspect_ratio=0.75)
    assert np.allclose(center, [[15, 100]])
    assert np.allclose(scale, [[150 / 200 * 1.25, 200 / 200 * 1.25]])


def test_padded_areas_hand_checked():
    # 60x100 at 0.75: too tall, the width grows to 75; padded x1.25 to 93.75 x 125 (the official OKS-NMS area).
    areas = geometry.padded_areas(np.array([[5, 5, 60, 100], [0, 0, 100, 100]]), aspect_ratio=0.75)
    assert np.allclose(areas, [93.75 * 125, 125 * (100 / 0.75 * 1.25)])


def test_crop_matrices_equal_official_three_point_construction():
    rng = np.random.default_rng(0)
    for _ in range(20):
        center = rng.uniform(0, 600, 2)
        scale = rng.uniform(0.2, 3, 2)
        rot = rng.uniform(-90, 90)
        for size in [(192, 256), (288, 384)]:
            for inv in (False, True):
                ours = geometry.crop_matrices(center, scale, size, rot, inverse=inv)[0]
                ref = official_affine(center, scale, rot, size, inv=inv)
                assert np.allclose(ours, ref, rtol=1e-4, atol=1e-3), (ours, ref)


def test_center_maps_to_crop_middle_and_back():
    m = geometry.crop_matrices(np.array([[300.0, 200.0]]), np.array([[1.0, 4 / 3]]), (192, 256), 30.0)
    inv = geometry.crop_matrices(np.array([[300.0, 200.0]]), np.array([[1.0, 4 / 3]]), (192, 256), 30.0, inverse=True)
    pts = geometry.apply_affine(np.array([[[300.0, 200.0], [310.0, 180.0]]]), m)
    assert np.allclose(pts[0, 0], [96, 128])
    back = geometry.apply_affine(pts, inv)
    assert np.allclose(back, [[[300.0, 200.0], [310.0, 180.0]]])
    # 200 image pixels across -> 192 crop pixels: 0.96 crop pixels per image pixel.
    assert np.isclose(np.linalg.norm(pts[0, 1] - pts[0, 0]), 0.96 * np.hypot(10, 20))


def test_mirror_and_compose():
    mirror = geometry.mirror_matrix(np.array([640]))
    assert np.allclose(geometry.apply_affine(np.array([[[0.0, 5.0], [639.0, 7.0]]]), mirror), [[[639, 5], [0, 7]]])
    twice = geometry.compose(mirror, mirror)
    assert np.allclose(twice, [[[1, 0, 0], [0, 1, 0]]])


def _pack(images):
    flat = torch.cat([torch.from_numpy(np.ascontiguousarray(im)).reshape(-1) for im in images])
    sizes = torch.tensor([im.size for im in images])
    offsets = torch.cumsum(sizes, 0) - sizes
    shapes = torch.tensor([im.shape[:2] for im in images])
    return flat, offsets, shapes


def test_warp_crops_matches_cv2_warp_affine():
    rng = np.random.default_rng(1)
    # Smooth random images so cv2's 1/32-pixel fixed-point interpolation differs by little.
    images = [cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (7, 7), 2) for h, w in [(480, 640), (300, 200)]]
    flat, offsets, shapes = _pack(images)
    boxes = np.array([[100, 50, 200, 300], [10, 20, 150, 250], [-40, -30, 120, 200]], dtype=float)
    index = np.array([0, 1, 1])
    center, scale = geometry.box_to_center_scale(boxes, 0.75)
    rot = np.array([0.0, 25.0, -60.0])
    fwd = geometry.crop_matrices(center, scale, (192, 256), rot)
    inv = geometry.crop_matrices(center, scale, (192, 256), rot, inverse=True)
    crops = geometry.warp_crops(flat, offsets, shapes, torch.from_numpy(index), torch.from_numpy(inv), (192, 256))
    assert crops.shape == (3, 3, 256, 192)
    for b in range(3):
        ref = cv2.warpAffine(images[index[b]], fwd[b], (192, 256), flags=cv2.INTER_LINEAR)
        ours = crops[b].permute(1, 2, 0).numpy()[:, :, ::-1]  # back to BGR
        diff = np.abs(ours - ref.astype(np.float32))
        assert diff.mean() < 0.6 and np.percentile(diff, 99.9) < 3.0, (b, diff.mean(), diff.max())


def test_normalize_imagenet():
    crops = torch.full((1, 3, 2, 2), 255.0)
    out = geometry.normalize(crops)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))
