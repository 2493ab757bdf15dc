"""Layered depth images: cut a depth map into L depth layers (Make-It-4D §3.3, after 3D-Cinemagraphy).

1. :func:`ward_clusters_1d` clusters the (sub-sampled, normalised) disparity with agglomerative Ward
   clustering. In one dimension the clusters are intervals of the sorted values, so only neighbouring
   clusters are candidates for a merge and a heap of the L-1 neighbour costs makes it O(n log n).
2. :func:`layer_edges` turns the clusters into depth edges d_1 < ... < d_{L+1}: every cluster's
   smallest disparity is the far edge of its layer (as 3D-Cinemagraphy's ``get_depth_bins``).
3. :func:`assign_layers` labels every pixel by its interval, and :func:`merge_connected_layers`
   joins neighbouring layers whose shared image boundary is mostly *not* a depth discontinuity, so a
   tilted ground plane that crosses an edge is not cut into slivers.
4. :func:`remap_layer_depth` is Eq. 5: a layer's predicted depth rescaled into [d_i, d_{i+1}].

Layer 0 is the nearest layer everywhere in this module.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch


def ward_clusters_1d(
    values: np.ndarray | torch.Tensor,
    num_clusters: int | None = None,
    distance_threshold: float | None = None,
) -> np.ndarray:
    """Agglomerative Ward clustering of scalar values.

    The Ward linkage distance of clusters a, b (sizes n, means m) is
    ``sqrt(2 n_a n_b / (n_a + n_b)) * |m_a - m_b|`` (the value scipy/scikit-learn compare with a
    distance threshold). Merging stops at ``num_clusters`` clusters, or when the cheapest merge is
    above ``distance_threshold``. Exactly one of the two must be given.

    Args:
        values: (n,) finite values.
        num_clusters: wanted number of clusters (clamped to the number of distinct values).
        distance_threshold: stop when the cheapest Ward distance exceeds this.
    Returns:
        (n,) int64 labels, 0 for the cluster of the smallest values, increasing with the values.
    """
    if (num_clusters is None) == (distance_threshold is None):
        raise ValueError("give exactly one of num_clusters and distance_threshold")
    x = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty (n,) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    order = np.argsort(x, kind="stable")
    # equal values always end in one cluster (Ward distance 0), so start from the distinct values
    distinct, start_of, counts = np.unique(x[order], return_index=True, return_counts=True)
    k = len(distinct)
    sizes = counts.astype(np.float64)
    sums = distinct * sizes
    left = np.arange(k) - 1  # neighbour links of a doubly linked list of live clusters
    right = np.arange(k) + 1
    alive = np.ones(k, dtype=bool)
    version = np.zeros(k, dtype=np.int64)

    def cost(a: int, b: int) -> float:
        na, nb = sizes[a], sizes[b]
        return math.sqrt(2.0 * na * nb / (na + nb)) * abs(sums[b] / nb - sums[a] / na)

    heap = [(cost(i, i + 1), i, 0, 0) for i in range(k - 1)]
    heapq.heapify(heap)
    live = k
    target = 1 if num_clusters is None else max(1, min(int(num_clusters), k))
    while live > target and heap:
        c, a, va, vb = heapq.heappop(heap)
        b = right[a]
        if not alive[a] or b >= k or not alive[b] or version[a] != va or version[b] != vb:
            continue  # stale entry: one side has merged since it was pushed
        if distance_threshold is not None and c > distance_threshold:
            break
        sizes[a] += sizes[b]
        sums[a] += sums[b]
        alive[b] = False
        version[a] += 1
        right[a] = right[b]
        if right[a] < k:
            left[right[a]] = a
        live -= 1
        if left[a] >= 0:
            heapq.heappush(heap, (cost(left[a], a), int(left[a]), int(version[left[a]]), int(version[a])))
        if right[a] < k:
            heapq.heappush(heap, (cost(a, right[a]), a, int(version[a]), int(version[right[a]])))
    # each distinct value belongs to the nearest live cluster at or below it
    label_of_distinct = np.cumsum(alive) - 1
    labels_sorted = np.repeat(label_of_distinct, counts)
    labels = np.empty(x.size, dtype=np.int64)
    labels[order] = labels_sorted
    del start_of
    return labels


def layer_edges(
    depth: torch.Tensor,
    num_layers: int | None = 3,
    distance_threshold: float | None = None,
    stride: int = 10,
) -> list[float]:
    """Depth edges d_0 < d_1 < ... < d_L of L layers from Ward clusters of the normalised disparity.

    Every ``stride``-th pixel (in both directions) of the finite depth is clustered. 3D-Cinemagraphy
    puts an edge at each cluster's smallest disparity; here it lies midway (in disparity) between that
    and the largest disparity of the next farther cluster, so pixels the sub-sampling skipped do not
    leak into the next layer. The first edge is just below the nearest depth and the
    last just beyond the farthest, so every pixel falls into exactly one interval.

    Args:
        depth: (1, H, W) z-depth (non-finite pixels are ignored).
        num_layers: L (None: use ``distance_threshold``).
        distance_threshold: Ward distance threshold on disparity normalised to [0, 1]
            (3D-Cinemagraphy uses 5 when no layer count is given).
        stride: sub-sampling step in pixels (the paper's code: 10).
    Returns:
        L + 1 increasing floats.
    """
    if depth.ndim != 3 or depth.shape[0] != 1:
        raise ValueError(f"depth must be (1, H, W), got {tuple(depth.shape)}")
    finite = torch.isfinite(depth) & (depth > 0)
    if not bool(finite.any()):
        raise ValueError("depth has no finite positive pixel")
    d_min, d_max = float(depth[finite].min()), float(depth[finite].max())
    sub, ok = depth[0, ::stride, ::stride], finite[0, ::stride, ::stride]
    if int(ok.sum()) < 2:
        sub, ok = depth[0], finite[0]
    disp = (1.0 / sub[ok].double()).cpu().numpy()
    lo, hi = disp.min(), disp.max()
    if hi <= lo:
        return [d_min * (1 - 1e-6), d_max * (1 + 1e-6)]
    feat = (disp - lo) / (hi - lo)
    if num_layers is not None:
        labels = ward_clusters_1d(feat, num_clusters=num_layers)
    else:
        labels = ward_clusters_1d(feat, distance_threshold=distance_threshold)
    count = int(labels.max()) + 1
    # clusters are intervals of the sorted disparity (label 0 = farthest); an edge lies midway between
    # a cluster's smallest disparity and the next farther cluster's largest, so the pixels that the
    # sub-sampling skipped fall on the side of the plane they belong to
    gaps = [0.5 * (feat[labels == c].min() + feat[labels == c - 1].max()) for c in range(1, count)]
    inner = sorted(1.0 / (g * (hi - lo) + lo) for g in gaps)
    return [d_min * (1 - 1e-6), *[float(v) for v in inner], d_max * (1 + 1e-6)]


def assign_layers(depth: torch.Tensor, edges: list[float]) -> torch.Tensor:
    """(1, H, W) int64 layer index of every pixel: i where edges[i] < depth <= edges[i+1].

    An inner edge is the farthest depth of its cluster, so the interval is closed on the far side.
    Pixels beyond the last edge (and non-finite ones) go to the last (farthest) layer.
    """
    if depth.ndim != 3 or depth.shape[0] != 1:
        raise ValueError(f"depth must be (1, H, W), got {tuple(depth.shape)}")
    inner = torch.tensor(edges[1:-1], dtype=depth.dtype, device=depth.device)
    safe = torch.where(torch.isfinite(depth), depth, torch.full_like(depth, float("inf")))
    return torch.bucketize(safe, inner, right=False).clamp_(max=len(edges) - 2)


def _boundary_pairs(labels: torch.Tensor, disp: torch.Tensor):
    """Horizontal and vertical neighbour pairs: (label_a, label_b, disp_a, disp_b) flattened."""
    la = torch.cat([labels[:, :, :-1].reshape(-1), labels[:, :-1, :].reshape(-1)])
    lb = torch.cat([labels[:, :, 1:].reshape(-1), labels[:, 1:, :].reshape(-1)])
    da = torch.cat([disp[:, :, :-1].reshape(-1), disp[:, :-1, :].reshape(-1)])
    db = torch.cat([disp[:, :, 1:].reshape(-1), disp[:, 1:, :].reshape(-1)])
    return la, lb, da, db


def merge_connected_layers(
    labels: torch.Tensor,
    depth: torch.Tensor,
    edges: list[float],
    jump: float = 0.04,
    max_discontinuous: float = 0.25,
) -> tuple[torch.Tensor, list[float]]:
    """Join neighbouring depth layers that meet without a depth discontinuity.

    For layers i and i+1 the 4-neighbour pixel pairs across their shared image boundary are examined; a
    pair is a discontinuity when its disparity step |1/z_a - 1/z_b|, as a fraction of the image's
    disparity range, exceeds ``jump`` (a smooth ramp steps by about 1/H per pixel). When at most
    ``max_discontinuous`` of the boundary is discontinuous, the two layers are one surface (a tilted
    ground plane cut by an edge) and are merged. An object standing on the ground touches it without
    a jump only along its base, so most of its outline is a jump and it stays a layer of its own.

    Args:
        labels: (1, H, W) int64 layer indices from :func:`assign_layers`.
        depth: (1, H, W) z-depth.
        edges: the L + 1 edges the labels were made with.
        jump: disparity step (fraction of the disparity range) that counts as a discontinuity.
        max_discontinuous: merge when the discontinuous fraction of the boundary is at most this.
    Returns:
        (labels (1, H, W) renumbered 0..L'-1, edges with the merged inner edges removed).
    """
    if labels.shape != depth.shape:
        raise ValueError(f"labels must be {tuple(depth.shape)}, got {tuple(labels.shape)}")
    finite = torch.isfinite(depth) & (depth > 0)
    disp = torch.where(
        finite, 1.0 / torch.where(finite, depth, torch.ones_like(depth)), torch.zeros_like(depth)
    )
    la, lb, da, db = _boundary_pairs(labels, disp)
    span = float(disp[finite].max() - disp[finite].min()) if bool(finite.any()) else 0.0
    rel = (da - db).abs() / max(span, 1e-12)
    edges = list(edges)
    labels = labels.clone()
    layer = 0
    while layer < len(edges) - 2:
        across = ((la == layer) & (lb == layer + 1)) | ((la == layer + 1) & (lb == layer))
        count = int(across.sum())
        if count and float((rel[across] > jump).float().mean()) <= max_discontinuous:
            labels = torch.where(labels > layer, labels - 1, labels)
            la = torch.where(la > layer, la - 1, la)
            lb = torch.where(lb > layer, lb - 1, lb)
            del edges[layer + 1]
            continue  # the merged layer may now also join the next one
        layer += 1
    return labels, edges


def discontinuity_mask(depth: torch.Tensor, jump: float = 0.04) -> torch.Tensor:
    """(1, H, W) bool: pixels with a 4-neighbour whose disparity differs by more than ``jump`` of the
    image's disparity range (both sides of every depth discontinuity)."""
    finite = torch.isfinite(depth) & (depth > 0)
    disp = torch.where(
        finite, 1.0 / torch.where(finite, depth, torch.ones_like(depth)), torch.zeros_like(depth)
    )
    span = max(float(disp[finite].max() - disp[finite].min()), 1e-12) if bool(finite.any()) else 1.0
    out = torch.zeros_like(finite)
    dx = (disp[:, :, 1:] - disp[:, :, :-1]).abs() > jump * span
    dy = (disp[:, 1:, :] - disp[:, :-1, :]).abs() > jump * span
    out[:, :, 1:] |= dx
    out[:, :, :-1] |= dx
    out[:, 1:, :] |= dy
    out[:, :-1, :] |= dy
    return out


def remap_layer_depth(
    pred_depth: torch.Tensor, mask: torch.Tensor, near_edge: float, far_edge: float
) -> torch.Tensor:
    """Eq. 5: rescale a layer's predicted depth linearly from its [min, max] on ``mask`` to [d_i, d_i+1].

    Args:
        pred_depth: (1, H, W) depth predicted for the layer's cumulative overlay (Eq. 4).
        mask: (1, H, W) bool, the layer's pixels (min and max are taken over them).
        near_edge: d_i; far_edge: d_{i+1} > d_i.
    Returns:
        (1, H, W) depth; every masked pixel lies in [near_edge, far_edge] (a constant prediction maps
        to the middle of the interval).
    """
    if pred_depth.ndim != 3 or pred_depth.shape[0] != 1 or mask.shape != pred_depth.shape:
        raise ValueError(
            f"pred_depth and mask must be (1, H, W), got {tuple(pred_depth.shape)}, {tuple(mask.shape)}"
        )
    if not far_edge > near_edge:
        raise ValueError(f"far_edge must exceed near_edge, got {near_edge} and {far_edge}")
    ok = mask & torch.isfinite(pred_depth)
    if not bool(ok.any()):
        return torch.full_like(pred_depth, 0.5 * (near_edge + far_edge))
    lo, hi = pred_depth[ok].min(), pred_depth[ok].max()
    if float(hi - lo) <= 0:
        return torch.full_like(pred_depth, 0.5 * (near_edge + far_edge))
    safe = torch.where(torch.isfinite(pred_depth), pred_depth, hi)
    out = (far_edge - near_edge) * (safe - lo) / (hi - lo) + near_edge
    return out.clamp(near_edge, far_edge)
