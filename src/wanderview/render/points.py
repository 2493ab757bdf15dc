"""Z-buffered point splatting in vectorised torch (the bilinear kernel has a numba CPU fast path,
:mod:`wanderview.render.points_fast`, tested against the torch code here).

Two kernels:

- ``bilinear`` (default): each point spreads over the pixel centres within ``s`` pixels of its projection
  with the tent weight (1 - |dx|/s)(1 - |dy|/s), s = max(1, sample spacing) per axis, and the colours of
  the front-most surface (the points within a relative depth band of the nearest one) are averaged with
  those weights and normalised. For a grid of samples that is exactly bilinear interpolation, so a warped
  view is close to ideal bilinear resampling (benchmarks/makeit4d.py measures it). The front depth is
  chosen among "strong" contributions (tent weight >= 0.25) first, so the faint tail of a foreground
  point does not blot out the background beside its silhouette. alpha = min(1, 2 * weight sum): a
  surface is fully covered where its samples are, and fades out over the last sample spacing.
- ``square``: the original z-buffer of square splats, described next.

Square kernel: each point covers the square of pixel centres within ``radius * f / z`` pixels of its
projection (at least half a pixel, so it always hits one pixel). Giving every point the world-space size
of the pixel it was captured from (:func:`capture_radii`) keeps a surface hole-free when the camera
moves closer.
Hard mode keeps the front-most point per pixel (packed ``depth bits << 32 | index`` and
``scatter_reduce("amin")``). Soft mode then blends every point of the front-most surface - those within a
relative depth band of the front-most depth - weighted by depth proximity, for smoother results.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from wanderview.cameras.camera import Camera
from wanderview.render import points_fast
from wanderview.render.raster_kernels import window_groups
from wanderview.types import RenderOutput

_EMPTY_KEY = torch.iinfo(torch.int64).max
# points set up together: blocks that stay in cache make torch's elementwise ops several times faster
_POINT_BLOCK = 1 << 15


def capture_radii(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """World-space half-diagonal of each pixel at its captured depth.

    Args:
        depth: (1, H, W) z-depth (``inf`` = unknown).
        K: (3, 3) intrinsics in pixels.
    Returns:
        (H*W,) radii in world units, row-major like ``unproject_depth(...).reshape(-1, 3)``:
        depth / f * 0.5 * sqrt(2), with f the mean focal length (``inf`` where depth is ``inf``).
    """
    if depth.ndim != 3 or depth.shape[0] != 1:
        raise ValueError(f"depth must be (1, H, W), got {tuple(depth.shape)}")
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3, 3), got {tuple(K.shape)}")
    focal = 0.5 * (K[0, 0] + K[1, 1]).to(depth)
    return (depth.reshape(-1) / focal) * (0.5 * math.sqrt(2.0))


def _footprints(
    points: torch.Tensor, radii: torch.Tensor | None, camera: Camera, near: float
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Enumerate (point, pixel) pairs of every point's footprint in dense blocks.

    Yields:
        index (n, K) long point index, pix (n, K) long flat pixel index (0 where unused), depth (n, K)
        float z-depth, used (n, K) bool.
    """
    W, H = camera.width, camera.height
    xy, z = camera.project(points)
    K = camera.K.to(points)
    for start in range(0, points.shape[0], _POINT_BLOCK):
        block = slice(start, start + _POINT_BLOCK)
        u, v, zb = xy[block, 0], xy[block, 1], z[block]
        if radii is None:
            rx = ry = torch.full_like(zb, 0.5)
        else:
            rb = radii[block]
            safe_z = zb.clamp_min(near)
            rx, ry = (rb * K[0, 0] / safe_z).clamp_min(0.5), (rb * K[1, 1] / safe_z).clamp_min(0.5)
        lo_x = torch.ceil(u - rx - 0.5).clamp_(min=0)
        hi_x = torch.floor(u + rx - 0.5).clamp_(max=W - 1)
        lo_y = torch.ceil(v - ry - 0.5).clamp_(min=0)
        hi_y = torch.floor(v + ry - 0.5).clamp_(max=H - 1)
        ok = (zb > near) & torch.isfinite(zb) & torch.isfinite(u) & torch.isfinite(v)
        ok &= torch.isfinite(rx) & torch.isfinite(ry)
        size_x = torch.where(ok, hi_x - lo_x + 1, 0).long()
        size_y = torch.where(ok, hi_y - lo_y + 1, 0).long()
        for kw, kh, items in window_groups(size_x, size_y):
            window = torch.arange(kw * kh, device=points.device)
            ox, oy = window % kw, window // kw
            col = lo_x[items, None].long() + ox
            row = lo_y[items, None].long() + oy
            if kw * kh == 1:
                used = torch.ones_like(col, dtype=torch.bool)
            else:
                used = (ox < size_x[items, None]) & (oy < size_y[items, None])
            pix = torch.where(used, row * W + col, 0)
            index = (items + start)[:, None].expand_as(pix)
            yield index, pix, zb[items, None].expand_as(pix), used


