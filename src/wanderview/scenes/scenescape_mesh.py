"""SceneScape's unified mesh: anti-aliased rendering, stitched updates, bounded memory, floating fix.

Beyond :class:`wanderview.scenes.mesh.MeshScene` this scene

- renders at ``supersample`` x resolution, blurs and downsamples (anti-aliasing) and also returns,
  per output pixel, the front-most face and its depth (the nearest of the pixel's sub-samples, so
  depth is never averaged across a discontinuity);
- *stitches* new content onto the old (paper, appendix A.1): new pixels are unprojected to new
  vertices; the already-visible pixels bordering them reuse the vertex of their rendered face that
  is nearest to the camera, so the usual two-triangles-per-pixel-quad scheme also creates the faces
  that connect old and new content and no crack opens between them;
- removes stretched triangles (appendix A.2): faces touching a depth discontinuity (Sobel on
  normalised disparity > 0.3) are kept only where ``normalize(centre - camera) . normal < -0.05``;
- bounds memory: :meth:`prune` drops faces that no remaining camera of the path can see (frustum
  test with a margin; occlusion is not tested, so pruning is conservative) and :meth:`decimate`
  merges content that has become sub-pixel for every remaining camera (vertex clustering on a
  world grid whose cell is a power-of-two fraction of the vertex's smallest pixel footprint), so
  when the camera moves back the old high-resolution content shrinks with its size on screen.

:func:`floating_artifact_mask` implements the floating-artifact fix with
:func:`wanderview.render.warp.splat`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from wanderview.cameras.camera import Camera
from wanderview.geometry.edges import depth_edges
from wanderview.geometry.masks import dilate
from wanderview.geometry.mesh_from_rgbd import compact_mesh, face_normals, grid_faces
from wanderview.geometry.unproject import unproject_depth
from wanderview.render.antialias import downsample
from wanderview.render.mesh import rasterize_and_shade
from wanderview.render.warp import splat
from wanderview.types import RenderOutput


class SceneScapeMesh:
    """A vertex-coloured triangle mesh grown frame by frame.

    Attributes:
        vertices: (V, 3) float32 world points; colors: (V, 3) in [0, 1]; faces: (F, 3) long;
        observed: (V,) float, 1 for vertices of the input image, 0 for invented content (a merged
        vertex holds the mean of its cluster).
    """

    def __init__(
        self, *, supersample: int = 2, edge_threshold: float = 0.3, stretch_eps: float = -0.05, device=None
    ):
        if int(supersample) < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.vertices = torch.zeros(0, 3, device=device)
        self.colors = torch.zeros(0, 3, device=device)
        self.observed = torch.zeros(0, device=device)
        self.faces = torch.zeros(0, 3, dtype=torch.long, device=device)
        self.supersample = int(supersample)
        self.edge_threshold = edge_threshold
        self.stretch_eps = stretch_eps

    def __len__(self) -> int:
        return int(self.faces.shape[0])

    # ---- rendering ---------------------------------------------------------------------------
    def render(self, camera: Camera) -> tuple[RenderOutput, torch.Tensor, torch.Tensor]:
        """Anti-aliased render into a single camera.

        Returns:
            RenderOutput with rgb (3, H, W) *un*-premultiplied where alpha > 0, depth (1, H, W) of the
            nearest covered sub-sample (inf where none), alpha (1, H, W) sub-sample coverage; and
            face_id (H, W) long, the face of that nearest sub-sample (-1 where none); observed (1, H, W)
            in [0, 1], the share of the pixel showing content of a frame added with ``observed=True``
            (the input image) rather than invented content (0 where empty).
        """
        s = self.supersample
        H, W = camera.height, camera.width
        cam = camera if s == 1 else camera.scaled(W * s, H * s)
        shading = torch.cat([self.colors, self.observed[:, None].to(self.colors)], dim=1)
        frags, rgbo = rasterize_and_shade(self.vertices, self.faces, cam, shading)
        # a face seen exactly edge-on can resolve to non-finite barycentrics and depth; treating such
        # samples as empty keeps NaN out of the blur (which would spread it to the neighbours)
        covered = frags.mask & torch.isfinite(frags.depth) & torch.isfinite(rgbo.sum(dim=0))
        rgbo = rgbo.nan_to_num_(0.0, 0.0, 0.0)  # empty samples are 0 already
        stack = downsample(torch.cat([rgbo, covered[None].to(rgbo.dtype)]), s)
        alpha = stack[4:5].clamp(0, 1)
        rgbo = torch.where(alpha > 1e-6, stack[:4] / alpha.clamp_min(1e-6), torch.zeros_like(stack[:4]))
        rgb, observed = rgbo[:3], rgbo[3:4].clamp(0, 1)
        # nearest covered sub-sample of every output pixel: its face id and depth
        sub_depth = torch.where(covered, frags.depth, torch.full_like(frags.depth, float("inf")))
        sub_depth = sub_depth.reshape(H, s, W, s).permute(0, 2, 1, 3).reshape(H, W, s * s)
        sub_face = frags.face_id.reshape(H, s, W, s).permute(0, 2, 1, 3).reshape(H, W, s * s)
        nearest, pick = sub_depth.min(dim=2)
        face_id = torch.where(torch.isfinite(nearest), sub_face.gather(2, pick[..., None])[..., 0], -1)
        # On one continuous surface the mean of the sub-samples is the depth at the pixel centre;
        # across a discontinuity (or a partly covered pixel) the nearest sample is kept instead.
        farthest = sub_depth.amax(dim=2)
        smooth = torch.isfinite(farthest) & (farthest - nearest < 0.02 * nearest)
        depth = torch.where(smooth, sub_depth.mean(dim=2), nearest)
        output = RenderOutput(rgb=rgb.clamp(0, 1), depth=depth[None].float(), alpha=alpha)
        return output, face_id, observed

    # ---- growing -----------------------------------------------------------------------------
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
            face_id: (H, W) long from :meth:`render` for this camera (None: no stitching).
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
        all_vertices = torch.cat([self.vertices, points[new_ids].to(self.vertices)])
        faces = self._drop_stretched(all_vertices, faces, faces_px, depth, camera)
        self.vertices = all_vertices
        self.colors = torch.cat([self.colors, rgb.permute(1, 2, 0).reshape(-1, 3)[new_ids].to(self.colors)])
        self.observed = torch.cat([self.observed, torch.full_like(new_ids, int(observed)).to(self.observed)])
        self.faces = torch.cat([self.faces, faces])
        return int(faces.shape[0])

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
        """Keep faces off depth edges, and faces on them only if they face the camera enough."""
        if faces.numel() == 0:
            return faces
        on_edge = depth_edges(depth, self.edge_threshold).reshape(-1)[faces_px].any(dim=1)
        corners = vertices[faces]
        view = corners.mean(dim=1) - camera.center.to(vertices)
        view = view / view.norm(dim=-1, keepdim=True).clamp_min(1e-20)
        cosine = (view * face_normals(vertices, faces)).sum(-1)
        return faces[~on_edge | (cosine < self.stretch_eps)]

    # ---- memory ------------------------------------------------------------------------------
    def prune(self, cameras: Camera | None, margin: float = 0.25, merge_duplicates: bool = False) -> int:
        """Drop faces no camera of ``cameras`` can see, then unused (and optionally duplicate) vertices.

        A face survives when any of its vertices lies in front of some camera and inside its image
        grown by ``margin`` of the image size on every side (faces much larger than that margin could
        be dropped while still crossing the view; grid-mesh faces are pixel-sized). Cameras are tested
        in path order against the vertices no earlier camera sees, so the cost falls quickly.

        Args:
            cameras: a batch (N,) of the cameras still to be rendered, or None (keep every face).
            merge_duplicates: also merge vertices at bit-identical positions (a sort: costly).
        Returns:
            the number of faces dropped.
        """
        before = len(self)
        if cameras is not None and before:
            unseen = torch.arange(self.vertices.shape[0], device=self.vertices.device)
            W, H = cameras.width, cameras.height
            world_to_cam, K = cameras.world_to_cam.to(self.vertices), cameras.K.to(self.vertices)
            for k in range(len(cameras)):
                if unseen.numel() == 0:
                    break
                cam = self.vertices[unseen] @ world_to_cam[k, :3, :3].T + world_to_cam[k, :3, 3]
                z = cam[:, 2]
                # the image test u in (-m W, (1 + m) W) multiplied through by z > 0 (no division)
                u = K[k, 0, 0] * cam[:, 0] + K[k, 0, 1] * cam[:, 1] + K[k, 0, 2] * z
                v = K[k, 1, 1] * cam[:, 1] + K[k, 1, 2] * z
                inside = (z > 1e-4) & (u > -margin * W * z) & (u < (1 + margin) * W * z)
                inside &= (v > -margin * H * z) & (v < (1 + margin) * H * z)
                unseen = unseen[~inside]
            seen = torch.ones(self.vertices.shape[0], dtype=torch.bool, device=self.vertices.device)
            seen[unseen] = False
            self.faces = self.faces[seen[self.faces].any(dim=1)]
        if merge_duplicates:
            self._merge_duplicates()
        self._compact()
        return before - len(self)

    def _compact(self) -> None:
        """Drop the vertices no face uses (colours and observed flags follow)."""
        attributes = torch.cat([self.colors, self.observed[:, None].to(self.colors)], dim=1)
        self.vertices, attributes, self.faces, _ = compact_mesh(self.vertices, attributes, self.faces)
        self.colors, self.observed = attributes[:, :3], attributes[:, 3]

    def decimate(self, cameras: Camera, subpixel: float = 0.5, margin: float = 0.25) -> int:
        """Merge vertices closer than ``subpixel`` of a pixel in every camera of ``cameras``.

        Each vertex's *footprint* is the world size of one pixel at its depth in the camera that sees
        it largest: min over the cameras whose image (grown by ``margin``) holds it of z / fx. Vertices
        are clustered on a world grid of cell 2^(floor(4 log2(subpixel * footprint)) / 4) (one grid per
        quarter-octave level, so clusters never mix levels); a cluster keeps the position of its lowest-
        index vertex and the mean colour, faces are re-pointed at the clusters, and faces whose corners
        fell into fewer than three clusters are dropped. A cluster spans at most subpixel * sqrt(3)
        pixels in every remaining view, so renders change by less than a pixel and no crack opens (the
        surviving faces keep their connectivity). Freshly added content (one vertex per pixel of the
        current view) is untouched while subpixel * sqrt(3) < 1; content the path moves away from is
        merged as its footprint grows, which bounds the mesh by the remaining views'
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
        footprint = self._footprint(cameras, margin)
        # quarter-octave levels: a cell is within 16 % of subpixel * footprint (powers of two would
        # let density reach 4x the target before the next level merges anything)
        level = torch.floor(4 * torch.log2(subpixel * footprint)).clamp(-160, 160)
        seen = torch.isfinite(footprint)
        cell_index = torch.floor(self.vertices / torch.exp2(level / 4)[:, None]).to(torch.int64)
        keys = torch.cat([level.to(torch.int64)[:, None], cell_index], dim=1)[seen]
        # seen vertices cluster by (level, cell) in lexicographic order; every unseen vertex keeps
        # a cluster of its own, numbered after them in index order
        _, seen_cluster = unique_rows(keys)
        cluster = torch.empty(count, dtype=torch.long, device=self.vertices.device)
        cluster[seen] = seen_cluster
        unseen = (~seen).nonzero().squeeze(1)
        first_free = int(seen_cluster.max()) + 1 if seen_cluster.numel() else 0
        cluster[unseen] = first_free + torch.arange(unseen.numel(), device=cluster.device)
        clusters = int(cluster.max()) + 1
        if clusters == count:  # nothing merges: keep the vertex order (and the faces) as they are
            return 0
        order = torch.arange(count, device=cluster.device)
        first = torch.full((clusters,), count, dtype=torch.long, device=cluster.device)
        first = first.scatter_reduce(0, cluster, order, reduce="amin")
        sizes = torch.zeros(clusters, dtype=self.colors.dtype, device=cluster.device)
        sizes.index_add_(0, cluster, torch.ones_like(self.colors[:, 0]))
        attributes = torch.cat([self.colors, self.observed[:, None].to(self.colors)], dim=1)
        means = torch.zeros(clusters, 4, dtype=self.colors.dtype, device=cluster.device)
        means.index_add_(0, cluster, attributes).div_(sizes[:, None])
        faces = cluster[self.faces]
        distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
        self.vertices, self.colors, self.observed = self.vertices[first], means[:, :3], means[:, 3]
        self.faces = faces[distinct]
        self._compact()
        return before - len(self)

    def _footprint(self, cameras: Camera, margin: float, chunk: int = 1 << 16) -> torch.Tensor:
        """(V,) world size of one pixel at each vertex in the camera that sees it largest (inf: none)."""
        W, H = cameras.width, cameras.height
        world_to_cam, K = cameras.world_to_cam.to(self.vertices), cameras.K.to(self.vertices)
        rotation, translation = world_to_cam[:, :3, :3], world_to_cam[:, :3, 3]
        fx, fy, cx, cy, skew = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 0, 1]
        out = torch.empty(self.vertices.shape[0], dtype=self.vertices.dtype, device=self.vertices.device)
        for start in range(0, self.vertices.shape[0], chunk):
            cam = torch.einsum("nij,vj->nvi", rotation, self.vertices[start : start + chunk])
            cam = cam + translation[:, None]
            x, y, z = cam.unbind(-1)  # (N, chunk)
            # the image test u in (-m W, (1 + m) W) multiplied through by z > 0 (no division)
            u = fx[:, None] * x + skew[:, None] * y + cx[:, None] * z
            v = fy[:, None] * y + cy[:, None] * z
            inside = (z > 1e-4) & (u > -margin * W * z) & (u < (1 + margin) * W * z)
            inside &= (v > -margin * H * z) & (v < (1 + margin) * H * z)
            size = torch.where(inside, z / fx[:, None], torch.full_like(z, float("inf")))
            out[start : start + chunk] = size.amin(dim=0)
        return out

    def _merge_duplicates(self) -> None:
        """Point faces at one representative of vertices with bit-identical positions."""
        if self.vertices.shape[0] < 2:
            return
        _, inverse = torch.unique(self.vertices, dim=0, return_inverse=True)
        count = self.vertices.shape[0]
        first = torch.full((int(inverse.max()) + 1,), count, dtype=torch.long, device=inverse.device)
        first = first.scatter_reduce(0, inverse, torch.arange(count, device=inverse.device), reduce="amin")
        self.faces = first[inverse][self.faces]

    # ---- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "vertices": self.vertices, "colors": self.colors, "observed": self.observed, "faces": self.faces
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = self.vertices.device
        self.vertices, self.colors = state["vertices"].to(device), state["colors"].to(device)
        self.observed = state.get("observed", torch.zeros(self.vertices.shape[0])).to(device)
        self.faces = state["faces"].long().to(device)

    def save(self, path: str | Path) -> None:
        """Write PLY (streamed, binary) or GLB (by extension, via trimesh) with vertex colours."""
        from wanderview.io.mesh import save_mesh, write_ply_streamed

        if Path(path).suffix.lower() == ".ply":
            write_ply_streamed(path, self.vertices, self.faces, self.colors)
        else:
            save_mesh(path, self.vertices, self.faces, self.colors)


