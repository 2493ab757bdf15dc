"""The one growing triangle mesh with vertex colours: the scene of photo3d (--scene mesh) and scenescape.

Content comes in two ways, both cutting faces across depth discontinuities with one rule
(:func:`~wanderview.geometry.mesh_from_rgbd.remove_stretched_faces` restricted to faces on the Sobel
depth-edge mask, so smooth surfaces seen at grazing angles keep their faces and do not crack):

- :meth:`MeshScene.add` (the :class:`GrowingScene` contract, photo3d): the masked pixels, grown by one
  pixel, become a patch of their own that overlaps the content already there;
- :meth:`MeshScene.add_frame` (SceneScape, appendix A.1): new pixels are *stitched* to the rendered
  mesh - the visible pixels bordering them reuse the vertex of their rendered face nearest to the
  camera, so the two-triangles-per-pixel-quad scheme also creates the faces joining old and new.

:meth:`MeshScene.render` returns a :class:`RenderOutput` with the face and the ``observed`` share of
every pixel; with ``supersample`` > 1 it is SceneScape's anti-aliased render (blurred, straight
colour, nearest-sub-sample depth and face). :meth:`prune` and :meth:`decimate` bound the memory by
the remaining path (:mod:`wanderview.scenes.mesh_memory`). ``SceneScapeMesh`` is this class with
SceneScape's defaults.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.masks import dilate
from wanderview.geometry.mesh_from_rgbd import (
    compact_mesh,
    faces_on_depth_edges,
    grid_faces,
    mesh_from_rgbd,
    remove_stretched_faces,
)
from wanderview.geometry.unproject import unproject_depth
from wanderview.render.mesh import render_mesh
from wanderview.scenes import mesh_memory
from wanderview.scenes.base import GrowingScene
from wanderview.types import RenderOutput


class MeshScene(GrowingScene):
    """A vertex-coloured triangle mesh grown frame by frame.

    Attributes:
        vertices: (V, 3) float32 world points; colors: (V, 3) in [0, 1]; faces: (F, 3) long;
        observed: (V,) float, 1 for vertices of observed content (the input image), 0 for invented
        content (a merged vertex holds the mean of its cluster).
    Options:
        supersample: render at this factor and filter down (1 = one sample per pixel).
        edge_threshold: Sobel threshold of the depth-edge mask (:func:`depth_edges`).
        jump_ratio: a face also spans a discontinuity where its corner depths differ by more than
            this factor (None: the Sobel mask alone, as in SceneScape); see
            :func:`~wanderview.geometry.mesh_from_rgbd.faces_on_depth_edges`.
        stretch_eps: cosine threshold of the stretched-face rule.
    """

    def __init__(
        self,
        vertices: torch.Tensor | None = None,
        colors: torch.Tensor | None = None,
        faces: torch.Tensor | None = None,
        *,
        observed: torch.Tensor | None = None,
        supersample: int = 1,
        edge_threshold: float = 0.3,
        jump_ratio: float | None = 1.5,
        stretch_eps: float = -0.05,
        device=None,
    ) -> None:
        if int(supersample) < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        vertices = torch.zeros(0, 3, device=device) if vertices is None else vertices
        colors = torch.zeros_like(vertices) if colors is None else colors
        faces = torch.zeros(0, 3, dtype=torch.long, device=vertices.device) if faces is None else faces
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
        if colors.shape != vertices.shape:
            raise ValueError(f"colors must be {tuple(vertices.shape)}, got {tuple(colors.shape)}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
        observed = torch.zeros(vertices.shape[0], device=vertices.device) if observed is None else observed
        if observed.shape != vertices.shape[:1]:
            raise ValueError(f"observed must be ({vertices.shape[0]},), got {tuple(observed.shape)}")
        self.vertices, self.colors, self.faces = vertices.float(), colors.float(), faces.long()
        self.observed = observed.float()
        self.supersample = int(supersample)
        self.edge_threshold = edge_threshold
        self.jump_ratio = jump_ratio
        self.stretch_eps = stretch_eps

    @classmethod
    def empty(cls, device=None, **options) -> MeshScene:
        """A scene with no content."""
        return cls(device=device, **options)

    def __len__(self) -> int:
        return int(self.faces.shape[0])

    # ---- growing -----------------------------------------------------------------------------
    def add(
        self,
        rgb: torch.Tensor,
        depth: torch.Tensor,
        camera: Camera,
        mask: torch.Tensor | None = None,
        *,
        observed: bool = False,
    ) -> int:
        """Fuse the pixels of a frame where ``mask`` is True as a patch of their own; returns the faces added.

        The mask is grown by one pixel before triangulating so that the new patch overlaps the
        border of the content already there and no crack opens between old and new faces.

        Args:
            rgb: (3, H, W) colours; depth: (1, H, W) z-depth (non-finite = skip);
            camera: the single camera the frame was seen from; mask: (1, H, W) bool or None (all).
            observed: the content is observed (the input image), not invented.
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
        # vertex v * W + u is pixel (u, v): the faces index their pixels too
        faces = self._drop_stretched(vertices, faces, faces, depth, camera)
        vertices, colors, faces, _ = compact_mesh(vertices, colors, faces)
        self._append(vertices, colors, faces, observed)
        return int(faces.shape[0])

    def add_frame(
        self,
        rgb: torch.Tensor,
        depth: torch.Tensor,
        camera: Camera,
        new: torch.Tensor,
        face_id: torch.Tensor | None = None,
        observed: bool = False,
    ) -> int:
        """Unproject the ``new`` pixels of a frame, stitch them to the visible mesh, append the faces.

        Args:
            rgb: (3, H, W) the finished frame; depth: (1, H, W) its z-depth (rendered depth on old
                pixels, the new content's depth on new pixels); camera: the frame's single camera.
            new: (1, H, W) bool, pixels whose content is new (not finite depth = skipped).
            face_id: (H, W) long, :attr:`RenderOutput.face_id` of :meth:`render` for this camera
                (None: no stitching).
            observed: the new content is observed (the input image), not invented.
        Returns:
            the number of faces added.
        """
        H, W = rgb.shape[1:]
        if depth.shape != (1, H, W) or new.shape != (1, H, W):
            raise ValueError(
                f"depth and new must be (1, {H}, {W}), got {tuple(depth.shape)}, {tuple(new.shape)}"
            )
        device = self.vertices.device
        new_px = (new[0] & torch.isfinite(depth[0]) & (depth[0] > 0)).reshape(-1)
        if not bool(new_px.any()):
            return 0
        safe = torch.where(new_px.view(1, H, W), depth, torch.ones_like(depth))
        points = unproject_depth(safe, camera.K.to(depth), camera.cam_to_world.to(depth)).reshape(-1, 3)
        offset = self.vertices.shape[0]
        index = torch.full((H * W,), -1, dtype=torch.long, device=device)
        new_ids = new_px.nonzero().squeeze(1)
        index[new_ids] = offset + torch.arange(new_ids.numel(), device=device)
        if face_id is not None and len(self):
            self._stitch(index, new_px, face_id, camera, H, W)
        faces_px = grid_faces(H, W, (index >= 0).view(H, W))
        faces_px = faces_px[new_px[faces_px].any(dim=1)]  # old-only quads exist already
        faces = index[faces_px]
        distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
        faces, faces_px = faces[distinct], faces_px[distinct]
        self.vertices = torch.cat([self.vertices, points[new_ids].to(self.vertices)])
        faces = self._drop_stretched(self.vertices, faces, faces_px, depth, camera)
        colors = rgb.permute(1, 2, 0).reshape(-1, 3)[new_ids]
        self.colors = torch.cat([self.colors, colors.to(self.colors)])
        self.observed = torch.cat([self.observed, torch.full_like(new_ids, int(observed)).to(self.observed)])
        self.faces = torch.cat([self.faces, faces])
        return int(faces.shape[0])

    def _append(self, vertices: torch.Tensor, colors: torch.Tensor, faces: torch.Tensor, observed: bool):
        """Append a patch: vertices (n, 3), colors (n, 3), faces (f, 3) indexing the patch's vertices."""
        offset = self.vertices.shape[0]
        flags = torch.full_like(vertices[:, 0], float(observed))
        self.vertices = torch.cat([self.vertices, vertices.to(self.vertices)])
        self.colors = torch.cat([self.colors, colors.to(self.colors)])
        self.observed = torch.cat([self.observed, flags.to(self.observed)])
        self.faces = torch.cat([self.faces, faces.to(self.faces.device) + offset])

    def _stitch(self, index, new_px, face_id, camera, H, W) -> None:
        """Give visible pixels that border new ones the nearest-to-camera vertex of their rendered face."""
        border = (dilate(new_px.view(1, H, W), 3)[0] & ~new_px.view(H, W) & (face_id >= 0)).reshape(-1)
        ids = border.nonzero().squeeze(1)
        if ids.numel() == 0:
            return
        corners = self.faces[face_id.reshape(-1)[ids]]  # (B, 3)
        dist = (self.vertices[corners] - camera.center.to(self.vertices)).norm(dim=-1)
        index[ids] = corners.gather(1, dist.argmin(dim=1, keepdim=True)).squeeze(1)

    def _drop_stretched(self, vertices, faces, faces_px, depth, camera) -> torch.Tensor:
        """Drop the faces that are stretched *and* touch a depth edge of ``depth`` (pixels ``faces_px``)."""
        if faces.numel() == 0:
            return faces
        on_edge = faces_on_depth_edges(faces_px, depth, self.edge_threshold, self.jump_ratio)
        return remove_stretched_faces(vertices, faces, camera.center.to(vertices), self.stretch_eps, on_edge)

    # ---- rendering ---------------------------------------------------------------------------
    def render(self, camera: Camera) -> RenderOutput:
        """Render into a single camera (anti-aliased with ``supersample`` > 1); holes have alpha 0.

        Returns:
            RenderOutput (straight colour, see :func:`wanderview.render.mesh.render_mesh`) with
            face_id (H, W) and observed (1, H, W): the share of each pixel showing content added with
            ``observed=True`` (0 where empty).
        """
        any_observed = bool(self.observed.any())
        features = self.observed[:, None] if any_observed else None
        out = render_mesh(self.vertices, self.faces, self.colors, camera, self.supersample, features=features)
        observed = out.features.clamp(0, 1) if any_observed else torch.zeros_like(out.alpha)
        return replace(out, observed=observed, features=None)

    # ---- memory ------------------------------------------------------------------------------
    def prune(self, cameras: Camera | None, margin: float = 0.25, merge_duplicates: bool = False) -> int:
        """Drop faces no camera of ``cameras`` can see, then unused (and optionally duplicate) vertices.

        A face survives when any of its vertices lies in front of some camera and inside its image
        grown by ``margin`` of the image size on every side (faces much larger than that margin could
        be dropped while still crossing the view; grid-mesh faces are pixel-sized).

        Args:
            cameras: a batch (N,) of the cameras still to be rendered, or None (keep every face).
            merge_duplicates: also merge vertices at bit-identical positions (a sort: costly).
        Returns:
            the number of faces dropped.
        """
        before = len(self)
        if cameras is not None and before:
            seen = mesh_memory.visible_vertices(self.vertices, cameras, margin)
            self.faces = self.faces[seen[self.faces].any(dim=1)]
        if merge_duplicates:
            self.faces = mesh_memory.merge_duplicate_vertices(self.vertices, self.faces)
        self._compact()
        return before - len(self)

    def decimate(self, cameras: Camera, subpixel: float = 0.5, margin: float = 0.25) -> int:
        """Merge vertices closer than ``subpixel`` of a pixel in every camera of ``cameras``.

        Each vertex's *footprint* is the world size of one pixel at its depth in the camera that sees
        it largest (:func:`~wanderview.scenes.mesh_memory.vertex_footprint`); vertices are clustered on
        a world grid of that size (:func:`~wanderview.scenes.mesh_memory.cluster_vertices`); a cluster
        keeps the position of its lowest-index vertex and the mean colour, and faces whose corners
        fell into fewer than three clusters are dropped. A cluster spans at most subpixel * sqrt(3)
        pixels in every remaining view, so renders change by less than a pixel and no crack opens.
        Freshly added content is untouched while subpixel * sqrt(3) < 1; content the path moves away
        from is merged as its footprint grows, which bounds the mesh by the remaining views'
        resolution instead of the frame count. Vertices no camera holds keep their own cluster
        (:meth:`prune` is what drops them).

        Args:
            cameras: a batch (N,) of the cameras still to be rendered (the current one included).
            subpixel: the largest merge, in pixels of the closest remaining view (0 = no merging).
        Returns:
            the number of faces dropped.
        """
        before, count = len(self), self.vertices.shape[0]
        if subpixel <= 0 or before == 0 or len(cameras) == 0:
            return 0
        footprint = mesh_memory.vertex_footprint(self.vertices, cameras, margin)
        cluster = mesh_memory.cluster_vertices(self.vertices, footprint, subpixel)
        if int(cluster.max()) + 1 == count:  # nothing merges: keep the vertex order (and the faces)
            return 0
        self.vertices, attributes, self.faces = mesh_memory.merge_clusters(
            self.vertices, self._attributes(), self.faces, cluster
        )
        self.colors, self.observed = attributes[:, :3], attributes[:, 3]
        self._compact()
        return before - len(self)

    def _attributes(self) -> torch.Tensor:
        """(V, 4) colours and observed flag, the per-vertex values that follow merges and compaction."""
        return torch.cat([self.colors, self.observed[:, None].to(self.colors)], dim=1)

    def _compact(self) -> None:
        """Drop the vertices no face uses (colours and observed flags follow)."""
        self.vertices, attributes, self.faces, _ = compact_mesh(self.vertices, self._attributes(), self.faces)
        self.colors, self.observed = attributes[:, :3], attributes[:, 3]

    # ---- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "vertices": self.vertices, "colors": self.colors, "observed": self.observed, "faces": self.faces
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = self.vertices.device
        self.vertices, self.colors = state["vertices"].float().to(device), state["colors"].float().to(device)
        observed = state.get("observed")
        observed = torch.zeros(self.vertices.shape[0]) if observed is None else observed
        self.observed = observed.float().to(device)
        self.faces = state["faces"].long().to(device)

    def save(self, path: str | Path) -> None:
        """Write PLY (streamed, binary) or GLB (by extension, via trimesh) with vertex colours."""
        from wanderview.io.mesh import save_mesh, write_ply_streamed

        if Path(path).suffix.lower() == ".ply":
            write_ply_streamed(path, self.vertices, self.faces, self.colors)
        else:
            save_mesh(path, self.vertices, self.faces, self.colors)

    @classmethod
    def load(cls, path: str | Path, **options) -> MeshScene:
        """Read a PLY or GLB written by :meth:`save` (observed flags are not stored: all 0)."""
        from wanderview.io.mesh import load_mesh

        vertices, faces, colors = load_mesh(path)
        return cls(vertices, colors, faces, **options)
