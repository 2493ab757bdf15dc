"""A triangle rasteriser in pure, vectorised torch, and a vertex-colour mesh renderer.

How it works (all faces at once, no Python loop over faces):

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

import sys
from dataclasses import dataclass

import torch

from wanderview.cameras.camera import Camera
from wanderview.render.antialias import downsample
from wanderview.types import RenderOutput

_EMPTY_KEY = torch.iinfo(torch.int64).max
# candidate (face, pixel) pairs evaluated per dense block; bounds peak memory to a few hundred MB
_MAX_BLOCK = 1 << 16
# faces set up together (cache-sized), and faces rasterised together (bounds the face table's memory)
_FACE_BLOCK = 1 << 15
_FACE_BATCH = 1 << 21
# faces whose pixel box is at most this many pixel centres on each side skip the windowed path
_SMALL_BOX = 2
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
    """Project world points into ``camera``.

    Args:
        points: (N, 3) world coordinates.
    Returns:
        xy: (N, 2) pixel coordinates (pixel centres at +0.5; garbage where z <= 0); z: (N,) z-depth.
    """
    w2c = camera.world_to_cam.to(points)
    K = camera.K.to(points)
    # three fused multiply-adds per axis beat a (N, 3) @ (3, 3) matmul on CPU
    px, py, pz = points.unbind(dim=1)
    cx, cy, z = (w2c[i, 0] * px + w2c[i, 1] * py + w2c[i, 2] * pz + w2c[i, 3] for i in range(3))
    cam = (cx, cy)
    safe_z = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    xn, yn = cam[0] / safe_z, cam[1] / safe_z
    return torch.stack([K[0, 0] * xn + K[0, 1] * yn + K[0, 2], K[1, 1] * yn + K[1, 2]], dim=-1), z


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


def _select_bits(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
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


def _setup_and_draw_small_faces(
    points: torch.Tensor, faces: torch.Tensor, face_ids: torch.Tensor, keys: torch.Tensor,
    width: int, height: int, near: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Set up a block of faces, z-test those whose box holds at most 2 x 2 pixel centres, tabulate the rest.

    Most faces of a dense mesh seen from near its capture pose cover 0 or 1 pixel centres (up to 2 x 2
    when rendered supersampled): testing those few centres directly here, while the block's setup is
    still in cache, is far cheaper than a dense window per face. Every edge (3 at once as (3, F) rows) is evaluated relative to its end
    point that comes first in screen order, and its direction is exactly negated across a shared edge,
    so the face across the edge gets bit-identical negated values (no cracks, no double hits); this
    relative form is exactly 0 at both end points, so a pixel centre on a shared vertex is decided by
    the tie rule alone.

    Args:
        points: (3, V) screen x, y and z-depth of every vertex.
        faces: (F, 3) int32 or long vertex indices of the block's faces; face_ids: (F,) long global ids.
        keys: (H*W,) int64 z-buffer (depth bits << 32 | face id), updated in place.
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
    origin = _select_bits(_negative_mask(signs[0] * 2 + signs[1]), b, a)
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
    size = _select_bits(keep, hi - lo + 1, 0.0)  # (2, F) box size in pixels, 0 = culled
    # boxes of at most 2 x 2 pixel centres (most faces of a dense mesh, also when supersampled) are
    # z-tested right here, one candidate pixel per box corner; each candidate repeats the exact
    # expressions of the windowed path, so a pixel on a shared edge is decided the same either way
    small = (size.amax(0) <= _SMALL_BOX).logical_and_(size.amin(0) > 0)
    wide, tall = size[0] > 1, size[1] > 1
    spare = keys.numel() - 1  # candidates that miss go to the spare last entry of keys
    exact_index = width * height <= 1 << 24  # pixel indices are exact in float32

    def candidates(ox, oy, valid, lo, origin, dx, dy, thr, slope, offset, ids):
        p = lo + torch.tensor([[ox + 0.5], [oy + 0.5]], dtype=lo.dtype, device=lo.device)
        q = p[:, None] - origin  # (px - x0, py - y0)
        # e > thr is e - thr > 0 (thr is 0 or the smallest subnormal): one comparison for all three edges
        margin = (dx * q[1] - dy * q[0]).sub_(thr).amin(0)
        inside = (margin > 0).logical_and_(valid)
        inv_depth = (slope[0] * p[1] - slope[1] * p[0]) + offset
        depth_bits = torch.reciprocal(inv_depth.clamp_min_(1e-30)).view(torch.int32).long()
        key = depth_bits.bitwise_left_shift_(32).bitwise_or_(ids)
        if exact_index:
            return key, _select_bits(inside, (lo[1] + oy) * width + (lo[0] + ox), float(spare)).long()
        row, col = (lo[1] + oy).clamp(max=height - 1).long(), (lo[0] + ox).clamp(max=width - 1).long()
        return key, torch.where(inside, row * width + col, spare)

    setup = (lo, origin, dx, dy, thr, slope, offset, face_ids)
    parts = [candidates(0, 0, small, *setup)]
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
            parts.append(candidates(ox, oy, valid, *setup))
    all_keys, all_pix = zip(*parts)
    keys.scatter_reduce_(0, torch.cat(all_pix), torch.cat(all_keys), reduce="amin")
    rest = (size.amin(0) > 0).logical_and_(~small).nonzero().squeeze(1)
    if rest.numel() == 0:
        return None
    pick = lambda rows: rows.index_select(-1, rest).view(-1, rest.numel())  # noqa: E731
    table = torch.cat([pick(x0), pick(y0), pick(dx), pick(dy), pick(thr), pick(-slope[1]), pick(slope[0]),
                       pick(offset), pick(lo)])
    size = size.index_select(1, rest).long()
    return table, size[0], size[1], face_ids[rest]


def _rasterize_block(
    table: torch.Tensor, size_x: torch.Tensor, size_y: torch.Tensor, ids: torch.Tensor, keys: torch.Tensor,
    width: int,
) -> None:
    """Z-test faces in dense windows into ``keys`` (H*W,) int64 = depth bits << 32 | face id, in place.

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
    depth_bits = (1.0 / inv_depth.clamp_min(1e-30)).view(torch.int32).long()
    key = depth_bits.bitwise_left_shift_(32).bitwise_or_(ids[items, None])
    # candidates outside the face go to the spare last entry of keys
    pix = torch.where(inside, row * width + col, keys.numel() - 1)
    keys.scatter_reduce_(0, pix.view(-1), key.view(-1), reduce="amin")


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
    vertices: torch.Tensor, faces: torch.Tensor, camera: Camera, colors: torch.Tensor | None, near: float = 1e-4
) -> tuple[Fragments, torch.Tensor | None]:
    """:func:`rasterize`, plus vertex colours interpolated in the same pass over the pixels.

    Args:
        vertices: (V, 3); faces: (F, 3) long; camera: a single camera; colors: (V, C) or None.
    Returns:
        :class:`Fragments`, and (C, H, W) perspective-correct colours (0 where empty) or None.
    """
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
    keys = torch.full((H * W + 1,), _EMPTY_KEY, dtype=torch.int64, device=vertices.device)
    # projected once; the rasteriser uses a detached copy, the resolve step keeps autograd's graph
    xy, z = project_to_screen(vertices, camera)
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
            larger = _setup_and_draw_small_faces(
                points, faces[start:end], all_ids[start:end], keys, W, H, near
            )
            if larger is not None:
                pending.append(larger)
                pending_count += larger[3].numel()
            # the faces left to the windowed path go in batches, bounding the table's memory
            if pending and (pending_count >= _FACE_BATCH or end == faces.shape[0]):
                table, size_x, size_y, ids = (torch.cat(parts, dim=-1) for parts in zip(*pending))
                _rasterize_block(table, size_x, size_y, ids, keys, W)
                pending, pending_count = [], 0
    keys = keys[: H * W].view(H, W)
    if sys.byteorder == "little":  # the low word is the face id, and -1 for the empty key's 0xFFFFFFFF
        face_id = keys.view(torch.int32)[:, ::2].long()
    else:
        face_id = torch.where(keys != _EMPTY_KEY, keys & 0xFFFFFFFF, -1)
    bary, depth, rgb = _resolve(points_grad, faces, face_id, colors)
    # bary is a (H, W, 3) view of a corner-major (3, H, W) tensor: no transposing copy
    frags = Fragments(face_id=face_id, bary=bary.view(3, H, W).permute(1, 2, 0), depth=depth)
    return frags, rgb


