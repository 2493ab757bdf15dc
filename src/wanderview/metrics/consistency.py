"""3D-consistency metrics of a video with its own depth and cameras (no ground truth needed).

- :func:`photometric_consistency` — Make-It-4D (Shen et al., ACM MM 2023, Sec. 4.1): the L1 error,
  times 100, between a frame and the next frame backward-warped into it with the run's depth and
  cameras; averaged over consecutive pairs. Make-It-4D freezes dynamic content for this measure;
  run folders hold only the static render, so every valid pixel counts.
- :func:`depth_consistency` — temporal depth consistency: each frame's depth is lifted to 3D and
  compared with the previous frame's depth at the same points, as mean relative error.
- :func:`density` — fraction of pixels whose depth passes a multi-view geometric consistency check
  (the forward-backward test of COLMAP's stereo fusion and MVSNet's depth fusion), standing in for
  SceneScape's "percentage of pixels recovered by COLMAP" whose dense stereo needs CUDA.

Visibility: a pixel of frame t whose 3D point lies more than ``occlusion_tol`` (relative) *behind*
the other frame's surface is hidden in that frame (disoccluded), not inconsistent, and is skipped.
Points in front of the other frame's surface are physically impossible for a consistent video and
do count.
"""

from __future__ import annotations

import math

import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import pixel_grid, project_points, unproject_depth
from wanderview.geometry.warp import backward_warp


def _check_video(frames: torch.Tensor | None, depths: torch.Tensor, cameras: Camera) -> None:
    if depths.ndim != 4 or depths.shape[1] != 1:
        raise ValueError(f"depths must be (N, 1, H, W), got {tuple(depths.shape)}")
    H, W = depths.shape[2:]
    if frames is not None and (frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[2:] != (H, W)):
        raise ValueError(f"frames must be (N, 3, {H}, {W}), got {tuple(frames.shape)}")
    if len(cameras) != depths.shape[0] or (cameras.height, cameras.width) != tuple(depths.shape[2:]):
        size = f"{len(cameras)} of {cameras.width}x{cameras.height}"
        raise ValueError(f"cameras ({size}) do not match depths {tuple(depths.shape)}")


def _pair_geometry(
    depth_dst: torch.Tensor, cam_dst: Camera, cam_src: Camera
) -> tuple[torch.Tensor, torch.Tensor]:
    """uv (H, W, 2) and z (H, W) of each dst pixel's 3D point seen from the src camera."""
    points = unproject_depth(depth_dst, cam_dst.K, cam_dst.cam_to_world)
    return project_points(points, cam_src.K, cam_src.world_to_cam)


