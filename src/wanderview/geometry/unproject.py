"""Depth <-> points <-> pixels. Pixel centres at +0.5, z-depth, OpenCV axes."""

from __future__ import annotations

import torch

from wanderview.geometry.transforms import transform_points


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


def project_points(
    points: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project points to pixels.

    Args:
        points: (..., 3) world points (camera points if ``world_to_cam`` is None).
        K: (3, 3) intrinsics.
        world_to_cam: (4, 4) or None.
    Returns:
        uv: (..., 2) pixel coordinates with centres at +0.5; z: (...) z-depth (may be <= 0: behind).
    """
    if points.shape[-1] != 3:
        raise ValueError(f"points must be (..., 3), got {tuple(points.shape)}")
    cam = points if world_to_cam is None else transform_points(world_to_cam.to(points), points)
    K = K.to(points)
    z = cam[..., 2]
    safe_z = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    xn, yn = cam[..., 0] / safe_z, cam[..., 1] / safe_z
    u = K[0, 0] * xn + K[0, 1] * yn + K[0, 2]
    v = K[1, 1] * yn + K[1, 2]
    return torch.stack([u, v], dim=-1), z


def depth_to_disp(depth: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Disparity 1/depth; 0 where depth is inf. Any shape."""
    return 1.0 / depth.clamp_min(eps)


def disp_to_depth(disp: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Depth 1/disparity; inf where disparity is 0. Any shape."""
    return torch.where(disp > eps, 1.0 / disp.clamp_min(eps), torch.full_like(disp, float("inf")))
