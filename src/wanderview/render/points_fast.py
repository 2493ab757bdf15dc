"""The CPU fast path of the bilinear (tent) point splatter of :mod:`wanderview.render.points`.

The torch reference enumerates (point, pixel) pairs in dense blocks grouped by window size; most of its
time goes into building those temporaries, not into arithmetic. Here the projection stays in torch and
two numba loops compute each point's tent half-widths and pixel box (the reference's float32
expressions, term for term) and walk the box directly:

1. **z-buffer**: per pixel the smallest key ``depth bits | weak flag`` (the front-most strong
   contribution, or the front-most weak one where no strong one reaches);
2. **accumulate**: tent weight x soft band edge into weight, depth x weight and feature x weight sums.

Every step is the reference's float32 operation, so the z-buffer matches it (bar a last-bit difference
of a half-width that lands exactly on a pixel centre) and the sums differ by summation order and exp's
last bit (tests/test_render_points_fast.py holds the
two within 1e-5). The kernels release the GIL (``nogil``), so two renders (makeit4d's forward and
backward clouds) can run on two threads at once. Compiled on first use and cached on disk.
"""

from __future__ import annotations

import numpy as np
import torch

try:  # numba is a core dependency; the guard keeps the package importable where it is missing
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only on machines without numba
    HAVE_NUMBA = False

_EMPTY_KEY = np.int64(np.iinfo(np.int64).max)

if HAVE_NUMBA:

    @njit(cache=True, nogil=True, inline="always")
    def _tent_box(i, u, v, z, radii, fx, fy, near, max_px, width, height):
        """Tent half-widths and pixel box of point i: the reference's float32 expressions, term for term.

        Returns (sx, sy, x0, x1, y0, y1); x1 < x0 (an empty box) for a point the reference drops.
        """
        one, half = np.float32(1.0), np.float32(0.5)
        zi, ui, vi = z[i], u[i], v[i]
        if radii.shape[0] == 0:
            sx = sy = one
        else:
            scale = radii[i] * np.float32(1.4142135623730951) / max(zi, near)
            sx = min(max(scale * fx, one), max_px)
            sy = min(max(scale * fy, one), max_px)
        if not (zi > near and np.isfinite(zi) and np.isfinite(ui) and np.isfinite(vi)):
            return sx, sy, 0, -1, 0, -1
        if not (np.isfinite(sx) and np.isfinite(sy)):
            return sx, sy, 0, -1, 0, -1
        lo_x, hi_x = np.floor(ui - sx - half) + one, np.ceil(ui + sx - half) - one
        lo_y, hi_y = np.floor(vi - sy - half) + one, np.ceil(vi + sy - half) - one
        if lo_x > width - 1 or hi_x < 0 or lo_y > height - 1 or hi_y < 0:
            return sx, sy, 0, -1, 0, -1
        x0, x1 = int(max(lo_x, np.float32(0.0))), int(min(hi_x, np.float32(width - 1)))
        y0, y1 = int(max(lo_y, np.float32(0.0))), int(min(hi_y, np.float32(height - 1)))
        return sx, sy, x0, x1, y0, y1

    @njit(cache=True, nogil=True)
    def _zbuffer(u, v, z, radii, fx, fy, near, max_px, width, height, strong, weak_flag, keys):
        """keys (H*W,) int64 <- min over the points' tent pixels of depth bits (| weak_flag when weak)."""
        one, half, zero = np.float32(1.0), np.float32(0.5), np.float32(0.0)
        zbits = z.view(np.int32)
        for i in range(u.shape[0]):
            sx, sy, x0, x1, y0, y1 = _tent_box(i, u, v, z, radii, fx, fy, near, max_px, width, height)
            bits = np.int64(zbits[i])
            for row in range(y0, y1 + 1):
                wy = max(one - abs(np.float32(row) + half - v[i]) / sy, zero)
                for col in range(x0, x1 + 1):
                    wx = max(one - abs(np.float32(col) + half - u[i]) / sx, zero)
                    w = wx * wy
                    if w > 0:
                        key = bits if w >= strong else bits | weak_flag
                        p = row * width + col
                        if key < keys[p]:
                            keys[p] = key

    @njit(cache=True, nogil=True)
    def _accumulate(u, v, z, radii, fx, fy, near, max_px, width, height, front, band, features,
                    weight_sum, depth_sum, acc):  # fmt: skip
        """Soft front-surface blend: the sums of w, z w and feature w per pixel (w = tent x band edge)."""
        one, half, zero = np.float32(1.0), np.float32(0.5), np.float32(0.0)
        channels = features.shape[1]
        for i in range(u.shape[0]):
            sx, sy, x0, x1, y0, y1 = _tent_box(i, u, v, z, radii, fx, fy, near, max_px, width, height)
            zi = z[i]
            for row in range(y0, y1 + 1):
                wy = max(one - abs(np.float32(row) + half - v[i]) / sy, zero)
                for col in range(x0, x1 + 1):
                    wx = max(one - abs(np.float32(col) + half - u[i]) / sx, zero)
                    weight = wx * wy
                    if weight <= 0:
                        continue
                    p = row * width + col
                    z_front = front[p]
                    rel = (zi - z_front) / (band * z_front)
                    if rel > one:
                        continue
                    r = max(rel, zero)
                    w = weight * np.exp(-(r * r))
                    weight_sum[p] += w
                    depth_sum[p] += zi * w
                    for c in range(channels):
                        acc[p, c] += features[i, c] * w


def available(points: torch.Tensor, features: torch.Tensor) -> bool:
    """Whether the fast path handles these inputs (numba, CPU tensors, float32 features)."""
    return HAVE_NUMBA and points.device.type == "cpu" and features.dtype == torch.float32


def splat_bilinear_fast(points, radii, features, camera, near, band, strong, weak_flag, max_tent_px):
    """(features (H*W, C), depth (H*W,), weight sum (H*W,)) of the tent kernel; same contract as the
    reference ``points._splat_bilinear`` (points (N, 3) float32, radii (N,) or None, features (N, C))."""
    W, H = camera.width, camera.height
    xy, z = camera.project(points)
    u, v, z = xy[:, 0].contiguous().numpy(), xy[:, 1].contiguous().numpy(), z.contiguous().numpy()
    K = camera.K.to(points)
    radii_np = np.zeros(0, np.float32) if radii is None else radii.contiguous().numpy()
    box_args = (u, v, z, radii_np, np.float32(K[0, 0]), np.float32(K[1, 1]), np.float32(near),
                np.float32(max_tent_px), W, H)  # fmt: skip
    keys = torch.full((H * W,), int(_EMPTY_KEY), dtype=torch.int64)
    _zbuffer(*box_args, np.float32(strong), np.int64(weak_flag), keys.numpy())
    covered = keys != int(_EMPTY_KEY)
    front = torch.where(covered, (keys & 0xFFFFFFFF).to(torch.int32).view(torch.float32), float("inf"))
    C = features.shape[1]
    weight_sum = torch.zeros(H * W, dtype=torch.float32)
    depth_sum = torch.zeros(H * W, dtype=torch.float32)
    acc = torch.zeros(H * W, C, dtype=torch.float32)
    feats = features.contiguous().numpy()
    _accumulate(*box_args, front.numpy(), np.float32(band), feats, weight_sum.numpy(), depth_sum.numpy(),
                acc.numpy())  # fmt: skip
    norm = weight_sum.clamp_min(1e-12)
    out = acc / norm[:, None]
    depth_map = torch.where(weight_sum > 0, depth_sum / norm, torch.full_like(norm, float("inf")))
    return out, depth_map, weight_sum