def _visible(
    depth_dst: torch.Tensor, depth_src: torch.Tensor, cam_dst: Camera, cam_src: Camera, occlusion_tol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each dst pixel: z in src (1,H,W), src depth sampled there (1,H,W), and visibility (1,H,W) bool."""
    _, z_in_src = _pair_geometry(depth_dst, cam_dst, cam_src)
    z_in_src = z_in_src.unsqueeze(0)
    sampled, valid = backward_warp(depth_src, depth_dst, cam_src, cam_dst)
    ok = valid & torch.isfinite(sampled) & (sampled > 0) & torch.isfinite(depth_dst) & (z_in_src > 0)
    hidden = z_in_src > sampled * (1.0 + occlusion_tol)
    return z_in_src, sampled, ok & ~hidden


def photometric_consistency(
    frames: torch.Tensor, depths: torch.Tensor, cameras: Camera, occlusion_tol: float = 0.05
) -> float:
    """Make-It-4D consistency: 100 x mean L1 between frame t and frame t+1 warped back into it.

    Args:
        frames: (N, 3, H, W) video in [0, 1].
        depths: (N, 1, H, W) z-depth of each frame (inf = unknown).
        cameras: batch of N cameras.
        occlusion_tol: relative depth margin of the visibility test (see module docstring).
    Returns:
        mean over consecutive pairs of 100 x mean |I_t - warp(I_{t+1})| on visible pixels
        (all channels); ``nan`` when no pair has a visible pixel.
    """
    _check_video(frames, depths, cameras)
    errors = []
    for t in range(len(cameras) - 1):
        _, _, visible = _visible(depths[t], depths[t + 1], cameras[t], cameras[t + 1], occlusion_tol)
        if not visible.any():
            continue
        warped, _ = backward_warp(frames[t + 1], depths[t], cameras[t + 1], cameras[t])
        diff = (frames[t] - warped).abs()[visible.expand_as(frames[t])]
        errors.append(100.0 * float(diff.mean()))
    return sum(errors) / len(errors) if errors else math.nan


def depth_consistency(depths: torch.Tensor, cameras: Camera, occlusion_tol: float = 0.05) -> float:
    """Temporal depth consistency: mean |z - d| / d between frames t-1 and t.

    For each pixel of frame t, ``z`` is the depth of its 3D point in camera t-1 and ``d`` the depth
    of frame t-1 at the pixel it projects to (bilinear). 0 for a perfectly consistent video.

    Args:
        depths: (N, 1, H, W) z-depth of each frame (inf = unknown).
        cameras: batch of N cameras.
        occlusion_tol: relative margin beyond which a point is hidden in frame t-1 and skipped.
    Returns:
        mean over frames 1..N-1 of the mean relative error; ``nan`` with no overlapping pixel.
    """
    _check_video(None, depths, cameras)
    errors = []
    for t in range(1, len(cameras)):
        z, sampled, visible = _visible(depths[t], depths[t - 1], cameras[t], cameras[t - 1], occlusion_tol)
        if visible.any():
            errors.append(float(((z - sampled).abs() / sampled)[visible].mean()))
    return sum(errors) / len(errors) if errors else math.nan


def consistent_depth_mask(
    depths: torch.Tensor,
    cameras: Camera,
    index: int,
    window: int = 2,
    max_reproj_px: float = 1.0,
    max_rel_depth: float = 0.01,
    min_views: int = 1,
) -> torch.Tensor:
    """(1, H, W) bool: pixels of frame ``index`` whose depth passes the forward-backward check.

    For pixel p with depth d in frame i and a neighbour j (|i - j| <= window): lift p to 3D,
    project into j at uv_j, read j's depth there (bilinear), lift that to 3D and project back into
    i at p' with depth d'. View j agrees when ||p' - p|| < ``max_reproj_px`` and
    |d' - d| / d < ``max_rel_depth`` (the thresholds of MVSNet's fusion; COLMAP's stereo fusion
    uses the same test). The pixel passes when at least ``min_views`` neighbours agree.
    """
    _check_video(None, depths, cameras)
    depth_i, cam_i = depths[index], cameras[index]
    H, W = depth_i.shape[1:]
    uv_i = pixel_grid(H, W, depth_i.device, depth_i.dtype)
    agree = torch.zeros(H, W, dtype=torch.int32, device=depth_i.device)
    for j in range(max(0, index - window), min(len(cameras), index + window + 1)):
        if j == index:
            continue
        cam_j = cameras[j]
        uv_j, z_j = _pair_geometry(depth_i, cam_i, cam_j)
        sampled, valid = backward_warp(depths[j], depth_i, cam_j, cam_i)
        d_j = sampled[0]
        # lift (uv_j, d_j) in camera j back to the world and into camera i
        K = cam_j.K.to(depth_i)
        y = (uv_j[..., 1] - K[1, 2]) / K[1, 1]
        x = (uv_j[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
        cam_points = torch.stack([x * d_j, y * d_j, d_j], dim=-1)
        world = cam_points @ cam_j.cam_to_world[:3, :3].to(depth_i).T + cam_j.cam_to_world[:3, 3].to(depth_i)
        uv_back, z_back = project_points(world, cam_i.K, cam_i.world_to_cam)
        ok = valid[0] & torch.isfinite(d_j) & (d_j > 0) & (z_j > 0) & torch.isfinite(depth_i[0])
        reproj = (uv_back - uv_i).norm(dim=-1)
        rel = (z_back - depth_i[0]).abs() / depth_i[0]
        agree += (ok & (reproj < max_reproj_px) & (rel < max_rel_depth)).int()
    return (agree >= min_views).unsqueeze(0)


def density(depths: torch.Tensor, cameras: Camera, window: int = 2, min_views: int = 1) -> float:
    """Fraction of all pixels of all frames that pass :func:`consistent_depth_mask`.

    Args:
        depths: (N, 1, H, W) z-depth (inf = unknown, never passes).
        cameras: batch of N cameras (N >= 2).
        window: neighbours on each side checked.
        min_views: neighbours that must agree.
    """
    _check_video(None, depths, cameras)
    passed = 0
    for i in range(len(cameras)):
        passed += int(consistent_depth_mask(depths, cameras, i, window, min_views=min_views).sum())
    return passed / depths[:, 0].numel()
