"""Rigid transforms as pure tensor functions (the lowest layer: cameras and geometry both use them)."""

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
