"""Forward warping: splat the pixels of a view into another camera (the renderer inference uses)."""

from __future__ import annotations

import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import unproject_depth
from wanderview.geometry.warp import check_image_depth
from wanderview.render.points import capture_radii, render_points
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