def _resolve(points: torch.Tensor, faces: torch.Tensor, face_id: torch.Tensor, colors: torch.Tensor | None):
    """Perspective-correct barycentrics, z-depth and (optionally) colour of the winning faces.

    Args:
        points: (3, V) projected x, y and z-depth (differentiable if autograd tracks them).
        faces: (F, 3) int32 or long; face_id: (H, W) long, -1 where empty; colors: (V, 3) or None.
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
        area2 = _select_bits(covered, e[0] + e[1] + e[2], 1.0)
        persp = e / (area2 * vz)
        inv_depth = persp[0] + persp[1] + persp[2]
        bary = _select_bits(covered, persp / inv_depth, 0.0)
        bary_parts.append(bary)
        depth_parts.append(_select_bits(covered, torch.reciprocal(inv_depth), float("inf")))
        if colors is not None:
            # per channel, one gather of all three corners' colours: contiguous rows, no transpose
            rgb = []
            for c in range(colors.shape[1]):
                c0, c1, c2 = colors[:, c].index_select(0, vertex_ids).view(3, n)
                rgb.append(c0 * bary[0] + c1 * bary[1] + c2 * bary[2])
            rgb_parts.append(_select_bits(covered, torch.stack(rgb), 0.0))
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
    Returns:
        RenderOutput: rgb (3, H, W) premultiplied by coverage (0 where empty), depth (1, H, W) z-depth
        (``inf`` where empty; with supersampling the coverage-weighted mean of the covered samples),
        alpha (1, H, W) coverage.
    """
    if colors.ndim != 2 or colors.shape[1] != 3 or colors.shape[0] != vertices.shape[0]:
        raise ValueError(f"colors must be (V, 3) with V = {vertices.shape[0]}, got {tuple(colors.shape)}")
    if int(supersample) < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    s = int(supersample)
    cam = camera if s == 1 else camera.scaled(camera.width * s, camera.height * s)
    frags, rgb = rasterize_and_shade(vertices, faces, cam, colors, near)
    mask = frags.mask
    alpha = mask[None].to(rgb.dtype)
    depth = frags.depth[None].to(rgb.dtype)
    if s == 1:
        return RenderOutput(rgb=rgb, depth=depth, alpha=alpha)
    finite_depth = torch.where(mask[None], depth, torch.zeros_like(depth))
    stack = torch.cat([rgb, alpha, finite_depth], dim=0)
    stack = downsample(stack, s, blur)
    rgb, alpha, depth_sum = stack[:3], stack[3:4], stack[4:5]
    covered = alpha > 1e-6
    depth = torch.where(covered, depth_sum / alpha.clamp_min(1e-6), torch.full_like(alpha, float("inf")))
    return RenderOutput(rgb=rgb.clamp(0, 1), depth=depth, alpha=alpha.clamp(0, 1))
