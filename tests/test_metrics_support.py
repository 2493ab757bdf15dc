"""A tiny textured room rendered by exact ray casting, shared by the metrics tests.

The scene is the inside of the box [-1, 1] x [-1, 1] x [-1, 3] (OpenCV axes, y down); each of its
six walls carries its own multi-scale noise texture (rich in SIFT corners). A camera inside a
convex box sees, along each ray, the nearest wall plane hit at positive distance, so colour and
z-depth are exact. Until ``wanderview.data.synthetic`` is available this keeps the tests
independent of the project's own renderers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import map_coordinates

from wanderview.cameras.camera import Camera, look_at_pose
from wanderview.geometry.unproject import unproject_depth

BOX_MIN = np.array([-1.0, -1.0, -1.0])
BOX_MAX = np.array([1.0, 1.0, 3.0])
_TEX = 128  # texels per wall side


def _textures(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = np.zeros((6, 3, _TEX, _TEX))
    for scale, weight in ((4, 0.45), (16, 0.35), (64, 0.2)):
        coarse = rng.random((6, 3, scale, scale))
        rows = np.linspace(0, scale - 1, _TEX)
        grid = np.meshgrid(rows, rows, indexing="ij")
        for w in range(6):
            for c in range(3):
                tex[w, c] += weight * map_coordinates(coarse[w, c], grid, order=1)
    return tex


TEXTURES = _textures()


def render_room(camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact rgb (3, H, W) and z-depth (1, H, W) of the textured room seen by a single camera."""
    H, W = camera.height, camera.width
    K = camera.K.double().numpy()
    c2w = camera.cam_to_world.double().numpy()
    dirs_cam = unproject_depth(torch.ones(1, H, W, dtype=torch.float64), torch.from_numpy(K)).numpy()
    dirs = dirs_cam.reshape(-1, 3) @ c2w[:3, :3].T  # z-depth 1 along the optical axis
    origin = c2w[:3, 3]
    best_t = np.full(len(dirs), np.inf)
    wall = np.zeros(len(dirs), dtype=int)
    for axis in range(3):
        for side, bound in enumerate((BOX_MIN[axis], BOX_MAX[axis])):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (bound - origin[axis]) / dirs[:, axis]
            hit = (t > 1e-9) & (t < best_t)
            best_t[hit] = t[hit]
            wall[hit] = 2 * axis + side
    points = origin + best_t[:, None] * dirs
    rgb = np.zeros((3, len(dirs)))
    for w in range(6):
        sel = wall == w
        axis = w // 2
        a_ax, b_ax = [i for i in range(3) if i != axis]
        uv = [
            (points[sel, ax] - BOX_MIN[ax]) / (BOX_MAX[ax] - BOX_MIN[ax]) * (_TEX - 1) for ax in (a_ax, b_ax)
        ]
        for c in range(3):
            rgb[c, sel] = map_coordinates(TEXTURES[w, c], uv, order=1, mode="nearest")
    depth = best_t.reshape(1, H, W)  # t is the z-depth because the directions have unit z
    return torch.from_numpy(rgb.reshape(3, H, W)).float().clamp(0, 1), torch.from_numpy(depth).float()


def room_cameras(num_frames: int = 8, width: int = 256, height: int = 192) -> Camera:
    """A sideways-and-forward arc with a slight pan: non-collinear centres, parallax everywhere."""
    K = Camera.intrinsics_from_fov(70.0, width, height)
    poses = []
    for i in range(num_frames):
        s = i / max(num_frames - 1, 1)
        eye = (0.5 * s - 0.25, 0.1 * np.sin(np.pi * s), -0.6 + 0.4 * s)
        target = (0.2 * s - 0.1, 0.0, 2.0)
        poses.append(look_at_pose(eye, target))
    return Camera(K, torch.stack(poses), width, height)


def write_run(folder: Path, cameras: Camera, frames: list[torch.Tensor], depths: list[torch.Tensor],
              masks: list[torch.Tensor] | None = None) -> Path:
    """Write a run folder (docs/design.md format) with PIL/numpy/json directly."""
    for sub in ("frames", "depth", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    entries = []
    gl = np.diag([1.0, -1.0, -1.0, 1.0])
    for i, (rgb, depth) in enumerate(zip(frames, depths)):
        pixels = (rgb.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(folder / "frames" / f"{i:05d}.png")
        np.save(folder / "depth" / f"{i:05d}.npy", depth[0].numpy().astype(np.float32))
        if masks is not None:
            hole_pixels = masks[i][0].numpy().astype(np.uint8) * 255
            Image.fromarray(hole_pixels).save(folder / "masks" / f"{i:05d}.png")
        c2w = cameras.cam_to_world[i].double().numpy() @ gl
        entries.append({"file_path": f"frames/{i:05d}.png", "transform_matrix": c2w.tolist()})
    K = cameras.K[0]
    meta = {"w": cameras.width, "h": cameras.height, "fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]),
            "cx": float(K[0, 2]), "cy": float(K[1, 2]), "frames": entries}
    (folder / "cameras.json").write_text(json.dumps(meta))
    return folder


def test_room_depth_lies_on_the_walls():
    cameras = room_cameras(2, 64, 48)
    rgb, depth = render_room(cameras[1])
    assert rgb.shape == (3, 48, 64) and depth.shape == (1, 48, 64)
    points = unproject_depth(depth.double(), cameras.K[1].double(), cameras.cam_to_world[1].double())
    gap = np.minimum(np.abs(points.numpy() - BOX_MIN), np.abs(points.numpy() - BOX_MAX)).min(axis=-1)
    assert gap.max() < 1e-4
    assert rgb.std() > 0.05  # textured, not flat
