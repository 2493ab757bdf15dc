"""Cycle-rendered training pairs for the self-supervised inpainter (photo3d, Wang et al. §3.2).

From an image V with depth D at camera C: sample a nearby camera T, forward-render (V', D', M')
with :func:`wanderview.geometry.warp.forward_warp` (the renderer inference uses), then render the
valid part of that view back to C. What does not come back is exactly what the scene hides from T:
thin slivers beside depth edges, the shape of the holes a real camera move opens. The pair is
``(Ṽ, M̃) -> V``.

The intermediate view is rendered on an enlarged canvas (``expand_canvas``) so that content that
merely leaves the field of view of T comes back; the holes are then disocclusions only (a single
plane under pure rotation gives none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import project_points, unproject_depth


@dataclass(frozen=True)
class CycleConfig:
    """Ranges of the random nearby camera, relative to the input camera.

    Attributes:
        max_translation: (x, y, z) largest offset of the camera centre, in units of the median
            scene depth (0.06 = 6 % of the way to the median surface).
        max_rotation_deg: largest rotation angle about a random axis, in degrees.
        expand_canvas: render the nearby view on a canvas large enough to hold every point, so
            the holes are disocclusions only (not content that left the frame).
        max_canvas_scale: cap on the enlarged canvas size relative to the image (memory guard).
    """

    max_translation: tuple[float, float, float] = (0.08, 0.04, 0.08)
    max_rotation_deg: float = 3.0
    expand_canvas: bool = True
    max_canvas_scale: float = 2.0


def _rotation_about(axis: torch.Tensor, angle: float) -> torch.Tensor:
    axis = axis / axis.norm().clamp_min(1e-12)
    x, y, z = axis.tolist()
    K = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return torch.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * (K @ K)


def sample_relative_pose(
    depth: torch.Tensor, config: CycleConfig, generator: torch.Generator
) -> torch.Tensor:
    """A random (4, 4) relative pose T (new camera in the input camera's frame).

    depth: (1, H, W) z-depth (inf = unknown); translations scale with its finite median.
    """
    finite = depth[torch.isfinite(depth)]
    scale = float(finite.median()) if finite.numel() else 1.0
    u = torch.rand(3, generator=generator) * 2 - 1
    t = u * torch.tensor(config.max_translation) * scale
    axis = torch.randn(3, generator=generator)
    angle = math.radians(config.max_rotation_deg) * float(torch.rand((), generator=generator))
    pose = torch.eye(4)
    pose[:3, :3] = _rotation_about(axis, angle)
    pose[:3, 3] = t
    return pose


def _expanded_camera(camera: Camera, depth: torch.Tensor, pose: torch.Tensor, max_scale: float) -> Camera:
    """The camera at ``pose`` with its canvas grown (principal point shifted) to hold every point."""
    points = unproject_depth(depth.float(), camera.K.float(), camera.cam_to_world.float())
    valid = torch.isfinite(depth[0])
    uv, z = project_points(points[valid], camera.K.float(), torch.linalg.inv(pose))
    uv = uv[z > 1e-6]
    W, H = camera.width, camera.height
    if uv.numel() == 0:
        return camera.with_pose(pose)
    pad_l = min(max(0, math.ceil(-float(uv[:, 0].min())) + 1), int(W * (max_scale - 1) / 2))
    pad_r = min(max(0, math.ceil(float(uv[:, 0].max()) - W) + 1), int(W * (max_scale - 1) / 2))
    pad_t = min(max(0, math.ceil(-float(uv[:, 1].min())) + 1), int(H * (max_scale - 1) / 2))
    pad_b = min(max(0, math.ceil(float(uv[:, 1].max()) - H) + 1), int(H * (max_scale - 1) / 2))
    K = camera.K.clone()
    K[0, 2] += pad_l
    K[1, 2] += pad_t
    return Camera(K, pose, W + pad_l + pad_r, H + pad_t + pad_b)


def cycle_render(
    image: torch.Tensor,
    depth: torch.Tensor,
    camera: Camera,
    relative_pose: torch.Tensor,
    expand_canvas: bool = True,
    max_canvas_scale: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render to a nearby camera and back.

    Args:
        image: (3, H, W) in [0, 1].
        depth: (1, H, W) z-depth, inf = empty.
        camera: the (single) camera of the image.
        relative_pose: (4, 4) pose of the nearby camera in the image camera's frame.
    Returns:
        masked: (3, H, W) the back-rendered image, 0 in holes; holes: (1, H, W) bool, True where
        nothing came back (the pixels to inpaint).
    """
    from wanderview.render.warp import forward_warp

    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    if depth.shape != (1, *image.shape[1:]):
        raise ValueError(f"depth must be (1, {image.shape[1]}, {image.shape[2]}), got {tuple(depth.shape)}")
    if relative_pose.shape != (4, 4):
        raise ValueError(f"relative_pose must be (4, 4), got {tuple(relative_pose.shape)}")
    pose = camera.cam_to_world.float().cpu() @ relative_pose.float().cpu()
    if expand_canvas:
        nearby = _expanded_camera(camera.to("cpu"), depth.cpu(), pose, max_canvas_scale)
    else:
        nearby = camera.to("cpu").with_pose(pose)
    nearby = nearby.to(image.device)
    there = forward_warp(image, depth, camera, nearby)
    keep = there.alpha >= 0.5
    depth_there = torch.where(keep, there.depth, torch.full_like(there.depth, float("inf")))
    back = forward_warp(there.rgb * keep, depth_there, nearby, camera)
    holes = back.alpha < 0.5
    cracks = renderer_cracks(holes)
    # Pixels the input itself never had (inf depth) are not something to learn to fill.
    holes = holes & ~cracks & torch.isfinite(depth)
    back_rgb = torch.where(cracks, image, back.rgb)
    masked = torch.where(holes, torch.zeros_like(back_rgb), back_rgb).clamp(0, 1)
    return masked, holes


def renderer_cracks(holes: torch.Tensor) -> torch.Tensor:
    """(1, H, W) bool: the hole pixels that a 2x2 morphological opening removes.

    A splatting renderer leaves cracks one pixel wide where a surface is magnified; they are not
    disocclusions (which open beside depth edges and grow with the parallax), so they are not
    training holes. Every hole feature at least 2 pixels wide in both directions survives.
    """
    h = holes.float()[None]
    eroded = -F.max_pool2d(-F.pad(h, (0, 1, 0, 1), value=0.0), 2, stride=1)  # all of the 2x2 at (i, j)
    opened = F.max_pool2d(F.pad(eroded, (1, 0, 1, 0), value=0.0), 2, stride=1)  # any 2x2 covering (i, j)
    return holes & ~(opened[0] > 0.5)


@dataclass
class PairPool:
    """A pool of cycle-rendered pairs: targets (N,3,H,W), masked (N,3,H,W), holes (N,1,H,W) bool.
    Every entry shares one image size (pairs of differently sized images go into separate pools)."""

    targets: list[torch.Tensor]
    masked: list[torch.Tensor]
    holes: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.targets)

    def sample_batch(
        self, batch_size: int, crop: int, generator: torch.Generator, hole_bias: float = 0.8
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random crops (with horizontal flips) of random pairs.

        With probability ``hole_bias`` a crop is centred on a random hole pixel, because holes are
        a few percent of an image and crops without any teach the model nothing about filling.
        Returns targets (B,3,crop,crop), masked (B,3,crop,crop), holes (B,1,crop,crop) bool.
        """
        if not self.targets:
            raise ValueError("the pair pool is empty")
        out_t, out_m, out_h = [], [], []
        for _ in range(batch_size):
            i = int(torch.randint(len(self.targets), (), generator=generator))
            target, masked, holes = self.targets[i], self.masked[i], self.holes[i]
            H, W = target.shape[-2:]
            c = min(crop, H, W)
            ys, xs = torch.nonzero(holes[0], as_tuple=True)
            if ys.numel() and float(torch.rand((), generator=generator)) < hole_bias:
                k = int(torch.randint(ys.numel(), (), generator=generator))
                y0 = int(ys[k]) - c // 2 + int(torch.randint(-c // 4, c // 4 + 1, (), generator=generator))
                x0 = int(xs[k]) - c // 2 + int(torch.randint(-c // 4, c // 4 + 1, (), generator=generator))
            else:
                y0 = int(torch.randint(H - c + 1, (), generator=generator))
                x0 = int(torch.randint(W - c + 1, (), generator=generator))
            y0, x0 = max(0, min(y0, H - c)), max(0, min(x0, W - c))
            sl = (slice(None), slice(y0, y0 + c), slice(x0, x0 + c))
            t, m, h = target[sl], masked[sl], holes[sl]
            if float(torch.rand((), generator=generator)) < 0.5:
                t, m, h = t.flip(-1), m.flip(-1), h.flip(-1)
            out_t.append(t)
            out_m.append(m)
            out_h.append(h)
        return torch.stack(out_t), torch.stack(out_m), torch.stack(out_h)


def make_pairs(
    image: torch.Tensor,
    depth: torch.Tensor,
    camera: Camera,
    count: int,
    config: CycleConfig = CycleConfig(),
    seed: int = 0,
) -> PairPool:
    """``count`` cycle-rendered pairs of one image (each from a fresh random nearby camera).

    image: (3, H, W) in [0, 1]; depth: (1, H, W) z-depth. Seeded: same seed, same pairs.
    """
    generator = torch.Generator().manual_seed(seed)
    pool = PairPool([], [], [])
    for _ in range(count):
        pose = sample_relative_pose(depth.cpu(), config, generator)
        masked, holes = cycle_render(
            image, depth, camera, pose, config.expand_canvas, config.max_canvas_scale
        )
        pool.targets.append(image)
        pool.masked.append(masked)
        pool.holes.append(holes)
    return pool


def save_pairs(directory: str | Path, pool: PairPool, limit: int | None = None) -> list[Path]:
    """Write pairs as PNGs a person can look at: ``pair_000_target.png``, ``_masked.png`` (holes
    shown magenta) and ``_mask.png`` (white = hole). Returns the written paths."""
    from wanderview.io.images import write_image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    n = len(pool) if limit is None else min(limit, len(pool))
    for i in range(n):
        holes = pool.holes[i]
        shown = torch.where(holes, torch.tensor([1.0, 0.0, 1.0])[:, None, None], pool.masked[i])
        images = {
            "target": pool.targets[i],
            "masked": shown,
            "mask": holes.float().expand(3, -1, -1),
        }
        for name, rgb in images.items():
            path = directory / f"pair_{i:03d}_{name}.png"
            write_image(path, rgb.detach().cpu().clamp(0, 1))
            written.append(path)
    return written
