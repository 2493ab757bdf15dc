"""Forward warping: splat the pixels of a view into another camera.

:func:`forward_warp` splats each pixel as a disc of its capture size (the renderer inference uses);
:func:`splat` puts each pixel on the one pixel it lands in and fills cracks from 2 x 2 splats (the
floating-artifact fix and the no-mesh ablation of SceneScape use it).
"""

from __future__ import annotations

import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import unproject_depth
from wanderview.geometry.warp import check_image_depth
from wanderview.render.points import capture_radii, render_points
from wanderview.render.raster_kernels import EMPTY_KEY, pack_keys, unpack_depth, unpack_ids
from wanderview.types import RenderOutput


def forward_warp(
    rgb: torch.Tensor,
    depth: torch.Tensor,
    src: Camera,
    dst: Camera,
    radii: str | torch.Tensor | None = "capture",
    soft: bool = False,
) -> RenderOutput:
    """Splat the pixels of a source view into a destination camera (z-buffered).

    Args:
        rgb: (3, H, W) source image in [0, 1].
        depth: (1, H, W) source z-depth; ``inf`` / non-positive pixels are not warped.
        src: source camera (its size must match ``rgb``).
        dst: destination camera; the output has its size.
        radii: "capture" = each pixel's world size at its depth (hole-free when moving closer),
            None = one destination pixel per source pixel, or an (H*W,) tensor of world radii.
        soft: blend the front-most surface instead of keeping the nearest splat.
    Returns:
        RenderOutput in ``dst``: holes (nothing landed) have alpha 0, rgb 0 and depth ``inf``.
    """
    check_image_depth(rgb, depth, "rgb", "depth")
    if (src.height, src.width) != tuple(rgb.shape[1:]):
        raise ValueError(f"src camera is {src.width}x{src.height} but rgb is {tuple(rgb.shape)}")
    points = unproject_depth(depth, src.K, src.cam_to_world).reshape(-1, 3)
    colors = rgb.reshape(rgb.shape[0], -1).T
    valid = torch.isfinite(depth.reshape(-1)) & (depth.reshape(-1) > 0)
    if isinstance(radii, str):
        if radii != "capture":
            raise ValueError(f"radii must be 'capture', None or a tensor, got {radii!r}")
        radii = capture_radii(depth, src.K)
    if radii is not None:
        radii = radii[valid]
    return render_points(points[valid], colors[valid], dst, radii=radii, soft=soft)


def splat(
    values: torch.Tensor,
    depth: torch.Tensor,
    src: Camera,
    dst: Camera,
    source_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-warp per-pixel values with their depth into another camera, z-buffered.

    Every source pixel is splatted onto the pixel it projects into, the nearest splat winning; pixels
    no point lands in take the nearest of the points whose 2x2 neighbourhood covers them, so a
    slightly magnified surface stays crack-free without fattening foreground edges elsewhere.

    Args:
        values: (C, h, w) per-pixel values of the source view; depth: (1, h, w) z-depth (inf = none).
        src: the single source camera (size w x h); dst: the single destination camera.
        source_mask: (1, h, w) bool or None; only these source pixels are splatted.
    Returns:
        warped (C, H, W) values (0 where empty) and warped depth (1, H, W) (inf where empty).
    """
    if values.ndim != 3 or depth.shape != (1, *values.shape[1:]):
        raise ValueError(
            f"values must be (C, h, w) and depth (1, h, w), got {tuple(values.shape)}, {tuple(depth.shape)}"
        )
    H, W = dst.height, dst.width
    ok = torch.isfinite(depth) & (depth > 0)
    ok = (ok if source_mask is None else ok & source_mask).reshape(-1)
    safe = torch.where(ok.view_as(depth), depth, torch.ones_like(depth))
    points = unproject_depth(safe, src.K.to(depth), src.cam_to_world.to(depth)).reshape(-1, 3)[ok]
    source = ok.nonzero().squeeze(1)
    xy, z = dst.project(points)
    keep = z > 1e-4
    xy, z, source = xy[keep], z[keep], source[keep]
    packed = pack_keys(z.float(), source)

    def zbuffer(offsets: list[tuple[int, int]], base: torch.Tensor) -> torch.Tensor:
        keys, pixels = [], []
        for dx, dy in offsets:
            px, py = base[:, 0] + dx, base[:, 1] + dy
            inside = (px >= 0) & (px < W) & (py >= 0) & (py < H)
            pixels.append((py * W + px)[inside])
            keys.append(packed[inside])
        key = torch.full((H * W,), EMPTY_KEY, dtype=torch.int64, device=depth.device)
        return key.scatter_reduce_(0, torch.cat(pixels), torch.cat(keys), reduce="amin")

    # Pass 1: each point onto its own pixel (exact, no foreground fattening). Pass 2: onto the 2x2
    # pixels around it, used only where pass 1 left a crack (a magnified surface).
    key = zbuffer([(0, 0)], torch.floor(xy).long())
    cracks = zbuffer([(0, 0), (1, 0), (0, 1), (1, 1)], torch.floor(xy - 0.5).long())
    key = torch.where(key == EMPTY_KEY, cracks, key)
    hit = key != EMPTY_KEY
    winner = unpack_ids(key)[hit]
    flat_values = values.reshape(values.shape[0], values.shape[1] * values.shape[2])
    warped = torch.zeros(values.shape[0], H * W, dtype=values.dtype, device=values.device)
    warped[:, hit] = flat_values[:, winner]
    # the z of the winning splat (its own projection), not the source pixel's depth
    warped_depth = unpack_depth(key).to(depth.dtype)
    return warped.view(-1, H, W), warped_depth.view(1, H, W)
