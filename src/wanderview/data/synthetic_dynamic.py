"""A procedural dynamic scene with exact ground truth: a textured box sliding through a static room.

Built on the ray caster of :mod:`wanderview.data.synthetic` (exact depth, view-independent
colours). The box's texture is attached to the box (coordinates relative to its corner), so it
moves with it as a rigid object does; the floor and back wall never move. Time runs in [0, 1];
the box's centre moves on a straight line in x with a small arc in y (``box_offset``).

:func:`dynamic_dataset` renders what 4Real reconstructs from:

- the **reference video**: a fixed camera (the canonical camera, identity pose) over
  ``num_reference`` evenly spaced times in [0, 1] (the canonical frame is frame 0, time 0);
- the **freeze-time video**: an orbit of ``num_freeze`` cameras around the box at the canonical
  time, sweeping ±``orbit_deg`` about the canonical camera, which it passes through (the frame
  at angle 0 equals the canonical reference frame);
- held-out views: orbit cameras between the training angles at time 0, and cameras off both
  the reference and the orbit at times between the reference times, with the box's pixel mask.

``detail`` > 0 blends a fine random-cell pattern into every texture (:class:`DetailedTexture`).
The default smooth noise has too few corners for SIFT (about 35 keypoints per 256x192 frame, 30
two-view inliers: COLMAP starts no model), so the SfM path is tested on the detailed scene; the
fitting benchmarks keep the smooth default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from wanderview.cameras.camera import Camera, look_at_pose
from wanderview.data.synthetic import Box, Plane, Scene, Texture, camera_rays, cast_rays

BOX_SIZE = 0.5
BOX_START = (-0.45, 0.75, 2.6)  # centre at time 0 (y down: the floor is at y = 1)
BOX_TRAVEL = 0.9  # x distance covered from time 0 to 1
PIVOT = (0.0, 0.55, 2.8)  # the orbit looks at this point


@dataclass(frozen=True)
class DetailedTexture(Texture):
    """A texture with random-valued cubic cells of side ``detail_scale`` blended in by ``detail``.

    Cells give corners and blobs at a few pixels' size that SIFT finds and matches; their values
    come from a hash of the cell index, so the pattern never repeats (a checker would make every
    match ambiguous).
    """

    detail: float = 0.0
    detail_scale: float = 0.06

    def weight(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, 3) float64 texture coordinates -> (N,) mixing weight in [0, 1]."""
        smooth = super().weight(coords)
        if self.detail <= 0:
            return smooth
        cells = torch.floor(coords / self.detail_scale)
        key = cells @ torch.tensor([12.9898, 78.233, 37.719], dtype=coords.dtype, device=coords.device)
        value = torch.frac(torch.sin(key + 0.618 * self.seed).abs() * 43758.5453)
        return (1.0 - self.detail) * smooth + self.detail * value


def _texture(detail: float, *args) -> Texture:
    return DetailedTexture("noise", *args, detail=detail) if detail > 0 else Texture("noise", *args)


@dataclass(frozen=True)
class AttachedBox(Box):
    """A box whose texture is a function of the point relative to ``min_corner`` (moves with it)."""

    texture: Texture = field(default_factory=lambda: Texture("noise", scale=0.25))

    def texture_coords(self, points: torch.Tensor) -> torch.Tensor:
        return points - torch.tensor(self.min_corner, dtype=points.dtype, device=points.device)


def box_offset(time: float) -> tuple[float, float, float]:
    """World translation (3,) of the box from its canonical place at ``time`` in [0, 1]."""
    return (BOX_TRAVEL * time, -0.15 * math.sin(math.pi * time), 0.0)


def scene_at(time: float, seed: int = 0, detail: float = 0.0) -> Scene:
    """The scene at ``time``: floor, back wall (both static) and the box moved by ``box_offset``;
    ``detail`` in [0, 1] blends fine random cells into the textures (0 = the smooth default)."""
    floor = Plane((0.0, 1.0, 2.8), (0.0, -1.0, 0.0), _texture(detail, (0.8, 0.75, 0.6), (0.45, 0.4, 0.3),
                  0.7, seed), half_extents=(3.0, 3.0))  # fmt: skip
    wall = Plane((0.0, -0.5, 4.5), (0.0, 0.0, -1.0), _texture(detail, (0.55, 0.65, 0.8), (0.95, 0.9, 0.8),
                 0.8, seed + 1), half_extents=(4.0, 1.5))  # fmt: skip
    dx, dy, dz = box_offset(time)
    half = BOX_SIZE / 2
    lo = (BOX_START[0] - half + dx, BOX_START[1] - half + dy, BOX_START[2] - half + dz)
    box = AttachedBox(lo, (lo[0] + BOX_SIZE, lo[1] + BOX_SIZE, lo[2] + BOX_SIZE),
                      _texture(detail, (0.85, 0.25, 0.15), (1.0, 0.85, 0.3), 0.3, seed + 2))  # fmt: skip
    return Scene("sliding_box", (floor, wall, box))


