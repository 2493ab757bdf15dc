"""Z-buffered point splatting in pure, vectorised torch.

Each point covers the square of pixel centres within ``radius * f / z`` pixels of its projection (at
least half a pixel, so it always hits one pixel). Giving every point the world-space size of the pixel it
was captured from (:func:`capture_radii`) keeps a surface hole-free when the camera moves closer.

Hard mode keeps the front-most point per pixel (packed ``depth bits << 32 | index`` and
``scatter_reduce("amin")``). Soft mode then blends every point of the front-most surface - those within a
relative depth band of the front-most depth - weighted by depth proximity, for smoother results.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from wanderview.cameras.camera import Camera
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


def splat_points(
    points: torch.Tensor,
    features: torch.Tensor,
    camera: Camera,
    radii: torch.Tensor | None = None,
    soft: bool = False,
    band: float = 0.02,
    near: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Splat points carrying any number of feature channels (see :func:`render_points`).

    Args:
        points: (N, 3) world coordinates.
        features: (N, C) per-point features.
        camera: a single :class:`Camera`.
        radii: (N,) world-space footprint radius, or None for one pixel per point.
        soft: blend the front-most surface instead of keeping only the nearest point.
        band: soft mode: points with z <= z_front * (1 + band) belong to the front-most surface.
        near: points at z <= near are dropped.
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
    H, W = camera.height, camera.width
    device, C = points.device, features.shape[1]
    keys = torch.full((H * W,), _EMPTY_KEY, dtype=torch.int64, device=device)
    with torch.no_grad():
        pts = points.detach().float()
        rad = None if radii is None else radii.detach().float().to(device)
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
    band: float = 0.02,
    near: float = 1e-4,
) -> RenderOutput:
    """Render coloured points with z-buffered square splats.

    Args:
        points: (N, 3) world coordinates.
        colors: (N, 3) colours in [0, 1] (use :func:`splat_points` for other channel counts).
        camera: a single :class:`Camera`; the output is ``camera.height`` x ``camera.width``.
        radii: (N,) world-space radius of each point; its footprint is the square of pixel centres
            within max(radius * f / z, 0.5) pixels of its projection. None = one pixel per point.
        soft: weighted blend of the front-most surface (points within ``band`` relative depth of the
            nearest point at that pixel, weighted by depth proximity) instead of the nearest point.
        band: relative depth band of the front-most surface in soft mode.
        near: points at z <= near are dropped.
    Returns:
        RenderOutput: rgb (3, H, W) (0 where empty), depth (1, H, W) front-most z (``inf`` where
        empty), alpha (1, H, W) 1 where any point landed.
    """
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise ValueError(f"colors must be (N, 3), got {tuple(colors.shape)}; splat_points takes (N, C)")
    rgb, depth, alpha = splat_points(points, colors, camera, radii=radii, soft=soft, band=band, near=near)
    return RenderOutput(rgb=rgb, depth=depth, alpha=alpha)
