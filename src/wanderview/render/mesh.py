"""A triangle rasteriser in pure, vectorised torch, and a vertex-colour mesh renderer.

How it works (all faces at once, no Python loop over faces; steps 1-4 are the kernels in
:mod:`wanderview.render.raster_kernels`):

1. Project the vertices. Per cache-sized block of faces, cull faces with a vertex at or behind the
   near plane (*culled*, not clipped), degenerate faces and faces whose bounding box holds no pixel
   centre. Faces whose box holds at most 2 x 2 pixel centres (most faces of a dense mesh) are
   z-tested right there; the others get a table row.
2. Group the tabulated faces by the power-of-two size of their pixel box and, per group, evaluate the
   three edge functions densely on a (faces, window pixels) grid, chunked to bound memory.
3. Inside test ``e > 0`` with a top-left tie rule. Each edge function is computed relative to the
   edge's end point that comes first in screen order, so the two faces that share an edge get exactly
   opposite values: every pixel centre on a shared edge lands in exactly one face (no cracks).
4. Z-test by packing ``float32 depth bits << 32 | face id`` into int64 and ``scatter_reduce("amin")``.
5. Resolve the winning face per pixel: perspective-correct barycentrics and depth (differentiable with
   respect to vertices and colours when autograd is on).

On CPU, torch.where, comparisons and fresh multi-MB temporaries cost many times more than arithmetic
on cache-sized tensors; the code is shaped by that (masks from signs, bit-blended selections, blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wanderview.cameras.camera import Camera
from wanderview.render.antialias import downsample
from wanderview.render.raster_kernels import (
    EMPTY_KEY,
    draw_small_faces,
    draw_windowed,
    select_bits,
    unpack_ids,
)
from wanderview.types import RenderOutput

# faces set up together (cache-sized), and faces rasterised together (bounds the face table's memory)
_FACE_BLOCK = 1 << 15
_FACE_BATCH = 1 << 21
# pixels resolved together
_PIXEL_BLOCK = 1 << 15


@dataclass(frozen=True)
class Fragments:
    """Per-pixel result of :func:`rasterize` (the front-most face at each pixel centre).

    Attributes:
        face_id: (H, W) long index into ``faces``; -1 where no face covers the pixel centre.
        bary: (H, W, 3) perspective-correct barycentric weights of the face's three vertices
            (they sum to 1); 0 where empty.
        depth: (H, W) z-depth in the camera frame; ``inf`` where empty.
    """

    face_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(H, W) bool: pixels covered by a face."""
        return self.face_id >= 0


def _check_single_camera(camera: Camera) -> None:
    if camera.batch_shape:
        raise ValueError(f"need a single camera, got a batch of shape {tuple(camera.batch_shape)}")


