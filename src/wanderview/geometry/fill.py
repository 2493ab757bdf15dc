"""Filling unknown depth from the background side of a hole."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fill_depth_from_background(
    depth: torch.Tensor, holes: torch.Tensor, max_iters: int | None = None
) -> torch.Tensor:
    """Give hole pixels the depth of the farthest known neighbour, grown inward ring by ring.

    A disocclusion reveals what lay *behind* the occluder, so its depth continues the background
    side of the hole, not the foreground side; taking the farthest finite neighbour does exactly
    that and never invents geometry in front of known surfaces.

    Args:
        depth: (1, H, W) z-depth; values under ``holes`` and non-finite values are unknown.
        holes: (1, H, W) bool, True where depth must be filled.
        max_iters: ring-growing iterations (default: until filled, at most H + W).
    Returns:
        (1, H, W) depth with holes filled (pixels no known pixel can reach keep ``inf``).
    """
    if depth.ndim != 3 or depth.shape[0] != 1:
        raise ValueError(f"depth must be (1, H, W), got {tuple(depth.shape)}")
    if holes.shape != depth.shape:
        raise ValueError(f"holes must be {tuple(depth.shape)}, got {tuple(holes.shape)}")
    known = ~holes & torch.isfinite(depth)
    # -1 marks unknown so that max-pooling picks the farthest *known* neighbour
    work = torch.where(known, depth, torch.full_like(depth, -1.0))[None]
    todo = ~known[None]
    iters = max_iters if max_iters is not None else depth.shape[1] + depth.shape[2]
    for _ in range(iters):
        if not bool(todo.any()):
            break
        grown = F.max_pool2d(work, 3, stride=1, padding=1)
        newly = todo & (grown > 0)
        if not bool(newly.any()):
            break
        work = torch.where(newly, grown, work)
        todo = todo & ~newly
    out = work[0]
    return torch.where(out > 0, out, torch.full_like(out, float("inf")))


def foreground_ring(
    depth: torch.Tensor, holes: torch.Tensor, hole_depth: torch.Tensor, width: int = 16, ratio: float = 0.85
) -> torch.Tensor:
    """Pixels next to a hole that lie clearly in front of the surface the hole will get.

    Inpainting a disocclusion from both sides smears the occluder into the background it
    reveals. Hiding these foreground pixels from the inpainter (and pasting them back after)
    makes it draw only from the background side.

    Args:
        depth: (1, H, W) rendered z-depth (inf where empty).
        holes: (1, H, W) bool.
        hole_depth: (1, H, W) depth the holes will get (e.g. from ``fill_depth_from_background``).
        width: how far from a hole (pixels) to look. 16 px: with 5 px the inpainter still reached
            the occluder just beyond the ring (benchmarks/inpaint_quality.py, telea: mean hole PSNR
            15.05 dB at 5 px, 16.36 dB at 16 px over four ground-truth scenes).
        ratio: a pixel is foreground when its depth < ratio x the nearby hole depth.
    Returns:
        (1, H, W) bool, never overlapping ``holes``.
    """
    if not (depth.shape == holes.shape == hole_depth.shape):
        raise ValueError(
            f"shapes differ: {tuple(depth.shape)}, {tuple(holes.shape)}, {tuple(hole_depth.shape)}"
        )
    inside = torch.where(holes & torch.isfinite(hole_depth), hole_depth, torch.zeros_like(hole_depth))
    width = min(int(width), max(depth.shape[-2:]))  # a wider ring covers no more than the image
    k = 2 * width + 1
    # the square window is separable: a row max, then a column max
    nearby = F.max_pool2d(inside[None], (1, k), stride=1, padding=(0, width))
    nearby = F.max_pool2d(nearby, (k, 1), stride=1, padding=(width, 0))[0]
    return ~holes & (nearby > 0) & (depth < ratio * nearby)