# a tent contribution below this weight counts only when no stronger one reaches the pixel
_STRONG = 0.25
_WEAK_FLAG = 1 << 62
BILINEAR_BAND = 0.05
MAX_TENT_PX = 16.0
"""Largest tent half-width (pixels): surfaces seen over 16x closer than captured get gaps instead of
splats that cost (2 s)^2 pixel pairs per point."""
SQUARE_BAND = 0.02


def _tent_footprints(
    points: torch.Tensor, radii: torch.Tensor | None, camera: Camera, near: float
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Enumerate (point, pixel) pairs of the tent kernel in dense blocks.

    Yields:
        index (n, K) long point index, pix (n, K) long flat pixel (0 where unused), depth (n, K) float,
        weight (n, K) float tent weight (0 where unused).
    """
    W, H = camera.width, camera.height
    xy, z = camera.project(points)
    K = camera.K.to(points)
    for start in range(0, points.shape[0], _POINT_BLOCK):
        block = slice(start, start + _POINT_BLOCK)
        u, v, zb = xy[block, 0], xy[block, 1], z[block]
        if radii is None:
            sx = sy = torch.ones_like(zb)
        else:
            # the projected half-diagonal r of a captured pixel is spacing / sqrt(2)
            safe_z = zb.clamp_min(near)
            scale = radii[block] * math.sqrt(2.0) / safe_z
            # capped: a point just in front of the camera would otherwise cover the whole frame
            sx = (scale * K[0, 0]).clamp(1.0, MAX_TENT_PX)
            sy = (scale * K[1, 1]).clamp(1.0, MAX_TENT_PX)
        # pixel centres c + 0.5 strictly inside (u - s, u + s): the tent is 0 on its border
        lo_x = (torch.floor(u - sx - 0.5) + 1).clamp_(min=0)
        hi_x = (torch.ceil(u + sx - 0.5) - 1).clamp_(max=W - 1)
        lo_y = (torch.floor(v - sy - 0.5) + 1).clamp_(min=0)
        hi_y = (torch.ceil(v + sy - 0.5) - 1).clamp_(max=H - 1)
        ok = (zb > near) & torch.isfinite(zb) & torch.isfinite(u) & torch.isfinite(v)
        ok &= torch.isfinite(sx) & torch.isfinite(sy)
        size_x = torch.where(ok, hi_x - lo_x + 1, 0).long()
        size_y = torch.where(ok, hi_y - lo_y + 1, 0).long()
        for kw, kh, items in window_groups(size_x, size_y):
            window = torch.arange(kw * kh, device=points.device)
            ox, oy = window % kw, window // kw
            col = lo_x[items, None] + ox
            row = lo_y[items, None] + oy
            wx = (1 - (col + 0.5 - u[items, None]).abs() / sx[items, None]).clamp_min_(0)
            wy = (1 - (row + 0.5 - v[items, None]).abs() / sy[items, None]).clamp_min_(0)
            used = (ox < size_x[items, None]) & (oy < size_y[items, None])
            weight = torch.where(used, wx * wy, 0.0)
            pix = torch.where(used, row.long() * W + col.long(), 0)
            index = (items + start)[:, None].expand_as(pix)
            yield index, pix, zb[items, None].expand_as(pix), weight


def _splat_bilinear(points, radii, features, camera, near, band):
    """(features (H*W, C), depth (H*W,), weight sum (H*W,)) of the tent kernel (see module docstring).

    The torch reference (any device, any dtype); on CPU with float32 features splat_points uses the
    numba fast path of :mod:`wanderview.render.points_fast`, which is tested against this one.
    """
    H, W = camera.height, camera.width
    device = points.device
    keys = torch.full((H * W,), _EMPTY_KEY, dtype=torch.int64, device=device)
    for _, pix, depth, weight in _tent_footprints(points, radii, camera, near):
        bits = depth.contiguous().view(torch.int32).long()
        key = torch.where(weight >= _STRONG, bits, bits | _WEAK_FLAG)
        key = torch.where(weight > 0, key, _EMPTY_KEY)
        keys.scatter_reduce_(0, pix.reshape(-1), key.reshape(-1), reduce="amin")
    covered = keys != _EMPTY_KEY
    front_bits = (keys & 0xFFFFFFFF).to(torch.int32)
    front = torch.where(covered, front_bits.view(torch.float32), float("inf"))
    dtype = features.dtype
    weight_sum = torch.zeros(H * W, dtype=dtype, device=device)
    depth_sum = torch.zeros(H * W, dtype=dtype, device=device)
    acc = torch.zeros(H * W, features.shape[1], dtype=dtype, device=device)
    for index, pix, depth, weight in _tent_footprints(points, radii, camera, near):
        z_front = front[pix]
        rel = (depth - z_front) / (band * z_front)
        # a soft edge at the back of the band; within a surface the weight stays near the tent's
        w = torch.where((rel <= 1.0) & (weight > 0), weight * torch.exp(-rel.clamp_min(0.0).square()), 0.0)
        flat_pix, flat_w = pix.reshape(-1), w.reshape(-1).to(dtype)
        weight_sum.index_add_(0, flat_pix, flat_w)
        depth_sum.index_add_(0, flat_pix, depth.reshape(-1).to(dtype) * flat_w)
        acc.index_add_(0, flat_pix, features[index.reshape(-1)] * flat_w[:, None])
    norm = weight_sum.clamp_min(1e-12)
    out = acc / norm[:, None]
    depth_map = torch.where(weight_sum > 0, depth_sum / norm, torch.full_like(norm, float("inf")))
    return out, depth_map, weight_sum


def splat_points(
    points: torch.Tensor,
    features: torch.Tensor,
    camera: Camera,
    radii: torch.Tensor | None = None,
    soft: bool = False,
    band: float | None = None,
    near: float = 1e-4,
    kernel: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Splat points carrying any number of feature channels (see :func:`render_points`).

    Args:
        points: (N, 3) world coordinates.
        features: (N, C) per-point features.
        camera: a single :class:`Camera`.
        radii: (N,) world-space footprint radius, or None for one pixel per point.
        soft: square kernel: blend the front-most surface instead of keeping only the nearest point
            (the bilinear kernel always blends it).
        band: points with z <= z_front * (1 + band) belong to the front-most surface (default 0.05
            for the bilinear kernel, whose magnified samples of a steep surface differ more in depth,
            0.02 for the square kernel).
        near: points at z <= near are dropped.
        kernel: 'bilinear' (tent-weighted, normalised) or 'square' (see the module docstring).
    Returns:
        features (C, H, W) (0 where empty), depth (1, H, W) (``inf`` where empty), alpha (1, H, W).
    """
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
    if features.ndim != 2 or features.shape[0] != points.shape[0]:
        raise ValueError(f"colors must be (N, C) with N = {points.shape[0]}, got {tuple(features.shape)}")
    if radii is not None and radii.shape != (points.shape[0],):
        raise ValueError(f"radii must be ({points.shape[0]},), got {tuple(radii.shape)}")
    if camera.batch_shape:
        raise ValueError(f"need a single camera, got a batch of shape {tuple(camera.batch_shape)}")
    if kernel not in ("bilinear", "square"):
        raise ValueError(f"kernel must be 'bilinear' or 'square', got {kernel!r}")
    if band is None:
        band = BILINEAR_BAND if kernel == "bilinear" else SQUARE_BAND
    H, W = camera.height, camera.width
    device, C = points.device, features.shape[1]
    with torch.no_grad():
        pts = points.detach().float()
        rad = None if radii is None else radii.detach().float().to(device)
    if kernel == "bilinear":
        with torch.no_grad():
            if points_fast.available(pts, features):
                out, front, weight_sum = points_fast.splat_bilinear_fast(
                    pts, rad, features.detach(), camera, near, band, _STRONG, _WEAK_FLAG, MAX_TENT_PX
                )
            else:
                out, front, weight_sum = _splat_bilinear(pts, rad, features.detach(), camera, near, band)
        rgb = out.T.reshape(C, H, W)
        alpha = (2.0 * weight_sum).clamp(max=1.0).view(1, H, W).to(features.dtype)
        return rgb, front.view(1, H, W).to(features.dtype), alpha
    keys = torch.full((H * W,), _EMPTY_KEY, dtype=torch.int64, device=device)
    with torch.no_grad():
        for index, pix, depth, used in _footprints(pts, rad, camera, near):
            bits = depth.contiguous().view(torch.int32).long()
            key = torch.where(used, (bits << 32) | index, _EMPTY_KEY)
            keys.scatter_reduce_(0, pix.reshape(-1), key.reshape(-1), reduce="amin")
    covered = keys != _EMPTY_KEY
    winner = torch.where(covered, keys & 0xFFFFFFFF, 0)
    front = torch.where(covered, (keys >> 32).to(torch.int32).view(torch.float32), float("inf"))
    if not soft:
        out = features[winner] * covered[:, None].to(features.dtype)
    else:
        out = _soft_composite(pts, rad, features, camera, near, front, band)
    rgb = out.T.reshape(C, H, W)
    depth_map = front.view(1, H, W).to(features.dtype)
    alpha = covered.view(1, H, W).to(features.dtype)
    return rgb, depth_map, alpha


def _soft_composite(points, radii, features, camera, near, front, band) -> torch.Tensor:
    """(H*W, C) features blended over the points within the relative band behind ``front`` (H*W,)."""
    H, W = camera.height, camera.width
    weight_sum = torch.zeros(H * W, dtype=features.dtype, device=features.device)
    acc = torch.zeros(H * W, features.shape[1], dtype=features.dtype, device=features.device)
    for index, pix, depth, used in _footprints(points, radii, camera, near):
        z_front = front[pix]
        rel = (depth - z_front) / (band * z_front)
        keep = used & (rel <= 1.0)
        # weight falls from 1 at the front-most depth to ~0.37 at the edge of the band
        weight = torch.where(keep, torch.exp(-rel.clamp_min(0.0)), 0.0).to(features.dtype)
        flat_pix, flat_w = pix.reshape(-1), weight.reshape(-1)
        weight_sum.index_add_(0, flat_pix, flat_w)
        acc.index_add_(0, flat_pix, features[index.reshape(-1)] * flat_w[:, None])
    return acc / weight_sum.clamp_min(1e-12)[:, None]


def render_points(
    points: torch.Tensor,
    colors: torch.Tensor,
    camera: Camera,
    radii: torch.Tensor | None = None,
    soft: bool = False,
    band: float | None = None,
    near: float = 1e-4,
    kernel: str = "bilinear",
) -> RenderOutput:
    """Render coloured points with z-buffered splats (bilinear tent weights by default).

    Args:
        points: (N, 3) world coordinates.
        colors: (N, 3) colours in [0, 1] (use :func:`splat_points` for other channel counts).
        camera: a single :class:`Camera`; the output is ``camera.height`` x ``camera.width``.
        radii: (N,) world-space radius of each point (the half-diagonal of the pixel it was
            captured from, :func:`capture_radii`). Bilinear kernel: the tent half-width is
            max(1, radius * sqrt(2) * f / z) pixels; square kernel: the square of pixel centres within
            max(radius * f / z, 0.5) pixels. None = samples one pixel apart (bilinear) or one pixel
            per point (square).
        soft: square kernel only: weighted blend of the front-most surface instead of the nearest point.
        band: relative depth band of the front-most surface (default 0.05 bilinear, 0.02 square).
        near: points at z <= near are dropped.
        kernel: 'bilinear' (default) or 'square'.
    Returns:
        RenderOutput: rgb (3, H, W) (0 where empty), depth (1, H, W) z (``inf`` where empty; bilinear:
        the weighted depth of the front surface, square: the front-most z), alpha (1, H, W) coverage.
    """
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise ValueError(f"colors must be (N, 3), got {tuple(colors.shape)}; splat_points takes (N, C)")
    rgb, depth, alpha = splat_points(
        points, colors, camera, radii=radii, soft=soft, band=band, near=near, kernel=kernel
    )
    return RenderOutput(rgb=rgb, depth=depth, alpha=alpha)
