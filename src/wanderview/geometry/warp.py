"""Backward warping: sample an image at the projection of another view's pixels (forward warping,
which splats, lives in render/warp.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import project_points, unproject_depth


def check_image_depth(image: torch.Tensor, depth: torch.Tensor, image_name: str, depth_name: str) -> None:
    if image.ndim != 3:
        raise ValueError(f"{image_name} must be (C, H, W), got {tuple(image.shape)}")
    if depth.ndim != 3 or depth.shape[0] != 1 or depth.shape[1:] != image.shape[1:]:
        expected = f"(1, {image.shape[1]}, {image.shape[2]})"
        raise ValueError(f"{depth_name} must be {expected}, got {tuple(depth.shape)}")


def backward_warp(
    src_image: torch.Tensor, dst_depth: torch.Tensor, src: Camera, dst: Camera
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fetch, for every destination pixel, the source colour where its 3D point projects.

    Args:
        src_image: (C, H_src, W_src) image seen by ``src``.
        dst_depth: (1, H, W) z-depth of the destination view (``inf`` = unknown).
        src: source camera (its size must match ``src_image``).
        dst: destination camera (its size must match ``dst_depth``).
    Returns:
        warped (C, H, W) bilinearly sampled source colours (0 where invalid) and valid (1, H, W) bool:
        depth finite, the point in front of ``src`` and its projection inside the source image.
    """
    if src_image.ndim != 3:
        raise ValueError(f"src_image must be (C, H, W), got {tuple(src_image.shape)}")
    if dst_depth.ndim != 3 or dst_depth.shape[0] != 1:
        raise ValueError(f"dst_depth must be (1, H, W), got {tuple(dst_depth.shape)}")
    if (dst.height, dst.width) != tuple(dst_depth.shape[1:]):
        raise ValueError(f"dst camera is {dst.width}x{dst.height} but dst_depth is {tuple(dst_depth.shape)}")
    _, Hs, Ws = src_image.shape
    if (src.height, src.width) != (Hs, Ws):
        raise ValueError(f"src camera is {src.width}x{src.height} but src_image is {tuple(src_image.shape)}")
    finite = torch.isfinite(dst_depth[0]) & (dst_depth[0] > 0)
    safe_depth = torch.where(finite, dst_depth[0], torch.ones_like(dst_depth[0]))[None]
    world = unproject_depth(safe_depth, dst.K, dst.cam_to_world)
    uv, z = project_points(world, src.K, src.world_to_cam)
    # grid_sample with align_corners=False maps -1/+1 to the outer pixel borders (0 and W in pixels)
    grid = torch.stack([uv[..., 0] / Ws * 2 - 1, uv[..., 1] / Hs * 2 - 1], dim=-1).to(src_image.dtype)
    warped = F.grid_sample(
        src_image[None], grid[None], mode="bilinear", padding_mode="border", align_corners=False
    )[0]
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= Ws) & (uv[..., 1] >= 0) & (uv[..., 1] <= Hs)
    valid = (finite & (z > 1e-6) & inside)[None]
    return torch.where(valid, warped, torch.zeros_like(warped)), valid
