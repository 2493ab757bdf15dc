"""A growing triangle mesh with vertex colours: the scene of photo3d (--scene mesh) and scenescape."""

from __future__ import annotations

from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.masks import dilate
from wanderview.geometry.mesh_from_rgbd import compact_mesh, mesh_from_rgbd, remove_stretched_faces
from wanderview.render.mesh import render_mesh
from wanderview.scenes.base import GrowingScene
from wanderview.types import RenderOutput


class MeshScene(GrowingScene):
    """Vertices (V, 3) world, colours (V, 3) in [0, 1], faces (F, 3) long.

    Content is added frame by frame: each frame's new pixels are unprojected, triangulated as a
    pixel grid and appended; faces stretched across depth discontinuities are dropped (the
    SceneScape rule, ``stretch_eps``) so that a foreground edge does not smear onto the background.
    """

    def __init__(
        self,
        vertices: torch.Tensor,
        colors: torch.Tensor,
        faces: torch.Tensor,
        *,
        stretch_eps: float = -0.05,
        supersample: int = 1,
    ) -> None:
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
        if colors.shape != vertices.shape:
            raise ValueError(f"colors must be {tuple(vertices.shape)}, got {tuple(colors.shape)}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
        self.vertices = vertices.float()
        self.colors = colors.float()
        self.faces = faces.long()
        self.stretch_eps = stretch_eps
        self.supersample = supersample

    @classmethod
    def empty(cls, device=None, **options) -> MeshScene:
        """A scene with no content."""
        z = torch.zeros(0, 3, device=device)
        return cls(z, z.clone(), torch.zeros(0, 3, dtype=torch.long, device=device), **options)

    def __len__(self) -> int:
        return int(self.faces.shape[0])

    def add(
        self, rgb: torch.Tensor, depth: torch.Tensor, camera: Camera, mask: torch.Tensor | None = None
    ) -> int:
        """Fuse the pixels of a frame where ``mask`` is True; returns the number of faces added.

        The mask is grown by one pixel before triangulating so that the new patch overlaps the
        border of the content already there and no crack opens between old and new faces.

        Args:
            rgb: (3, H, W) colours; depth: (1, H, W) z-depth (non-finite = skip);
            camera: the single camera the frame was seen from; mask: (1, H, W) bool or None (all).
        """
        if mask is None:
            grown = torch.ones_like(depth, dtype=torch.bool)
        else:
            if mask.shape != depth.shape:
                raise ValueError(f"mask must be {tuple(depth.shape)}, got {tuple(mask.shape)}")
            if not bool(mask.any()):
                return 0
            grown = dilate(mask, 3)
        vertices, colors, faces = mesh_from_rgbd(rgb, depth, camera, grown)
        faces = remove_stretched_faces(vertices, faces, camera.center.to(vertices), eps=self.stretch_eps)
        vertices, colors, faces, _ = compact_mesh(vertices, colors, faces)
        offset = self.vertices.shape[0]
        self.vertices = torch.cat([self.vertices, vertices.to(self.vertices)])
        self.colors = torch.cat([self.colors, colors.to(self.colors)])
        self.faces = torch.cat([self.faces, faces.to(self.faces.device) + offset])
        return int(faces.shape[0])

    def render(self, camera: Camera) -> RenderOutput:
        """Render into a single camera; holes have alpha 0."""
        return render_mesh(self.vertices, self.faces, self.colors, camera, supersample=self.supersample)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"vertices": self.vertices, "colors": self.colors, "faces": self.faces}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.vertices, self.colors, self.faces = state["vertices"], state["colors"], state["faces"]

    def save(self, path: str | Path) -> None:
        """Write PLY or GLB (by extension) with vertex colours."""
        from wanderview.io.mesh import save_mesh

        save_mesh(path, self.vertices, self.faces, self.colors)

    @classmethod
    def load(cls, path: str | Path, **options) -> MeshScene:
        from wanderview.io.mesh import load_mesh

        vertices, faces, colors = load_mesh(path)
        return cls(vertices, colors, faces, **options)