def project_to_screen(points: torch.Tensor, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """``camera.project(points)``, kept under its old name for callers: (N, 3) -> uv (N, 2), z (N,).

    The projection itself is written once, in :func:`wanderview.geometry.transforms.project_points`.
    """
    return camera.project(points)


def rasterize(vertices: torch.Tensor, faces: torch.Tensor, camera: Camera, near: float = 1e-4) -> Fragments:
    """Rasterise a triangle mesh: the front-most face at every pixel centre.

    Faces with any vertex at z <= ``near`` are culled (not clipped). Both windings are drawn.

    Args:
        vertices: (V, 3) world coordinates.
        faces: (F, 3) long vertex indices.
        camera: a single :class:`Camera`; the output is ``camera.height`` x ``camera.width``.
        near: near-plane z-depth in world units.
    Returns:
        :class:`Fragments` with face_id (H, W), bary (H, W, 3), depth (H, W), on the vertices' device.
    """
    frags, _ = rasterize_and_shade(vertices, faces, camera, None, near)
    return frags


def rasterize_and_shade(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    camera: Camera,
    colors: torch.Tensor | None,
    near: float = 1e-4,
) -> tuple[Fragments, torch.Tensor | None]:
    """:func:`rasterize`, plus vertex colours interpolated in the same pass over the pixels.

    Args:
        vertices: (V, 3); faces: (F, 3) long; camera: a single camera; colors: (V, C) or None.
    Returns:
        :class:`Fragments`, and (C, H, W) perspective-correct colours (0 where empty) or None.
    """
    if colors is not None and (colors.ndim != 2 or colors.shape[0] != vertices.shape[0]):
        raise ValueError(f"colors must be (V, C) with V = {vertices.shape[0]}, got {tuple(colors.shape)}")
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    _check_single_camera(camera)
    H, W = camera.height, camera.width
    # int32 vertex indices: torch's CPU gathers along the last dim run ~3x faster with them
    index_dtype = torch.int32 if vertices.shape[0] < 1 << 31 else torch.int64
    faces = faces.to(device=vertices.device, dtype=index_dtype)
    # one spare entry at the end takes the candidates that miss (cheaper than masking them)
    keys = torch.full((H * W + 1,), EMPTY_KEY, dtype=torch.int64, device=vertices.device)
    # projected once; the rasteriser uses a detached copy, the resolve step keeps autograd's graph
    xy, z = camera.project(vertices)
    points_grad = torch.stack([xy[:, 0], xy[:, 1], z])
    with torch.no_grad():
        points = points_grad.detach().float()
        all_ids = torch.arange(faces.shape[0], device=vertices.device)
        pending: list[tuple[torch.Tensor, ...]] = []
        pending_count = 0
        # blocks that fit in cache: elementwise torch ops on fresh multi-MB tensors are several
        # times slower here (page faults, memory bandwidth) than on ~100 kB ones
        for start in range(0, faces.shape[0], _FACE_BLOCK):
            end = min(start + _FACE_BLOCK, faces.shape[0])
            larger = draw_small_faces(points, faces[start:end], all_ids[start:end], keys, W, H, near)
            if larger is not None:
                pending.append(larger)
                pending_count += larger[3].numel()
            # the faces left to the windowed path go in batches, bounding the table's memory
            if pending and (pending_count >= _FACE_BATCH or end == faces.shape[0]):
                table, size_x, size_y, ids = (torch.cat(parts, dim=-1) for parts in zip(*pending))
                draw_windowed(table, size_x, size_y, ids, keys, W)
                pending, pending_count = [], 0
    face_id = unpack_ids(keys[: H * W].view(H, W))
    bary, depth, rgb = _resolve(points_grad, faces, face_id, colors)
    # bary is a (H, W, 3) view of a corner-major (3, H, W) tensor: no transposing copy
    frags = Fragments(face_id=face_id, bary=bary.view(3, H, W).permute(1, 2, 0), depth=depth)
    return frags, rgb


def _resolve(points: torch.Tensor, faces: torch.Tensor, face_id: torch.Tensor, colors: torch.Tensor | None):
    """Perspective-correct barycentrics, z-depth and (optionally) colour of the winning faces.

    Args:
        points: (3, V) projected x, y and z-depth (differentiable if autograd tracks them).
        faces: (F, 3) int32 or long; face_id: (H, W) long, -1 where empty; colors: (V, C) or None.
    Returns:
        bary (3, H*W) corner-major, depth (H, W), rgb (C, H, W) (0 where empty) or None.
    Computed densely over the image (cheaper than compacting the covered pixels when most are
    covered), in blocks of pixels whose temporaries stay in cache instead of page-faulting fresh
    multi-MB tensors.
    """
    H, W = face_id.shape
    px_all = (torch.arange(W, device=points.device, dtype=points.dtype) + 0.5).repeat(H)
    py_all = (torch.arange(H, device=points.device, dtype=points.dtype) + 0.5).repeat_interleave(W)
    bary_parts, depth_parts, rgb_parts = [], [], []
    for start in range(0, H * W, _PIXEL_BLOCK):
        fid = face_id.view(-1)[start : start + _PIXEL_BLOCK]
        px, py = px_all[start : start + _PIXEL_BLOCK], py_all[start : start + _PIXEL_BLOCK]
        n = fid.numel()
        covered = fid >= 0
        rows = faces.index_select(0, fid.clamp_min(0))  # (n, 3)
        vertex_ids = torch.cat([rows[:, 0], rows[:, 1], rows[:, 2]])  # corner-major
        vx, vy, vz = points.index_select(1, vertex_ids).view(3, 3, n).unbind(0)  # (corner, pixel) each
        # edge k runs from corner k + 1 to k + 2 (mod 3), all three edges at once
        xa, ya, xb, yb = vx.roll(-1, 0), vy.roll(-1, 0), vx.roll(-2, 0), vy.roll(-2, 0)
        e = (xb - xa) * (py - ya) - (yb - ya) * (px - xa)
        area2 = select_bits(covered, e[0] + e[1] + e[2], 1.0)
        persp = e / (area2 * vz)
        inv_depth = persp[0] + persp[1] + persp[2]
        bary = select_bits(covered, persp / inv_depth, 0.0)
        bary_parts.append(bary)
        depth_parts.append(select_bits(covered, torch.reciprocal(inv_depth), float("inf")))
        if colors is not None:
            # per channel, one gather of all three corners' colours: contiguous rows, no transpose
            rgb = []
            for c in range(colors.shape[1]):
                c0, c1, c2 = colors[:, c].index_select(0, vertex_ids).view(3, n)
                rgb.append(c0 * bary[0] + c1 * bary[1] + c2 * bary[2])
            rgb_parts.append(select_bits(covered, torch.stack(rgb), 0.0))
    bary = torch.cat(bary_parts, dim=1)
    depth = torch.cat(depth_parts).view(H, W)
    return bary, depth, (torch.cat(rgb_parts, dim=1).view(-1, H, W) if colors is not None else None)


def render_mesh(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    colors: torch.Tensor,
    camera: Camera,
    supersample: int = 1,
    blur: bool = True,
    near: float = 1e-4,
    features: torch.Tensor | None = None,
) -> RenderOutput:
    """Render a vertex-coloured mesh with perspective-correct interpolation and a z-buffer.

    Args:
        vertices: (V, 3) world coordinates.
        faces: (F, 3) long vertex indices.
        colors: (V, 3) per-vertex colour in [0, 1].
        camera: a single :class:`Camera`.
        supersample: render at this factor times the resolution, then (optionally blur and) average
            down - SceneScape's anti-aliasing. 1 = one sample per pixel.
        blur: with ``supersample > 1``, blur the high-resolution image with a 3x3 binomial filter
            before downsampling.
        near: near-plane z; faces with a vertex at or behind it are culled.
        features: (V, C) extra per-vertex channels, interpolated like the colours, or None.
    Returns:
        RenderOutput: rgb (3, H, W) straight colour (*not* premultiplied: the mean colour of the covered
        samples; 0 where empty), depth (1, H, W) z-depth (``inf`` where empty; with supersampling the
        mean of the pixel's sub-samples on one continuous surface, the nearest covered sub-sample
        across a discontinuity or at a partly covered pixel: never a depth between two surfaces),
        alpha (1, H, W) coverage, face_id (H, W) the face of that sub-sample (-1 where empty), and
        features (C, H, W) (straight, like rgb) when ``features`` is given.

    A sample whose face is seen exactly edge-on can resolve to non-finite depth or colour; it is
    treated as empty, so NaN never reaches the filters or the caller.
    """
    if colors.ndim != 2 or colors.shape[1] != 3 or colors.shape[0] != vertices.shape[0]:
        raise ValueError(f"colors must be (V, 3) with V = {vertices.shape[0]}, got {tuple(colors.shape)}")
    if features is not None and (features.ndim != 2 or features.shape[0] != vertices.shape[0]):
        raise ValueError(f"features must be (V, C) with V = {vertices.shape[0]}, got {tuple(features.shape)}")
    if int(supersample) < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    s = int(supersample)
    cam = camera if s == 1 else camera.scaled(camera.width * s, camera.height * s)
    shading = colors if features is None else torch.cat([colors, features.to(colors)], dim=1)
    frags, shaded = rasterize_and_shade(vertices, faces, cam, shading, near)
    covered, depth, face_id = frags.mask, frags.depth, frags.face_id
    # empty samples shade to 0, so one scalar sum finds a non-finite sample (its barycentrics, hence
    # its colour, are non-finite too); only in that rare case are the per-pixel masks paid for
    if not bool(torch.isfinite(shaded.detach().sum())):
        covered = covered & torch.isfinite(depth) & torch.isfinite(shaded.detach().sum(dim=0))
        shaded = torch.where(covered, shaded, 0.0)
        depth, face_id = torch.where(covered, depth, float("inf")), torch.where(covered, face_id, -1)
    if s == 1:
        depth, alpha = depth[None], covered[None].to(shaded.dtype)
    else:
        shaded, alpha = _straight_average(shaded, covered, s, blur)
        depth, face_id = _nearest_subsample(depth, face_id, s)
    extra = None if features is None else shaded[3:]
    return RenderOutput(rgb=shaded[:3], depth=depth.to(shaded.dtype), alpha=alpha, face_id=face_id,
                        features=extra)


def _straight_average(shaded: torch.Tensor, covered: torch.Tensor, s: int, blur: bool):
    """Filter (C, sH, sW) samples down to (C, H, W) *straight* colour and (1, H, W) coverage.

    Colour and coverage are filtered together (premultiplied, the only correct way to filter), then
    the colour is divided by the coverage: a partly covered pixel keeps its surface's colour instead
    of fading to black (dark fringes a hole test then treats as known content).
    """
    stack = downsample(torch.cat([shaded, covered[None].to(shaded.dtype)]), s, blur)
    alpha = stack[-1:].clamp(0, 1)
    straight = torch.where(alpha > 1e-6, stack[:-1] / alpha.clamp_min(1e-6), 0.0)
    # colour stays in [0, 1] under float rounding; extra feature channels keep their own range
    return torch.cat([straight[:3].clamp(0, 1), straight[3:]]), alpha


def _nearest_subsample(depth: torch.Tensor, face_id: torch.Tensor, s: int):
    """(1, H, W) depth and (H, W) face of each pixel from its s x s sub-samples (sH, sW; inf / -1 empty).

    The face and depth of the nearest covered sub-sample; on one continuous surface (all sub-samples
    covered, within 2 % in depth) the mean depth instead, which is the depth at the pixel centre.
    """
    H, W = depth.shape[0] // s, depth.shape[1] // s
    sub_depth = depth.reshape(H, s, W, s).permute(0, 2, 1, 3).reshape(H, W, s * s)
    sub_face = face_id.reshape(H, s, W, s).permute(0, 2, 1, 3).reshape(H, W, s * s)
    nearest, pick = sub_depth.min(dim=2)
    face = torch.where(torch.isfinite(nearest), sub_face.gather(2, pick[..., None])[..., 0], -1)
    farthest = sub_depth.amax(dim=2)
    smooth = torch.isfinite(farthest) & (farthest - nearest < 0.02 * nearest)
    return torch.where(smooth, sub_depth.mean(dim=2), nearest)[None], face