def render_dynamic(camera: Camera, time: float, seed: int = 0, detail: float = 0.0
                   ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Ray-cast one view at ``time`` (``detail``: see :func:`scene_at`).

    Returns:
        rgb (3, H, W) float32 in [0, 1] (black where empty) and the box's pixels (1, H, W) bool.
    """
    origins, dirs = camera_rays(camera)
    _, rgb, prim = cast_rays(scene_at(time, seed, detail), origins, dirs)
    H, W = camera.height, camera.width
    return rgb.T.reshape(3, H, W).float().contiguous(), (prim == 2).reshape(1, H, W)


def orbit_camera(angle_deg: float, K: torch.Tensor, width: int, height: int) -> Camera:
    """A camera on the circle through the origin around ``PIVOT`` (angle 0 = the canonical camera)."""
    px, py, pz = PIVOT
    radius = math.hypot(px, pz)
    a = math.radians(angle_deg)
    eye = (px - radius * math.sin(a), 0.0, pz - radius * math.cos(a))
    return Camera(K, look_at_pose(eye, PIVOT, (0.0, -1.0, 0.0)), width, height)


@dataclass(frozen=True)
class DynamicDataset:
    """Rendered videos and held-out views of the sliding-box scene (shapes: V views, H x W).

    Attributes:
        reference: (R, 3, H, W) fixed-camera frames; reference_cameras: batch (R,); reference_times: R.
        freeze: (F, 3, H, W) orbit at time 0; freeze_cameras: batch (F,); canonical_index: the
            freeze frame at angle 0.
        heldout_static: (S, 3, H, W) orbit views between the training angles at time 0, cameras (S,).
        heldout_dynamic: (D, 3, H, W) off-path cameras at held-out times, cameras (D,), times D,
            and the box's pixels (D, 1, H, W) bool.
    """

    reference: torch.Tensor
    reference_cameras: Camera
    reference_times: list[float]
    freeze: torch.Tensor
    freeze_cameras: Camera
    canonical_index: int
    heldout_static: torch.Tensor
    heldout_static_cameras: Camera
    heldout_dynamic: torch.Tensor
    heldout_dynamic_cameras: Camera
    heldout_dynamic_times: list[float]
    heldout_dynamic_masks: torch.Tensor


def dynamic_dataset(width: int = 128, height: int = 96, num_reference: int = 8, num_freeze: int = 12,
                    orbit_deg: float = 30.0, fov_deg: float = 60.0, seed: int = 0,
                    detail: float = 0.0) -> DynamicDataset:  # fmt: skip
    """Render the reference video, the freeze-time orbit and held-out views (see the module doc;
    ``detail``: see :func:`scene_at`)."""
    if num_reference < 2 or num_freeze < 2:
        raise ValueError(f"need at least 2 reference and 2 freeze frames, got {num_reference}, {num_freeze}")
    K = Camera.intrinsics_from_fov(fov_deg, width, height)
    canonical = orbit_camera(0.0, K, width, height)
    times = [i / (num_reference - 1) for i in range(num_reference)]
    reference = [render_dynamic(canonical, t, seed, detail)[0] for t in times]
    step = 2 * orbit_deg / (num_freeze - 1)
    c = num_freeze // 2
    angles = [step * (i - c) for i in range(num_freeze)]  # angle 0 at index c
    freeze_cams = [orbit_camera(a, K, width, height) for a in angles]
    static_angles = [step * (i - c + 0.5) for i in (0, 2, num_freeze - 3, num_freeze - 2)]
    static_cams = [orbit_camera(a, K, width, height) for a in static_angles]
    dyn_times = [(k + 0.5) / (num_reference - 1) for k in (0, num_reference // 2, num_reference - 2)]
    dyn_cams = [orbit_camera(a, K, width, height) for a in (0.4 * step, -0.6 * step, 0.5 * step)]
    dynamic = [render_dynamic(cam, t, seed, detail) for cam, t in zip(dyn_cams, dyn_times)]
    freeze = [render_dynamic(cam, 0.0, seed, detail)[0] for cam in freeze_cams]
    return DynamicDataset(
        reference=torch.stack(reference), reference_cameras=Camera.stack([canonical] * num_reference),
        reference_times=times, freeze=torch.stack(freeze),
        freeze_cameras=Camera.stack(freeze_cams), canonical_index=c,
        heldout_static=torch.stack([render_dynamic(cam, 0.0, seed, detail)[0] for cam in static_cams]),
        heldout_static_cameras=Camera.stack(static_cams),
        heldout_dynamic=torch.stack([d[0] for d in dynamic]), heldout_dynamic_cameras=Camera.stack(dyn_cams),
        heldout_dynamic_times=dyn_times, heldout_dynamic_masks=torch.stack([d[1] for d in dynamic]),
    )  # fmt: skip
