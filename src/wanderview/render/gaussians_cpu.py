"""The fast CPU Gaussian compositor: 16-px tiles, depth-sorted per tile, analytic backward.

Layout of the work (per camera):

1. **Binning** — every Gaussian is listed in each tile its 3σ box touches; one stable argsort by
   camera z, then a counting sort by tile, so each tile's list is already front to back.
2. **Forward** — tiles in parallel (numba ``prange``); each pixel walks its tile's list, applies
   the rules of :mod:`wanderview.render.gaussians_ref` and records its final transmittance and
   the end of the list it used.
3. **Backward** — the same walk back to front (gsplat's scheme): transmittance is recovered by
   dividing by (1 − α) and the colour behind each Gaussian is accumulated, so nothing per pixel
   and Gaussian is stored. Gradients go into a per-(tile, Gaussian) slot (no races between
   threads), then one serial pass sums the slots per Gaussian.

The kernels are numba (compiled on first use, cached on disk); without numba the dense
reference is used with a warning (correct, but slow and memory-hungry).
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import torch

# the compositing rules (alpha clamp and cut-off, transmittance stop) and the contract are the reference's
from wanderview.render.gaussians_ref import ALPHA_MAX, ALPHA_MIN, T_MIN, Splats2D, composite_reference

try:  # numba is a dependency; the guard keeps the package importable where it is missing
    import numba
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only on machines without numba
    HAVE_NUMBA = False

if HAVE_NUMBA:

    @njit(cache=True)
    def _bin_tiles(means2d, radii, depths, width, height, tile):
        """-> offsets (tiles+1,) int64, ids (M,) int32: each tile's Gaussians, front to back."""
        tw = (width + tile - 1) // tile
        th = (height + tile - 1) // tile
        n = means2d.shape[0]
        box = np.full((n, 4), -1, dtype=np.int64)  # tile x0, x1, y0, y1 (inclusive)
        counts = np.zeros(tw * th + 1, dtype=np.int64)
        for g in range(n):
            rx, ry = radii[g, 0], radii[g, 1]
            if rx <= 0 or ry <= 0:
                continue
            # pixels p with |p + 0.5 - mean| <= r
            x0 = max(int(np.ceil(means2d[g, 0] - rx - 0.5)), 0)
            x1 = min(int(np.floor(means2d[g, 0] + rx - 0.5)), width - 1)
            y0 = max(int(np.ceil(means2d[g, 1] - ry - 0.5)), 0)
            y1 = min(int(np.floor(means2d[g, 1] + ry - 0.5)), height - 1)
            if x0 > x1 or y0 > y1:
                continue
            box[g, 0], box[g, 1], box[g, 2], box[g, 3] = x0 // tile, x1 // tile, y0 // tile, y1 // tile
            for ty in range(box[g, 2], box[g, 3] + 1):
                for tx in range(box[g, 0], box[g, 1] + 1):
                    counts[ty * tw + tx + 1] += 1
        offsets = np.cumsum(counts)
        fill = offsets[:-1].copy()
        ids = np.empty(offsets[-1], dtype=np.int32)
        for g in np.argsort(depths, kind="mergesort"):
            if box[g, 0] < 0:
                continue
            for ty in range(box[g, 2], box[g, 3] + 1):
                for tx in range(box[g, 0], box[g, 1] + 1):
                    t = ty * tw + tx
                    ids[fill[t]] = g
                    fill[t] += 1
        return offsets, ids

    @njit(parallel=True, cache=True, fastmath=False)
    def _forward(means2d, conics, colors, opac, radii, offsets, ids, width, height, tile, bg):
        """-> out (H, W, D) float64, T_final (H, W) float64, stop (H, W) int64 (list end used)."""
        tw = (width + tile - 1) // tile
        n_tiles = tw * ((height + tile - 1) // tile)
        D = colors.shape[1]
        out = np.zeros((height, width, D), dtype=np.float64)
        t_final = np.ones((height, width), dtype=np.float64)
        stop = np.zeros((height, width), dtype=np.int64)
        for t in prange(n_tiles):
            start, end = offsets[t], offsets[t + 1]
            acc = np.zeros(D, dtype=np.float64)
            for py in range((t // tw) * tile, min((t // tw + 1) * tile, height)):
                for px in range((t % tw) * tile, min((t % tw + 1) * tile, width)):
                    acc[:] = 0.0
                    T = 1.0
                    last = start
                    for k in range(start, end):
                        g = ids[k]
                        dx = means2d[g, 0] - (px + 0.5)
                        dy = means2d[g, 1] - (py + 0.5)
                        if abs(dx) > radii[g, 0] or abs(dy) > radii[g, 1]:
                            continue
                        sigma = (
                            0.5 * (conics[g, 0] * dx * dx + conics[g, 2] * dy * dy) + conics[g, 1] * dx * dy
                        )
                        if sigma < 0.0:
                            continue
                        alpha = min(ALPHA_MAX, opac[g] * np.exp(-sigma))
                        if alpha < ALPHA_MIN:
                            continue
                        next_T = T * (1.0 - alpha)
                        if next_T <= T_MIN:
                            break
                        w = alpha * T
                        for ch in range(D):
                            acc[ch] += w * colors[g, ch]
                        T = next_T
                        last = k + 1
                    for ch in range(D):
                        out[py, px, ch] = acc[ch] + T * bg[ch]
                    t_final[py, px] = T
                    stop[py, px] = last
        return out, t_final, stop

    @njit(parallel=True, cache=True)
    def _backward(means2d, conics, colors, opac, radii, offsets, ids, width, height, tile, bg,
                  t_final, stop, g_out, g_alpha):  # fmt: skip
        """-> per-list-entry gradients (M, 6 + D): means2d x y, conic a b c, opacity, colours."""
        tw = (width + tile - 1) // tile
        n_tiles = tw * ((height + tile - 1) // tile)
        D = colors.shape[1]
        grads = np.zeros((ids.shape[0], 6 + D), dtype=np.float64)
        for t in prange(n_tiles):
            start = offsets[t]
            behind = np.zeros(D, dtype=np.float64)
            for py in range((t // tw) * tile, min((t // tw + 1) * tile, height)):
                for px in range((t % tw) * tile, min((t % tw + 1) * tile, width)):
                    T = t_final[py, px]
                    tf = T
                    behind[:] = 0.0
                    bg_dot = 0.0
                    for ch in range(D):
                        bg_dot += g_out[py, px, ch] * bg[ch]
                    # d(alpha_out)/d(alpha_i) and d(background term)/d(alpha_i) share T_final/(1-α)
                    g_final = g_alpha[py, px] - bg_dot
                    for k in range(stop[py, px] - 1, start - 1, -1):
                        g = ids[k]
                        dx = means2d[g, 0] - (px + 0.5)
                        dy = means2d[g, 1] - (py + 0.5)
                        if abs(dx) > radii[g, 0] or abs(dy) > radii[g, 1]:
                            continue
                        ca, cb, cc = conics[g, 0], conics[g, 1], conics[g, 2]
                        sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                        if sigma < 0.0:
                            continue
                        vis = np.exp(-sigma)
                        raw = opac[g] * vis
                        alpha = min(ALPHA_MAX, raw)
                        if alpha < ALPHA_MIN:
                            continue
                        inv = 1.0 / (1.0 - alpha)
                        T = T * inv  # transmittance in front of this Gaussian
                        w = alpha * T
                        g_a = g_final * tf * inv
                        for ch in range(D):
                            gc = g_out[py, px, ch]
                            grads[k, 6 + ch] += w * gc
                            g_a += gc * (T * colors[g, ch] - behind[ch] * inv)
                            behind[ch] += w * colors[g, ch]
                        if raw <= ALPHA_MAX:  # the clamp has zero gradient
                            g_sigma = -raw * g_a
                            grads[k, 5] += vis * g_a
                            grads[k, 2] += 0.5 * dx * dx * g_sigma
                            grads[k, 3] += dx * dy * g_sigma
                            grads[k, 4] += 0.5 * dy * dy * g_sigma
                            grads[k, 0] += (ca * dx + cb * dy) * g_sigma
                            grads[k, 1] += (cb * dx + cc * dy) * g_sigma
        return grads

    @njit(cache=True)
    def _sum_per_gaussian(grads, ids, n):
        out = np.zeros((n, grads.shape[1]), dtype=np.float64)
        for k in range(ids.shape[0]):
            out[ids[k]] += grads[k]
        return out

    def _serial(kernel, name: str):
        """The same kernel compiled without the thread pool (``prange`` runs as ``range``).

        With one thread the parallel kernels still hand the work to an OpenMP worker while the
        caller waits; on a shared, oversubscribed machine that costs ~20 % more CPU and a
        scheduler wake-up per call. The copy gets its own name so numba caches it apart.
        """
        f = kernel.py_func
        copy = types.FunctionType(f.__code__, f.__globals__, name, f.__defaults__, f.__closure__)
        copy.__qualname__ = name
        return njit(cache=True)(copy)

    _forward_serial = _serial(_forward, "_forward_serial")
    _backward_serial = _serial(_backward, "_backward_serial")


def _kernels():
    """(forward, backward) for the current thread count; sets numba's threads to torch's."""
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if threads == 1:
        return _forward_serial, _backward_serial
    numba.set_num_threads(threads)
    return _forward, _backward


def _np(t: torch.Tensor) -> np.ndarray:
    # Always float64: one compiled specialisation, and finite differences can check the kernels.
    return t.detach().to("cpu", torch.float64).contiguous().numpy()


class _TileComposite(torch.autograd.Function):
    """Tiled compositing of C cameras with the analytic backward of :func:`_backward`."""

    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, backgrounds, depths, radii, width, height, tile):
        C, N, D = colors.shape
        fwd_k, _ = _kernels()
        arrays = [_np(means2d), _np(conics), _np(colors), _np(opacities), _np(backgrounds)]
        radii_np = radii.detach().cpu().to(torch.int64).contiguous().numpy()
        depths_np = _np(depths)
        outs, finals, saved = [], [], []
        for c in range(C):
            m2, co, col, op, bg = (a[c] for a in arrays)
            offsets, ids = _bin_tiles(m2, radii_np[c], depths_np[c], width, height, tile)
            out, t_final, stop = fwd_k(m2, co, col, op, radii_np[c], offsets, ids, width, height, tile, bg)
            outs.append(torch.from_numpy(out))
            finals.append(torch.from_numpy(t_final))
            saved.append((offsets, ids, t_final, stop))
        ctx.save_for_backward(means2d, conics, colors, opacities, backgrounds)
        ctx.lists = saved
        ctx.radii = radii_np
        ctx.size = (width, height, tile)
        dev, dt = colors.device, colors.dtype
        render = torch.stack(outs).to(dev, dt)
        alphas = (1.0 - torch.stack(finals)).unsqueeze(-1).to(dev, dt)
        return render, alphas

    @staticmethod
    def backward(ctx, g_render, g_alphas):
        means2d, conics, colors, opacities, backgrounds = ctx.saved_tensors
        width, height, tile = ctx.size
        C, N, D = colors.shape
        _, bwd_k = _kernels()
        arrays = [_np(means2d), _np(conics), _np(colors), _np(opacities), _np(backgrounds)]
        g_render_np, g_alpha_np = _np(g_render), _np(g_alphas[..., 0])
        per_cam, g_bg = [], []
        for c in range(C):
            m2, co, col, op, bg = (a[c] for a in arrays)
            offsets, ids, t_final, stop = ctx.lists[c]
            pair = bwd_k(m2, co, col, op, ctx.radii[c], offsets, ids, width, height, tile, bg,
                             t_final, stop, g_render_np[c], g_alpha_np[c])  # fmt: skip
            per_cam.append(torch.from_numpy(_sum_per_gaussian(pair, ids, N)))
            g_bg.append(
                torch.from_numpy((g_render_np[c] * t_final[..., None]).sum(axis=(0, 1), dtype=np.float64))
            )
        grads = torch.stack(per_cam).to(colors.device, colors.dtype)  # (C, N, 6 + D)
        g_bg_t = torch.stack(g_bg).to(colors.device, colors.dtype)
        return (grads[..., 0:2], grads[..., 2:5], grads[..., 6:], grads[..., 5], g_bg_t,
                None, None, None, None, None)  # fmt: skip


def composite_tiles(splats: Splats2D) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiled front-to-back compositing; same contract and result as ``composite_reference``.

    Returns:
        colors (C, H, W, D), alphas (C, H, W, 1); differentiable in means2d, conics, colors,
        opacities and backgrounds.
    """
    if not HAVE_NUMBA:  # pragma: no cover
        warnings.warn("numba is not installed: Gaussians use the slow dense reference", stacklevel=2)
        return composite_reference(splats)
    if splats.tile_size <= 0:
        raise ValueError(f"tile_size must be positive, got {splats.tile_size}")
    colors, backgrounds = splats.colors, splats.backgrounds
    if backgrounds is None:
        backgrounds = torch.zeros(colors.shape[0], colors.shape[-1], dtype=colors.dtype, device=colors.device)
    return _TileComposite.apply(
        splats.means2d, splats.conics, colors, splats.opacities, backgrounds, splats.depths, splats.radii,
        int(splats.width), int(splats.height), int(splats.tile_size),
    )  # fmt: skip
