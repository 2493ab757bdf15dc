"""Bounded memory for a growing mesh: drop what no remaining camera sees, merge what became sub-pixel.

Pure tensor functions over (vertices (V, 3), attributes (V, C), faces (F, 3)); :class:`MeshScene`
(``prune`` / ``decimate``) calls them. Both are exact in what they promise: pruning is conservative
(a frustum test with a margin, no occlusion test) and decimation moves content by less than a pixel
in every remaining view.
"""

from __future__ import annotations

import torch

from wanderview.cameras.camera import Camera


def _inside_images(cam_points: torch.Tensor, K: torch.Tensor, W: int, H: int, margin: float) -> torch.Tensor:
    """(...) bool: camera-frame points (..., 3) in front of the camera and inside its image grown by
    ``margin`` of its size on every side, for intrinsics K (..., 3, 3) broadcast against the points.

    The test u in (-m W, (1 + m) W) is multiplied through by z > 0: no division.
    """
    x, y, z = cam_points.unbind(-1)
    u = K[..., 0, 0] * x + K[..., 0, 1] * y + K[..., 0, 2] * z
    v = K[..., 1, 1] * y + K[..., 1, 2] * z
    inside = (z > 1e-4) & (u > -margin * W * z) & (u < (1 + margin) * W * z)
    return inside & (v > -margin * H * z) & (v < (1 + margin) * H * z)


def visible_vertices(vertices: torch.Tensor, cameras: Camera, margin: float = 0.25) -> torch.Tensor:
    """(V,) bool: vertices (V, 3) inside the grown image of at least one camera of the batch (N,).

    Cameras are tested in order against the vertices no earlier camera holds, so the cost falls
    quickly along a path.
    """
    unseen = torch.arange(vertices.shape[0], device=vertices.device)
    world_to_cam, K = cameras.world_to_cam.to(vertices), cameras.K.to(vertices)
    for k in range(len(cameras)):
        if unseen.numel() == 0:
            break
        cam = vertices[unseen] @ world_to_cam[k, :3, :3].T + world_to_cam[k, :3, 3]
        unseen = unseen[~_inside_images(cam, K[k], cameras.width, cameras.height, margin)]
    seen = torch.ones(vertices.shape[0], dtype=torch.bool, device=vertices.device)
    seen[unseen] = False
    return seen


def vertex_footprint(
    vertices: torch.Tensor, cameras: Camera, margin: float = 0.25, chunk: int = 1 << 16
) -> torch.Tensor:
    """(V,) world size of one pixel at each vertex (V, 3) in the camera of the batch (N,) that sees it
    largest: min of z / fx over the cameras whose grown image holds it (``inf``: none does)."""
    world_to_cam, K = cameras.world_to_cam.to(vertices), cameras.K.to(vertices)
    rotation, translation = world_to_cam[:, :3, :3], world_to_cam[:, :3, 3]
    fx = K[:, 0, 0]
    out = torch.empty(vertices.shape[0], dtype=vertices.dtype, device=vertices.device)
    for start in range(0, vertices.shape[0], chunk):
        cam = torch.einsum("nij,vj->nvi", rotation, vertices[start : start + chunk]) + translation[:, None]
        inside = _inside_images(cam, K[:, None], cameras.width, cameras.height, margin)  # (N, chunk)
        z = cam[..., 2]
        size = torch.where(inside, z / fx[:, None], torch.full_like(z, float("inf")))
        out[start : start + chunk] = size.amin(dim=0)
    return out


def cluster_vertices(vertices: torch.Tensor, footprint: torch.Tensor, subpixel: float) -> torch.Tensor:
    """(V,) long cluster of each vertex (V, 3) on a world grid sized by its footprint (V,).

    The cell is 2^(floor(4 log2(subpixel * footprint)) / 4): one grid per quarter-octave level, so
    clusters never mix levels and a cell is within 16 % of ``subpixel * footprint`` (powers of two would
    let density reach 4x the target before the next level merges anything). Seen vertices (finite
    footprint) are numbered by (level, cell) in lexicographic order; every unseen vertex keeps a
    cluster of its own, numbered after them in index order.
    """
    level = torch.floor(4 * torch.log2(subpixel * footprint)).clamp(-160, 160)
    seen = torch.isfinite(footprint)
    cell_index = torch.floor(vertices / torch.exp2(level / 4)[:, None]).to(torch.int64)
    keys = torch.cat([level.to(torch.int64)[:, None], cell_index], dim=1)[seen]
    _, seen_cluster = unique_rows(keys)
    cluster = torch.empty(vertices.shape[0], dtype=torch.long, device=vertices.device)
    cluster[seen] = seen_cluster
    unseen = (~seen).nonzero().squeeze(1)
    first_free = int(seen_cluster.max()) + 1 if seen_cluster.numel() else 0
    cluster[unseen] = first_free + torch.arange(unseen.numel(), device=cluster.device)
    return cluster


def merge_clusters(
    vertices: torch.Tensor, attributes: torch.Tensor, faces: torch.Tensor, cluster: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Collapse every cluster to one vertex: the position of its lowest-index member, the mean attributes.

    Args:
        vertices: (V, 3); attributes: (V, C) float; faces: (F, 3) long; cluster: (V,) long in [0, U).
    Returns:
        vertices (U, 3), attributes (U, C), faces (F', 3): re-pointed at the clusters, without the faces
        whose corners fell into fewer than three clusters.
    """
    count, clusters = vertices.shape[0], int(cluster.max()) + 1
    order = torch.arange(count, device=cluster.device)
    first = torch.full((clusters,), count, dtype=torch.long, device=cluster.device)
    first = first.scatter_reduce(0, cluster, order, reduce="amin")
    sizes = torch.zeros(clusters, dtype=attributes.dtype, device=cluster.device)
    sizes.index_add_(0, cluster, torch.ones_like(attributes[:, 0]))
    means = torch.zeros(clusters, attributes.shape[1], dtype=attributes.dtype, device=cluster.device)
    means.index_add_(0, cluster, attributes).div_(sizes[:, None])
    faces = cluster[faces]
    distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return vertices[first], means, faces[distinct]


def merge_duplicate_vertices(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(F, 3) faces pointed at one representative (the lowest index) of bit-identical vertices (V, 3)."""
    if vertices.shape[0] < 2:
        return faces
    _, inverse = torch.unique(vertices, dim=0, return_inverse=True)
    count = vertices.shape[0]
    first = torch.full((int(inverse.max()) + 1,), count, dtype=torch.long, device=inverse.device)
    first = first.scatter_reduce(0, inverse, torch.arange(count, device=inverse.device), reduce="amin")
    return first[inverse][faces]


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
