"""Autocruise: a camera path chosen from the input's disparity (InfiniteNature's skyline balance).

Make-It-4D (§3.4) runs InfiniteNature(-Zero)'s auto-pilot once on the input view to get the end pose
c_N, then interpolates c_1 -> c_N over N frames. The auto-pilot keeps the horizon at a fixed height
and the near ground at a fixed fraction of the frame:

- sky = clamp(20 (0.1 - disp), 0, 1): the look target row is 0.5 + mean(sky) - horizon (much sky
  -> look lower); its column leans toward the half of the image with more sky;
- ground = clamp(10 (disp - 0.4), 0, 1): the move target row is horizon + (near_fraction - mean(ground))
  (much near ground -> move up, away from it);
- every frame the look and move directions are lerped toward their targets (0.05 and 0.2) and the
  camera steps ``speed`` along the move direction. The targets are fixed (they come from the input
  view), which gives the end pose; the frames between are slerp + linear interpolation of the poses.
"""

from __future__ import annotations

import torch

from wanderview.cameras.camera import Camera, look_at_pose
from wanderview.cameras.trajectories import interpolate_poses


def skyline_targets(disp: torch.Tensor, horizon: float = 0.4, near_fraction: float = 0.2) -> dict[str, float]:
    """Look and move targets (fractions of the image, x right, y down) from normalised disparity.

    Args:
        disp: (1, H, W) disparity normalised to [0, 1] (1 = nearest).
        horizon: wanted horizon height (fraction of the image from the top).
        near_fraction: wanted fraction of near ground in view.
    Returns:
        dict with look_x, look_y, move_x, move_y, sky_fraction, ground_fraction.
    """
    if disp.ndim != 3 or disp.shape[0] != 1:
        raise ValueError(f"disp must be (1, H, W), got {tuple(disp.shape)}")
    W = disp.shape[2]
    sky = (20.0 * (0.1 - disp)).clamp(0, 1)
    ground = (10.0 * (disp - 0.4)).clamp(0, 1)
    sky_fraction = float(sky.mean())
    ground_fraction = float(ground.mean())
    sky_left, sky_right = float(sky[..., : W // 2].mean()), float(sky[..., W - W // 2 :].mean())
    look_x = min(max(0.5 + 0.5 * (sky_right - sky_left), 0.0), 1.0)
    look_y = min(max(0.5 + sky_fraction - horizon, 0.0), 1.0)
    move_y = min(max(horizon + (near_fraction - ground_fraction), 0.0), 1.0)
    return {"look_x": look_x, "look_y": look_y, "move_x": look_x, "move_y": move_y,
            "sky_fraction": sky_fraction, "ground_fraction": ground_fraction}  # fmt: skip


def _ray(camera: Camera, x: float, y: float) -> torch.Tensor:
    """Unit camera-frame direction (3,) through the image point at fractions (x, y)."""
    pix = torch.tensor([x * camera.width, y * camera.height, 1.0], dtype=torch.float64)
    d = torch.linalg.solve(camera.K.double(), pix)
    return d / d.norm()


def autocruise(
    camera: Camera,
    disp: torch.Tensor,
    num_frames: int,
    speed: float,
    look_lerp: float = 0.05,
    move_lerp: float = 0.2,
    horizon: float = 0.4,
    near_fraction: float = 0.2,
    fly_out: bool = False,
) -> Camera:
    """The autocruise path (N cameras) from ``camera`` (frame 0) guided by its disparity.

    Args:
        camera: the input camera (a single one; its pose is frame 0).
        disp: (1, H, W) normalised disparity of the input view.
        num_frames: N >= 1.
        speed: distance per frame (world units).
        look_lerp, move_lerp: per-frame lerp factors toward the look / move targets.
        horizon, near_fraction: see :func:`skyline_targets`.
        fly_out: move backward (the camera flies out of the image), looking the same way.
    Returns:
        Camera of batch (N,), the input camera's intrinsics and size.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    t = skyline_targets(disp, horizon, near_fraction)
    look_target, move_target = _ray(camera, t["look_x"], t["look_y"]), _ray(camera, t["move_x"], t["move_y"])
    look = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    move = look.clone()
    position = torch.zeros(3, dtype=torch.float64)
    for _ in range(num_frames - 1):
        look = look + look_lerp * (look_target - look)
        look = look / look.norm()
        move = move + move_lerp * (move_target - move)
        move = move / move.norm()
        position = position + (-speed if fly_out else speed) * move
    end = look_at_pose(position.float(), (position + look).float())  # camera frame of the input view
    keys = torch.stack([torch.eye(4), end]).to(camera.cam_to_world)
    relative = interpolate_poses(keys, num_frames)
    poses = camera.cam_to_world @ relative
    return Camera(camera.K.expand(num_frames, 3, 3).clone(), poses, camera.width, camera.height)
