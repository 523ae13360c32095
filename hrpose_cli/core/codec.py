"""The heatmap codec: training targets and test-time decoding side by side, so the two cannot drift.

All functions are batched torch and run on whatever device their inputs live on. Coordinates here are in
heatmap pixels unless a name says otherwise; ``stride`` (input pixels per heatmap pixel) converts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def encode(
    joints: torch.Tensor, visible: torch.Tensor, heatmap_size: tuple[int, int], sigma: float, stride: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian targets (B, J, H, W) and target weights (B, J) for joints (B, J, 2) in crop pixels.

    As the official ``generate_target``: the peak sits on the integer cell mu = int(x / stride + 0.5)
    (truncated toward zero), value 1, unnormalised Gaussian of ``sigma`` cut to a (6 sigma + 1) window;
    the weight is the visibility (v > 0), and 0 when the whole window falls off the map.
    """
    height, width = heatmap_size
    radius = int(sigma * 3)
    mu = torch.trunc(joints / stride + 0.5)
    mu_x, mu_y = mu[..., 0], mu[..., 1]
    on_map = (mu_x - radius < width) & (mu_y - radius < height) & (mu_x + radius + 1 >= 0) & (mu_y + radius + 1 >= 0)
    weights = (visible > 0).to(joints.dtype) * on_map.to(joints.dtype)
    xs = torch.arange(width, device=joints.device, dtype=joints.dtype)
    ys = torch.arange(height, device=joints.device, dtype=joints.dtype)
    dx = xs.view(1, 1, 1, width) - mu_x[..., None, None]
    dy = ys.view(1, 1, height, 1) - mu_y[..., None, None]
    window = (dx.abs() <= radius) & (dy.abs() <= radius)
    heatmaps = torch.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)) * window
    return heatmaps * (weights > 0)[..., None, None], weights


def flip_back(heatmaps: torch.Tensor, flip_perm: torch.Tensor, shift: bool = True) -> torch.Tensor:
    """Heatmaps of a mirrored crop -> heatmaps of the plain crop: mirror, swap left/right, shift one column.

    The one-column shift to the right is the official SHIFT_HEATMAP rule (about +2 AP); keep it on.
    """
    out = heatmaps.flip(-1)[:, flip_perm]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out


def decode_argmax(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks (B, J, 2) in heatmap pixels and scores (B, J), as the official ``get_final_preds``.

    Argmax per joint (score = peak value, coordinates zeroed when it is <= 0), then a quarter-pixel step
    towards the higher neighbour in x and in y, only for peaks with 1 < px < W - 1 and 1 < py < H - 1.
    """
    batch, joints, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch, joints, -1).float()
    scores, index = flat.max(dim=-1)
    px = index % width
    py = torch.div(index, width, rounding_mode="floor")
    coords = torch.stack([px, py], dim=-1).float() * (scores > 0).unsqueeze(-1)
    px = torch.floor(coords[..., 0] + 0.5).long()
    py = torch.floor(coords[..., 1] + 0.5).long()
    interior = (px > 1) & (px < width - 1) & (py > 1) & (py < height - 1)
    pxc = px.clamp(1, width - 2)
    pyc = py.clamp(1, height - 2)

    def at(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return flat.gather(-1, (y * width + x).unsqueeze(-1)).squeeze(-1)

    diff_x = at(pxc + 1, pyc) - at(pxc - 1, pyc)
    diff_y = at(pxc, pyc + 1) - at(pxc, pyc - 1)
    step = torch.stack([torch.sign(diff_x), torch.sign(diff_y)], dim=-1) * 0.25
    return coords + step * interior.unsqueeze(-1), scores


def _gaussian_blur(heatmaps: torch.Tensor, kernel: int) -> torch.Tensor:
    """Blur each map with a Gaussian (sigma from the kernel size, as OpenCV picks it), keeping its maximum."""
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    taps = torch.arange(kernel, device=heatmaps.device, dtype=torch.float32) - (kernel - 1) / 2
    g = torch.exp(-(taps**2) / (2 * sigma * sigma))
    g = g / g.sum()
    b, j, h, w = heatmaps.shape
    x = heatmaps.reshape(b * j, 1, h, w).float()
    pad = kernel // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    x = F.conv2d(x, g.view(1, 1, -1, 1)).reshape(b, j, h, w)
    original_max = heatmaps.reshape(b, j, -1).amax(-1).float()
    blurred_max = x.reshape(b, j, -1).amax(-1).clamp(min=1e-12)
    return x * (original_max / blurred_max)[..., None, None]


def decode_dark(heatmaps: torch.Tensor, sigma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """DARK decoding (Zhang et al. 2020): a second-order Taylor step on the log of the blurred heatmap.

    Beyond the paper; offered as ``--decode dark``. Scores stay the raw peak values, as in argmax decoding.
    """
    batch, joints, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch, joints, -1).float()
    scores, index = flat.max(dim=-1)
    px = (index % width).long()
    py = torch.div(index, width, rounding_mode="floor").long()
    kernel = int(6 * sigma) - 1  # mmpose's modulation kernel: 11 for sigma 2, 17 for sigma 3
    log_map = torch.log(_gaussian_blur(heatmaps, kernel).clamp(min=1e-10)).reshape(batch, joints, -1)
    interior = (px > 1) & (px < width - 2) & (py > 1) & (py < height - 2)
    x = px.clamp(2, width - 3)
    y = py.clamp(2, height - 3)

    def at(dx: int, dy: int) -> torch.Tensor:
        return log_map.gather(-1, ((y + dy) * width + (x + dx)).unsqueeze(-1)).squeeze(-1)

    center = at(0, 0)
    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2 * center + at(-2, 0))
    dyy = 0.25 * (at(0, 2) - 2 * center + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = dxx * dyy - dxy * dxy
    usable = interior & (det.abs() > 1e-12) & (scores > 0)
    safe_det = torch.where(usable, det, torch.ones_like(det))
    offset_x = -(dyy * dx - dxy * dy) / safe_det
    offset_y = -(dxx * dy - dxy * dx) / safe_det
    coords = torch.stack([px, py], dim=-1).float() * (scores > 0).unsqueeze(-1)
    offset = torch.stack([offset_x, offset_y], dim=-1) * usable.unsqueeze(-1)
    return coords + offset, scores


def decode(heatmaps: torch.Tensor, method: str = "argmax", sigma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks (B, J, 2) in heatmap pixels and scores (B, J) by the named method: 'argmax' (official) or 'dark'."""
    if method == "argmax":
        return decode_argmax(heatmaps)
    if method == "dark":
        return decode_dark(heatmaps, sigma)
    raise ValueError(f"unknown decoding method {method!r}")
