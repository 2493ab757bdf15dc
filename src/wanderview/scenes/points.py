"""A growing coloured point cloud whose points remember the size they were captured at."""

from __future__ import annotations

from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import unproject_depth
from wanderview.render.points import capture_radii, render_points
from wanderview.scenes.base import GrowingScene
from wanderview.types import RenderOutput


class PointScene(GrowingScene):
    """Points (N, 3) world, colours (N, 3) in [0, 1], radii (N,) world half-size of each splat.

    Each point is as large as the pixel it came from at its captured depth, so the renderer can
    grow its footprint when the camera comes closer and no holes open inside a surface.
    """

    def __init__(
        self, points: torch.Tensor, colors: torch.Tensor, radii: torch.Tensor, *, soft: bool = False
    ):
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
        if colors.shape != points.shape:
            raise ValueError(f"colors must be {tuple(points.shape)}, got {tuple(colors.shape)}")
        if radii.shape != points.shape[:1]:
            raise ValueError(f"radii must be ({points.shape[0]},), got {tuple(radii.shape)}")
        self.points, self.colors, self.radii, self.soft = points.float(), colors.float(), radii.float(), soft

    @classmethod
    def empty(cls, device=None, **options) -> PointScene:
        z = torch.zeros(0, 3, device=device)
        return cls(z, z.clone(), torch.zeros(0, device=device), **options)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def add(
        self, rgb: torch.Tensor, depth: torch.Tensor, camera: Camera, mask: torch.Tensor | None = None
    ) -> int:
        """Append the pixels where ``mask`` is True (and depth is finite); returns how many."""
        keep = torch.isfinite(depth) & (depth > 0)
        if mask is not None:
            if mask.shape != depth.shape:
                raise ValueError(f"mask must be {tuple(depth.shape)}, got {tuple(mask.shape)}")
            keep &= mask
        keep = keep.reshape(-1)
        safe_depth = torch.where(torch.isfinite(depth), depth, torch.ones_like(depth))
        points = unproject_depth(safe_depth, camera.K, camera.cam_to_world).reshape(-1, 3)[keep]
        colors = rgb.reshape(3, -1).T[keep]
        radii = capture_radii(safe_depth, camera.K.to(depth))[keep]
        self.points = torch.cat([self.points, points.to(self.points)])
        self.colors = torch.cat([self.colors, colors.to(self.colors)])
        self.radii = torch.cat([self.radii, radii.to(self.radii)])
        return int(keep.sum())

    def render(self, camera: Camera) -> RenderOutput:
        return render_points(self.points, self.colors, camera, radii=self.radii, soft=self.soft)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"points": self.points, "colors": self.colors, "radii": self.radii}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.points, self.colors, self.radii = state["points"], state["colors"], state["radii"]

    def save(self, path: str | Path) -> None:
        """Write a binary PLY (x y z red green blue)."""
        from wanderview.io.mesh import save_points

        save_points(path, self.points, self.colors)

    @classmethod
    def load(cls, path: str | Path, **options) -> PointScene:
        """Read a PLY; radii are unknown in a plain PLY, so they are set from the median spacing."""
        from wanderview.io.mesh import load_points

        points, colors = load_points(path)
        if len(points) > 1:
            sample = points[torch.randperm(len(points))[:2048]]
            nn = torch.cdist(sample, sample).fill_diagonal_(float("inf")).min(dim=1).values
            radius = float(nn.median()) * 0.75
        else:
            radius = 0.01
        return cls(points, colors, torch.full((len(points),), radius), **options)