def unique_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(rows, dim=0, return_inverse=True)`` for int64 rows, several times faster.

    The columns are packed into one int64 per row (mixed radix over each column's range, the first
    column most significant), so the sort is one-dimensional and the order is the same
    lexicographic order; when the ranges do not fit in 63 bits the generic row sort is used.

    Args:
        rows: (N, K) int64.
    Returns:
        unique (U, K) rows in lexicographic order, inverse (N,) long index of each row's unique row.
    """
    if rows.shape[0] == 0:
        return rows, torch.zeros(0, dtype=torch.long, device=rows.device)
    low = rows.amin(dim=0)
    # Python ints: a column range of 2^63 or more would wrap around in int64
    spans = [high - lo + 1 for high, lo in zip(rows.amax(dim=0).tolist(), low.tolist())]
    total = 1
    for span in spans:
        total *= span
    if total >= 1 << 63:
        return torch.unique(rows, dim=0, return_inverse=True)
    shifted = rows - low
    packed = shifted[:, 0].clone()
    for k in range(1, rows.shape[1]):
        packed.mul_(spans[k]).add_(shifted[:, k])
    unique_packed, inverse = torch.unique(packed, return_inverse=True)
    unique = torch.empty(unique_packed.numel(), rows.shape[1], dtype=rows.dtype, device=rows.device)
    for k in range(rows.shape[1] - 1, -1, -1):
        unique[:, k] = unique_packed % spans[k] if k else unique_packed
        unique_packed = unique_packed // spans[k]
    return unique + low, inverse


def floating_artifact_mask(
    prev_depth: torch.Tensor,
    prev_camera: Camera,
    camera: Camera,
    rendered_depth: torch.Tensor,
    pad_factor: float = 1.5,
    tolerance: float = 0.9,
) -> torch.Tensor:
    """Pixels of the new view where content beyond the previous frame's border belongs.

    The previous depth is padded to ``pad_factor`` times its size by replicating its border values,
    as if the content at the border went on beyond the image; the padded depth is warped into the
    new camera. A pixel is flagged when the padding wins the z-buffer there *and* lies in front of
    what the mesh renders there (closer than ``tolerance`` x the rendered depth, or the render is
    empty): the mesh would show distant content "floating" where nearer content should be, so the
    pixel goes to the inpainter. Padding in front of nothing new (its depth matches the render)
    is not flagged, so mesh content that did exist beyond the old border is kept.

    Args:
        prev_depth: (1, h, w) z-depth of the previous frame (inf = none).
        prev_camera, camera: the previous and the new single camera.
        rendered_depth: (1, H, W) depth of the mesh rendered into ``camera`` (inf = empty).
    Returns:
        (1, H, W) bool mask to add to the inpainting mask.
    """
    if prev_depth.ndim != 3 or prev_depth.shape[0] != 1:
        raise ValueError(f"prev_depth must be (1, h, w), got {tuple(prev_depth.shape)}")
    if rendered_depth.shape != (1, camera.height, camera.width):
        raise ValueError(
            f"rendered_depth must be (1, {camera.height}, {camera.width}), got {tuple(rendered_depth.shape)}"
        )
    h, w = prev_depth.shape[1:]
    ph, pw = round((pad_factor - 1) * h / 2), round((pad_factor - 1) * w / 2)
    # replicate finite borders only: an empty (inf) border pixel stays empty beyond the border
    padded = F.pad(prev_depth[None], (pw, pw, ph, ph), mode="replicate")[0]
    is_pad = torch.ones_like(padded, dtype=torch.bool)
    is_pad[:, ph : ph + h, pw : pw + w] = False
    K = prev_camera.K.clone()
    K[..., 0, 2] += pw
    K[..., 1, 2] += ph
    padded_camera = Camera(K, prev_camera.cam_to_world, w + 2 * pw, h + 2 * ph)
    # Only the padding is splatted: the interior of the previous frame is part of the mesh, so the
    # comparison with the rendered depth already accounts for it.
    _, warped_depth = splat(padded[:0], padded, padded_camera, camera, source_mask=is_pad)
    return warped_depth < tolerance * rendered_depth
