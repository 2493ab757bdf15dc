"""A plain, slow reference rasteriser: what :func:`wanderview.render.mesh.rasterize` must compute.

One Python loop over the faces, each tested against every pixel centre in float64 with textbook
barycentric coordinates; no blocks, no bit tricks, no tie rule (a pixel centre exactly on an edge
counts as inside; the nearer face wins, then the lower index). The fast rasteriser is tested
against it on random meshes (tests/test_raster_reference.py), the way gsplat tests its CUDA path
against a torch reference. Use it for a few hundred faces at most.
"""

from __future__ import annotations

import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import pixel_grid
from wanderview.render.mesh import Fragments


def rasterize_reference(
    vertices: torch.Tensor, faces: torch.Tensor, camera: Camera, near: float = 1e-4
) -> Fragments:
    """Rasterise like :func:`~wanderview.render.mesh.rasterize`, face by face in float64.

    Args:
        vertices: (V, 3) world coordinates; faces: (F, 3) long; camera: a single camera.
        near: faces with a vertex at z <= near are culled.
    Returns:
        :class:`Fragments` (face_id (H, W) long, bary (H, W, 3) perspective-correct, depth (H, W)),
        float32 like the fast path.
    """
    H, W = camera.height, camera.width
    uv, z = camera.project(vertices.double())
    pixels = pixel_grid(H, W, dtype=torch.float64).reshape(-1, 2)
    best_depth = torch.full((H * W,), float("inf"), dtype=torch.float64)
    best_face = torch.full((H * W,), -1, dtype=torch.long)
    best_bary = torch.zeros(H * W, 3, dtype=torch.float64)
    for index, corners in enumerate(faces.tolist()):
        if min(float(z[c]) for c in corners) <= near:
            continue
        a, b, c = (uv[k] for k in corners)
        area = _edge(a, b, c)
        if area == 0:
            continue
        # screen-space barycentrics of every pixel centre: w_k is the (signed) share opposite corner k
        screen = torch.stack([_edge(b, c, pixels), _edge(c, a, pixels), _edge(a, b, pixels)], dim=1) / area
        inside = (screen >= 0).all(dim=1)
        # perspective correction: 1/z is affine in screen space
        inv_z = screen / z[corners]
        depth = 1.0 / inv_z.sum(dim=1)
        wins = inside & (depth < best_depth)
        best_depth = torch.where(wins, depth, best_depth)
        best_face = torch.where(wins, index, best_face)
        best_bary = torch.where(wins[:, None], inv_z * depth[:, None], best_bary)
    return Fragments(
        face_id=best_face.view(H, W),
        bary=best_bary.view(H, W, 3).float(),
        depth=best_depth.view(H, W).float(),
    )


def _edge(p: torch.Tensor, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Twice the signed area of the triangle (p, q, r); p, q (2,), r (..., 2)."""
    return (q[0] - p[0]) * (r[..., 1] - p[1]) - (q[1] - p[1]) * (r[..., 0] - p[0])
