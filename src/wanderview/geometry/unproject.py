"""Depth <-> points <-> pixels. Pixel centres at +0.5, z-depth, OpenCV axes."""

from __future__ import annotations

import torch

# project_points lives with the other transforms (Camera.project uses it); re-exported here
from wanderview.geometry.transforms import project_points, transform_points

__all__ = ["depth_to_disp", "disp_to_depth", "pixel_grid", "project_points", "unproject_depth"]


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(H, W, 2) pixel-centre coordinates (u + 0.5, v + 0.5)."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype) + 0.5,
        torch.arange(width, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )
    return torch.stack([u, v], dim=-1)


def unproject_depth(
    depth: torch.Tensor, K: torch.Tensor, cam_to_world: torch.Tensor | None = None
) -> torch.Tensor:
    """Lift every pixel centre to 3D.

    Args:
        depth: (1, H, W) z-depth.
        K: (3, 3) intrinsics in pixels.
        cam_to_world: (4, 4) pose; None returns camera-frame points.
    Returns:
        (H, W, 3) points (world frame if a pose is given).
    """
    if depth.ndim != 3 or depth.shape[0] != 1:
        raise ValueError(f"depth must be (1, H, W), got {tuple(depth.shape)}")
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3, 3), got {tuple(K.shape)}")
    _, H, W = depth.shape
    K = K.to(depth)
    uv = pixel_grid(H, W, depth.device, depth.dtype)
    z = depth[0]
    y = (uv[..., 1] - K[1, 2]) / K[1, 1]
    x = (uv[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    points = torch.stack([x * z, y * z, z], dim=-1)
    if cam_to_world is not None:
        points = transform_points(cam_to_world.to(depth), points)
    return points


def depth_to_disp(depth: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Disparity 1/depth; 0 where depth is inf. Any shape."""
    return 1.0 / depth.clamp_min(eps)


def disp_to_depth(disp: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Depth 1/disparity; inf where disparity is 0. Any shape."""
    return torch.where(disp > eps, 1.0 / disp.clamp_min(eps), torch.full_like(disp, float("inf")))
