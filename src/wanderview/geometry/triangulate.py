"""Two-view triangulation with known cameras (pure tensor functions).

Used where cameras are given but no 3D points are (fourreal with ``--freeze-cameras``): 3DGS, like
the paper's COLMAP initialisation, starts far better from points on the surfaces than from random
points in the frusta, which a photometric loss alone turns into view-dependent floaters.
"""

from __future__ import annotations

import torch


def projection_matrix(K: torch.Tensor, cam_to_world: torch.Tensor) -> torch.Tensor:
    """(3, 3) intrinsics and a (4, 4) pose -> the (3, 4) matrix K [R | t] mapping world to pixels."""
    world_to_cam = torch.linalg.inv(cam_to_world.double())
    return K.double() @ world_to_cam[:3]


def triangulate_linear(
    uv_a: torch.Tensor, uv_b: torch.Tensor, P_a: torch.Tensor, P_b: torch.Tensor
) -> torch.Tensor:
    """Linear (DLT) triangulation of matched pixels.

    Args:
        uv_a, uv_b: (N, 2) pixel coordinates (pixel centres at +0.5) in views a and b.
        P_a, P_b: (3, 4) projection matrices of the two views.
    Returns:
        (N, 3) float64 world points (the null vector of the 4x4 DLT system of each match).
    """
    if uv_a.shape != uv_b.shape or uv_a.ndim != 2 or uv_a.shape[1] != 2:
        raise ValueError(f"uv_a and uv_b must both be (N, 2), got {tuple(uv_a.shape)}, {tuple(uv_b.shape)}")
    uv_a, uv_b, P_a, P_b = uv_a.double(), uv_b.double(), P_a.double(), P_b.double()
    rows = torch.stack(
        [
            uv_a[:, :1] * P_a[2] - P_a[0],
            uv_a[:, 1:] * P_a[2] - P_a[1],
            uv_b[:, :1] * P_b[2] - P_b[0],
            uv_b[:, 1:] * P_b[2] - P_b[1],
        ],
        dim=1,
    )  # fmt: skip  (N, 4, 4)
    _, _, vh = torch.linalg.svd(rows)
    homogeneous = vh[:, -1]
    return homogeneous[:, :3] / homogeneous[:, 3:]


def project(points: torch.Tensor, P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3) world points through a (3, 4) projection -> pixels (N, 2) and z-depth (N,)."""
    h = points.double() @ P[:, :3].double().T + P[:, 3].double()
    z = h[:, 2]
    return h[:, :2] / z.clamp_min(1e-12)[:, None], z


def triangulation_angle(points: torch.Tensor, centre_a: torch.Tensor, centre_b: torch.Tensor) -> torch.Tensor:
    """(N,) angle in degrees between the rays from two camera centres (3,) to each point (N, 3)."""
    ray_a = torch.nn.functional.normalize(points.double() - centre_a.double(), dim=-1)
    ray_b = torch.nn.functional.normalize(points.double() - centre_b.double(), dim=-1)
    return torch.rad2deg(torch.arccos((ray_a * ray_b).sum(-1).clamp(-1, 1)))
