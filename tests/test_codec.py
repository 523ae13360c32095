"""The heatmap codec against the official per-joint loops and hand-checked values."""

import math

import numpy as np
import torch

from hrpose_cli.core import codec
from hrpose_cli.core.schema import COCO17


def official_generate_target(joints, joints_vis, heatmap_size=(48, 64), image_size=(192, 256), sigma=2):
    """The official JointsDataset.generate_target (gaussian), one joint at a time."""
    num_joints = len(joints)
    target_weight = np.ones((num_joints, 1), dtype=np.float32)
    target_weight[:, 0] = joints_vis[:, 0]
    target = np.zeros((num_joints, heatmap_size[1], heatmap_size[0]), dtype=np.float32)
    tmp_size = sigma * 3
    for joint_id in range(num_joints):
        feat_stride = np.array(image_size) / np.array(heatmap_size)
        mu_x = int(joints[joint_id][0] / feat_stride[0] + 0.5)
        mu_y = int(joints[joint_id][1] / feat_stride[1] + 0.5)
        ul = [int(mu_x - tmp_size), int(mu_y - tmp_size)]
        br = [int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)]
        if ul[0] >= heatmap_size[0] or ul[1] >= heatmap_size[1] or br[0] < 0 or br[1] < 0:
            target_weight[joint_id] = 0
            continue
        size = 2 * tmp_size + 1
        x = np.arange(0, size, 1, np.float32)
        y = x[:, np.newaxis]
        x0 = y0 = size // 2
        g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
        g_x = max(0, -ul[0]), min(br[0], heatmap_size[0]) - ul[0]
        g_y = max(0, -ul[1]), min(br[1], heatmap_size[1]) - ul[1]
        img_x = max(0, ul[0]), min(br[0], heatmap_size[0])
        img_y = max(0, ul[1]), min(br[1], heatmap_size[1])
        if target_weight[joint_id] > 0.5:
            target[joint_id][img_y[0]:img_y[1], img_x[0]:img_x[1]] = g[g_y[0]:g_y[1], g_x[0]:g_x[1]]
    return target, target_weight[:, 0]


def test_encode_equals_official_generate_target():
    rng = np.random.default_rng(0)
    joints = np.concatenate([rng.uniform(-40, 230, (200, 1)), rng.uniform(-40, 300, (200, 1))], axis=1)
    vis = (rng.uniform(size=200) > 0.2).astype(np.float32)
    ref_t, ref_w = official_generate_target(joints, np.repeat(vis[:, None], 3, 1))
    t, w = codec.encode(torch.tensor(joints[None], dtype=torch.float32), torch.tensor(vis[None]), (64, 48), 2.0, 4.0)
    assert torch.equal(w[0], torch.tensor(ref_w))
    assert torch.allclose(t[0], torch.tensor(ref_t), atol=1e-6)
    assert (ref_w == 0).any() and (ref_w == 1).any()


def test_encode_hand_checked_peak_and_neighbour():
    t, w = codec.encode(torch.tensor([[[41.0, 82.0]]]), torch.ones(1, 1), (64, 48), 2.0, 4.0)
    # 41/4 + 0.5 = 10.75 -> 10 and 82/4 + 0.5 = 21 -> 21: peak 1 at (x=10, y=21), exp(-1/8) one cell away.
    assert t[0, 0, 21, 10] == 1.0 and w[0, 0] == 1.0
    assert math.isclose(t[0, 0, 21, 11].item(), math.exp(-1 / 8), rel_tol=1e-6)
    assert t[0, 0, 21, 17] == 0.0 and t[0, 0, 21, 16] > 0  # the window ends 6 cells away


def official_get_final_coords(batch_heatmaps):
    """The official get_max_preds + quarter-offset loop of get_final_preds (heatmap coordinates)."""
    n, j, h, w = batch_heatmaps.shape
    flat = batch_heatmaps.reshape(n, j, -1)
    idx = np.argmax(flat, 2).reshape(n, j, 1)
    maxvals = np.amax(flat, 2).reshape(n, j, 1)
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = preds[:, :, 0] % w
    preds[:, :, 1] = np.floor(preds[:, :, 1] / w)
    preds *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    for a in range(n):
        for p in range(j):
            hm = batch_heatmaps[a][p]
            px = int(math.floor(preds[a][p][0] + 0.5))
            py = int(math.floor(preds[a][p][1] + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                preds[a][p] += np.sign(diff) * 0.25
    return preds, maxvals[..., 0]


def test_decode_argmax_equals_official():
    rng = np.random.default_rng(3)
    hm = rng.normal(size=(4, 17, 64, 48)).astype(np.float32)
    hm[0, 0] = -1.0  # all non-positive: coordinates zeroed
    hm[1, 1, 0, 5] = 50.0  # a peak on the border: no quarter step
    ref, ref_scores = official_get_final_coords(hm)
    coords, scores = codec.decode_argmax(torch.from_numpy(hm))
    assert np.allclose(coords.numpy(), ref)
    assert np.allclose(scores.numpy(), ref_scores)
    assert np.allclose(coords[0, 0].numpy(), [0, 0]) and np.allclose(coords[1, 1].numpy(), [5, 0])


def test_decode_argmax_hand_checked_quarter_step():
    hm = torch.zeros(1, 1, 64, 48)
    hm[0, 0, 20, 10] = 1.0
    hm[0, 0, 20, 11] = 0.5  # right neighbour higher -> +0.25 in x
    hm[0, 0, 19, 10] = 0.3  # upper neighbour higher -> -0.25 in y
    coords, scores = codec.decode_argmax(hm)
    assert torch.allclose(coords[0, 0], torch.tensor([10.25, 19.75])) and scores[0, 0] == 1.0


def test_encode_then_decode_recovers_the_cell():
    joints = torch.tensor([[[40.0, 80.0], [100.0, 200.0]]])
    t, _ = codec.encode(joints, torch.ones(1, 2), (64, 48), 2.0, 4.0)
    coords, scores = codec.decode_argmax(t)
    assert torch.allclose(coords, joints / 4) and torch.allclose(scores, torch.ones(1, 2))


def test_dark_recovers_subpixel_gaussian_centre():
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
    true = torch.tensor([[20.3, 30.6], [10.8, 40.2]])
    hm = torch.stack([torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8) for x, y in true])[None]
    dark, _ = codec.decode_dark(hm)
    argmax, _ = codec.decode_argmax(hm)
    assert (dark[0] - true).abs().max() < 0.1
    assert (dark[0] - true).abs().max() < (argmax[0] - true).abs().max()


def test_flip_back_mirrors_swaps_and_shifts():
    perm = torch.from_numpy(COCO17.flip_permutation())
    hm = torch.zeros(1, 17, 64, 48)
    hm[0, 1, 10, 5] = 1.0  # left eye in the mirrored crop at x=5
    out = codec.flip_back(hm, perm, shift=True)
    # mirrored x = 47 - 5 = 42, moved to the right eye's channel, then shifted one column right -> 43
    assert out[0, 2, 10, 43] == 1.0 and out[0, 1].sum() == 0
    assert codec.flip_back(hm, perm, shift=False)[0, 2, 10, 42] == 1.0
