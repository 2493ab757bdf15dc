"""The kernels of the mesh rasteriser (:mod:`wanderview.render.mesh`): face setup with the z-test of
small faces, and the windowed z-test of the larger ones.

Both write into one int64 z-buffer, ``keys`` (H*W + 1,) = ``float32 depth bits << 32 | face id``
(:func:`pack_keys`, the one key packing of every z-buffer), updated with ``scatter_reduce("amin")``;
its spare last entry takes the candidates that miss, which is cheaper than masking them out. On
CPU, torch.where, comparisons and fresh multi-MB temporaries cost many times more than arithmetic on
cache-sized tensors; the code is shaped by that (masks from signs, bit-blended selections, blocks).
"""

from __future__ import annotations

import sys

import torch

# the key of an empty z-buffer entry: larger than every packed (finite depth, id) key
EMPTY_KEY = torch.iinfo(torch.int64).max
# candidate (face, pixel) pairs evaluated per dense block; bounds peak memory to a few hundred MB
_MAX_BLOCK = 1 << 16
# faces whose pixel box is at most this many pixel centres on each side skip the windowed path
_SMALL_BOX = 2


def pack_keys(depth: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """z-buffer keys ``float32 depth bits << 32 | id``: the smallest key is the nearest (ties: lowest id).

    The bit patterns of positive float32 numbers sort like the numbers, so one ``scatter_reduce("amin")``
    over the keys is a z-test that also remembers the winner. The one key packing of every z-buffer
    (mesh rasteriser, splatting); :func:`unpack_ids` and :func:`unpack_depth` undo it.

    Args:
        depth: (...) float32 z-depth, positive (the packing orders nothing else correctly); a
            temporary: its int64 conversion is shifted in place.
        ids: (...) long (or broadcastable) ids in [0, 2^31).
    Returns:
        (...) int64 keys.
    """
    return depth.view(torch.int32).long().bitwise_left_shift_(32).bitwise_or_(ids)


def unpack_ids(keys: torch.Tensor) -> torch.Tensor:
    """(...) long ids of z-buffer ``keys`` (...) int64; -1 where a key is :data:`EMPTY_KEY`."""
    if sys.byteorder == "little" and keys.is_contiguous() and keys.ndim:
        # the low word is the id, and -1 for the empty key's 0xFFFFFFFF: no comparison, no select
        return keys.view(torch.int32)[..., ::2].long()
    return torch.where(keys != EMPTY_KEY, keys & 0xFFFFFFFF, -1)


def unpack_depth(keys: torch.Tensor) -> torch.Tensor:
    """(...) float32 depth of z-buffer ``keys`` (...) int64; ``inf`` where a key is :data:`EMPTY_KEY`."""
    depth = (keys >> 32).to(torch.int32).view(torch.float32)
    return torch.where(keys != EMPTY_KEY, depth, float("inf"))


def window_groups(width: torch.Tensor, height: torch.Tensor) -> list[tuple[int, int, torch.Tensor]]:
    """Group pixel boxes by the power-of-two size of the window that holds them.

    Grouping lets one dense (boxes, window pixels) block hold boxes of similar size, wasting at most
    ~4x on padding, without a Python loop over boxes.

    Args:
        width, height: (M,) long box sizes in pixels; boxes with a size <= 0 are skipped.
    Returns:
        list of (window width, window height, members (n,) long box indices).
    """
    valid = (width > 0) & (height > 0)
    log_w = torch.ceil(torch.log2(width.clamp_min(1).float())).long()
    log_h = torch.ceil(torch.log2(height.clamp_min(1).float())).long()
    key = torch.where(valid, log_w * 64 + log_h, -1)
    groups = []
    # a handful of groups: one comparison pass each is cheaper than sorting every box
    counts = torch.bincount(key + 1)
    for group in (counts[1:].nonzero().squeeze(1)).tolist():
        groups.append((1 << (group // 64), 1 << (group % 64), (key == group).nonzero().squeeze(1)))
    return groups


# rows of the per-face table of the faces left to the windowed path: per edge k the origin (x0, y0),
# direction DX, DY and tie threshold, the screen-space plane of 1/z (3), bounding-box corner (2)
_X0, _Y0, _DX, _DY, _THR, _PLANE, _LO = 0, 3, 6, 9, 12, 15, 18
_TABLE_ROWS = 20
# "e > _TIE_THR" is "e >= 0" for every float but negative subnormals: one comparison for the tie rule
_TIE_THR = -1.401298464324817e-45
_TIE_THR_BITS = -0x7FFFFFFF  # its float32 bit pattern 0x80000001 as an int32


def _negative_mask(values: torch.Tensor) -> torch.Tensor:
    """int32 mask, -1 (all bits) where the float32 ``values`` have the sign bit set, else 0."""
    return values.view(torch.int32) >> 31


def select_bits(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    """``torch.where(mask, a, b)`` for float32 without autograd, by blending bit patterns.

    On CPU torch.where (and masked_fill) run some 30x slower than plain arithmetic; three integer bit
    operations give the same bits. ``mask`` is bool, or an int32 mask of -1 / 0; shapes broadcast.
    """
    needs_grad = torch.is_grad_enabled() and (a.requires_grad or (torch.is_tensor(b) and b.requires_grad))
    if needs_grad or a.device.type != "cpu" or a.dtype != torch.float32:
        return torch.where(mask if mask.dtype == torch.bool else mask.bool(), a, b)
    if mask.dtype == torch.bool:
        mask = mask.to(torch.int32).neg_()
    if not torch.is_tensor(b):
        b = torch.tensor(b, dtype=torch.float32)
    b_bits = b.view(torch.int32)
    return (a.view(torch.int32) ^ b_bits).bitwise_and_(mask).bitwise_xor_(b_bits).view(torch.float32)


def draw_small_faces(
    points: torch.Tensor,
    faces: torch.Tensor,
    face_ids: torch.Tensor,
    keys: torch.Tensor,
    width: int,
    height: int,
    near: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Set up a block of faces, z-test those whose box holds at most 2 x 2 pixel centres, tabulate the rest.

    Most faces of a dense mesh seen from near its capture pose cover 0 or 1 pixel centres (up to 2 x 2
    when rendered supersampled): testing those few centres directly here, while the block's setup is
    still in cache, is far cheaper than a dense window per face. Every edge (3 at once as (3, F) rows)
    is evaluated relative to its end point that comes first in screen order, and its direction is
    exactly negated across a shared edge, so the face across the edge gets bit-identical negated values
    (no cracks, no double hits); this relative form is exactly 0 at both end points, so a pixel centre
    on a shared vertex is decided by the tie rule alone.

    Args:
        points: (3, V) screen x, y and z-depth of every vertex.
        faces: (F, 3) int32 or long vertex indices of the block's faces; face_ids: (F,) long global ids.
        keys: (H*W + 1,) int64 z-buffer (depth bits << 32 | face id; the last entry is the spare that
            takes the candidates that miss), updated in place.
    Returns:
        None if no face needs a larger window, else (table (20, M) float, size_x (M,) long,
        size_y (M,) long, ids (M,) long) of the M faces whose box is larger than 2 x 2 pixel centres.
    """
    n = faces.shape[0]
    # corner-major indices; a strided column copy is far cheaper than torch's transposing copy
    corners = torch.cat([faces[:, 0], faces[:, 1], faces[:, 2]])
    gathered = points.index_select(1, corners).view(3, 3, n)
    xy, fz = gathered[:2], gathered[2]  # (2 axes, 3 corners, F), (3, F)
    # x and y together as (2, ...) rows: half the torch calls, each on twice the data
    lo = xy.amin(1).sub_(0.5).ceil_().clamp_(min=0)
    hi = xy.amax(1).sub_(0.5).floor_()
    hi = torch.minimum(hi, torch.tensor([[width - 1], [height - 1]], dtype=hi.dtype, device=hi.device))
    # edge k runs from corner a = k + 1 to b = k + 2 (mod 3)
    a, b = xy.roll(-1, 1), xy.roll(-2, 1)
    d = b - a
    dx, dy = d[0], d[1]
    # twice the signed area, (x1 - x0)(y2 - y0) - (y1 - y0)(x2 - x0) written with the edge vectors
    area2 = dy[2] * dx[1] - dx[2] * dy[1]
    # comparisons and torch.where are many times slower than arithmetic on CPU: the masks below come
    # from signs (exact: x - y is 0 only when x == y) and the selections from bit patterns
    signs = torch.sign(d)
    # the edge's origin is its end point that comes first in (x, y) order: b when 2 sign(dx) + sign(dy) < 0
    origin = select_bits(_negative_mask(signs[0] * 2 + signs[1]), b, a)
    x0, y0 = origin[0], origin[1]
    # orient every face counter-clockwise on screen so "inside" is always e > 0 (no back-face culling);
    # a zero-area face gets orient 0 and is culled below
    orient = torch.sign(area2)
    area2 = area2.abs()
    d.mul_(orient)
    signs.mul_(orient)
    # top-left tie rule: a pixel centre exactly on an edge belongs to the face whose inward edge normal
    # (-DY, DX) points right, or straight down (DY < 0, or DY == 0 < DX); the neighbour across the
    # edge sees the opposite normal. "e > thr" with thr = -(smallest subnormal) is "e >= 0".
    top_left = _negative_mask((signs[1] * 2 - signs[0]).add_(0.0))  # + 0.0 turns -0 into +0
    thr = top_left.bitwise_and_(_TIE_THR_BITS).view(torch.float32)
    # 1/z is affine in screen space: sum_k e_k(p) / (z_k * area2), e_k = A_k px + B_k py + C_k
    w = torch.reciprocal(fz * area2)
    t = d * w  # (dx w, dy w)
    slope = t[:, 0] + t[:, 1] + t[:, 2]  # (slope y, -slope x) of the plane
    t = (dy * x0 - dx * y0).mul_(w)
    offset = t[0] + t[1] + t[2]
    keep = (fz.amin(0) > near) & (area2 > 1e-12) & (area2 < float("inf"))
    size = select_bits(keep, hi - lo + 1, 0.0)  # (2, F) box size in pixels, 0 = culled
    # boxes of at most 2 x 2 pixel centres (most faces of a dense mesh, also when supersampled) are
    # z-tested right here, one candidate pixel per box corner; each candidate repeats the exact
    # expressions of the windowed path, so a pixel on a shared edge is decided the same either way
    small = (size.amax(0) <= _SMALL_BOX).logical_and_(size.amin(0) > 0)
    wide, tall = size[0] > 1, size[1] > 1
    setup = (lo, origin, dx, dy, thr, slope, offset, face_ids)
    spare = keys.numel() - 1
    parts = [_candidates(0, 0, small, setup, width, height, spare)]
    larger = (wide | tall).logical_and_(small)
    count = int(larger.sum())
    if 0 < count < n // 2:  # few faces need the other three corners: compact them first
        pick = larger.nonzero().squeeze(1)
        setup = tuple(x.index_select(-1, pick) for x in setup)
        wide, tall = wide[pick], tall[pick]
        fits = torch.ones_like(wide)
    else:
        fits = small
    if count:
        for ox, oy, valid in ((1, 0, fits & wide), (0, 1, fits & tall), (1, 1, fits & wide & tall)):
            parts.append(_candidates(ox, oy, valid, setup, width, height, spare))
    all_keys, all_pix = zip(*parts)
    keys.scatter_reduce_(0, torch.cat(all_pix), torch.cat(all_keys), reduce="amin")
    rest = (size.amin(0) > 0).logical_and_(~small).nonzero().squeeze(1)
    if rest.numel() == 0:
        return None
    pick = lambda rows: rows.index_select(-1, rest).view(-1, rest.numel())  # noqa: E731
    table = torch.cat(
        [
            pick(x0),
            pick(y0),
            pick(dx),
            pick(dy),
            pick(thr),
            pick(-slope[1]),
            pick(slope[0]),
            pick(offset),
            pick(lo),
        ]
    )
    size = size.index_select(1, rest).long()
    return table, size[0], size[1], face_ids[rest]


def _candidates(ox: int, oy: int, valid, setup, width: int, height: int, spare: int):
    """z-buffer keys and pixel indices of the candidate pixel centre ``lo + (ox, oy)`` of each face.

    Args:
        valid: (F,) bool, faces that have this candidate; setup: (lo (2, F), origin (2, 3, F),
            dx, dy, thr (3, F), slope (2, F), offset (F,), ids (F,)) from the face setup.
    Returns:
        keys (F,) int64 and pixel indices (F,) long (``spare`` where the centre is outside the face).
    """
    lo, origin, dx, dy, thr, slope, offset, ids = setup
    p = lo + torch.tensor([[ox + 0.5], [oy + 0.5]], dtype=lo.dtype, device=lo.device)
    q = p[:, None] - origin  # (px - x0, py - y0)
    # e > thr is e - thr > 0 (thr is 0 or the smallest subnormal): one comparison for all three edges
    margin = (dx * q[1] - dy * q[0]).sub_(thr).amin(0)
    inside = (margin > 0).logical_and_(valid)
    inv_depth = (slope[0] * p[1] - slope[1] * p[0]) + offset
    key = pack_keys(torch.reciprocal(inv_depth.clamp_min_(1e-30)), ids)
    if width * height <= 1 << 24:  # pixel indices are exact in float32
        return key, select_bits(inside, (lo[1] + oy) * width + (lo[0] + ox), float(spare)).long()
    row, col = (lo[1] + oy).clamp(max=height - 1).long(), (lo[0] + ox).clamp(max=width - 1).long()
    return key, torch.where(inside, row * width + col, spare)


def draw_windowed(
    table: torch.Tensor,
    size_x: torch.Tensor,
    size_y: torch.Tensor,
    ids: torch.Tensor,
    keys: torch.Tensor,
    width: int,
) -> None:
    """Z-test faces in dense windows into ``keys`` (H*W + 1,) int64 = depth bits << 32 | face id (the
    last entry is the spare for misses), in place.

    Args:
        table: (20, M) face table; size_x, size_y: (M,) long box sizes; ids: (M,) long face ids.

    Window groups span the whole batch (few groups, each split into chunks of ~_MAX_BLOCK candidate
    pairs), so the per-call overhead does not multiply with the number of face blocks.
    """
    for kw, kh, members in window_groups(size_x, size_y):
        window = torch.arange(kw * kh, device=table.device)
        ox, oy = window % kw, window // kw
        step = max(1, _MAX_BLOCK // (kw * kh))
        for chunk in range(0, members.numel(), step):
            items = members[chunk : chunk + step]
            _rasterize_chunk(table, size_x, size_y, ids, keys, width, items, kw, kh, ox, oy)


def _rasterize_chunk(table, size_x, size_y, ids, keys, width, items, kw, kh, ox, oy) -> None:
    """Coverage test, depth and z-buffer update of the faces ``items`` in (kw x kh) pixel windows."""
    d = table.index_select(1, items)[..., None]  # (_TABLE_ROWS, n, 1)
    col, row = d[_LO].long() + ox, d[_LO + 1].long() + oy  # (n, K) pixel indices
    px, py = col.to(d.dtype) + 0.5, row.to(d.dtype) + 0.5
    inside = (ox < size_x[items, None]) & (oy < size_y[items, None])
    for k in range(3):
        e = d[_DX + k] * (py - d[_Y0 + k]) - d[_DY + k] * (px - d[_X0 + k])
        inside &= e > d[_THR + k]
    inv_depth = d[_PLANE] * px + d[_PLANE + 1] * py + d[_PLANE + 2]
    key = pack_keys(1.0 / inv_depth.clamp_min(1e-30), ids[items, None])
    # candidates outside the face go to the spare last entry of keys
    pix = torch.where(inside, row * width + col, keys.numel() - 1)
    keys.scatter_reduce_(0, pix.view(-1), key.view(-1), reduce="amin")
