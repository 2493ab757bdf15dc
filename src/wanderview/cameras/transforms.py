"""Rigid transforms and the one pinhole projection as pure tensor functions (the lowest layer: cameras
and geometry both use them)."""

from __future__ import annotations

import torch


def rigid_inverse(pose: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms. pose: (..., 4, 4) -> (..., 4, 4)."""
    if pose.shape[-2:] != (4, 4):
        raise ValueError(f"pose must be (..., 4, 4), got {tuple(pose.shape)}")
    R = pose[..., :3, :3]
    t = pose[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(pose)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def transform_points(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply a (4, 4) transform to points (..., 3) -> (..., 3)."""
    if transform.shape != (4, 4):
        raise ValueError(f"transform must be (4, 4), got {tuple(transform.shape)}")
    if points.shape[-1] != 3:
        raise ValueError(f"points must be (..., 3), got {tuple(points.shape)}")
    return points @ transform[:3, :3].T + transform[:3, 3]


def project_points(
    points: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pinhole projection: world (or camera) points to pixel coordinates and z-depth.

    The one implementation used by ``Camera.project``, the rasteriser, the point splatter and the
    warps. Each camera coordinate is three fused multiply-adds per axis, which on CPU beats a
    (N, 3) @ (3, 3) matmul and keeps autograd's graph small.

    Args:
        points: (..., 3) world points (camera points if ``world_to_cam`` is None).
        K: (3, 3) intrinsics in pixels (skew K[0, 1] honoured).
        world_to_cam: (4, 4) or None.
    Returns:
        uv: (..., 2) pixel coordinates with pixel centres at +0.5 (finite garbage where z <= 0);
        z: (...) z-depth in the camera (may be <= 0: behind).

    >>> uv, z = project_points(torch.tensor([[1.0, -0.5, 2.0]]), torch.eye(3))
    >>> uv.tolist(), z.tolist()
    ([[0.5, -0.25]], [2.0])
    """
    if points.shape[-1] != 3:
        raise ValueError(f"points must be (..., 3), got {tuple(points.shape)}")
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3, 3), got {tuple(K.shape)}")
    K = K.to(points)
    px, py, pz = points.unbind(dim=-1)
    if world_to_cam is None:
        x, y, z = px, py, pz
    else:
        if world_to_cam.shape != (4, 4):
            raise ValueError(f"world_to_cam must be (4, 4), got {tuple(world_to_cam.shape)}")
        T = world_to_cam.to(points)
        x, y, z = (T[i, 0] * px + T[i, 1] * py + T[i, 2] * pz + T[i, 3] for i in range(3))
    safe_z = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    xn, yn = x / safe_z, y / safe_z
    return torch.stack([K[0, 0] * xn + K[0, 1] * yn + K[0, 2], K[1, 1] * yn + K[1, 2]], dim=-1), z
