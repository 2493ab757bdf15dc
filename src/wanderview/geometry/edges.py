"""Depth discontinuities: where a depth map jumps from one surface to another."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _sobel_magnitude(image: torch.Tensor) -> torch.Tensor:
    """(1, H, W) -> (1, H, W) unnormalised Sobel gradient magnitude, replicate-padded borders.

    Replicate padding keeps the image border from looking like a step down to zero.
    """
    gx = torch.tensor(
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=image.device, dtype=image.dtype
    )
    kernels = torch.stack([gx, gx.T]).unsqueeze(1)  # (2, 1, 3, 3): d/du, d/dv
    padded = F.pad(image.unsqueeze(0), (1, 1, 1, 1), mode="replicate")
    grad = F.conv2d(padded, kernels)[0]  # (2, H, W)
    return grad.pow(2).sum(0, keepdim=True).sqrt()


def normalized_disparity(depth: torch.Tensor) -> torch.Tensor:
    """Disparity 1/depth rescaled to [0, 1] over the image.

    Pixels without a finite positive depth get disparity 0 before the rescale, so they sit at the
    far end of the range (a surface next to empty sky is a discontinuity). A constant image maps to 0.

    Args:
        depth: (1, H, W) z-depth, ``inf`` = empty.
    Returns:
        (1, H, W) disparity in [0, 1], same dtype and device.
    """
    if depth.ndim != 3 or depth.shape[0] != 1:
        raise ValueError(f"depth must be (1, H, W), got {tuple(depth.shape)}")
    if not depth.is_floating_point():
        depth = depth.float()
    valid = torch.isfinite(depth) & (depth > 0)
    safe = torch.where(valid, depth, torch.ones_like(depth))
    disp = torch.where(valid, 1.0 / safe, torch.zeros_like(depth))
    low, high = disp.min(), disp.max()
    span = high - low
    if span <= 0:
        return torch.zeros_like(disp)
    return (disp - low) / span


def depth_edges(depth: torch.Tensor, threshold: float = 0.3) -> torch.Tensor:
    """Pixels on a depth discontinuity.

    The Sobel magnitude (unnormalised 3x3 kernels, weights 1-2-1) of :func:`normalized_disparity`
    is compared with ``threshold``. A step of height ``h`` in normalised disparity gives a magnitude
    of ``4 h`` on the pixels either side of it, so the default 0.3 fires on steps larger than 7.5 %
    of the disparity range; a smooth ramp across a W-pixel image gives about ``8 / W`` and does not.

    Args:
        depth: (1, H, W) z-depth, ``inf`` = empty.
        threshold: magnitude above which a pixel is an edge.
    Returns:
        (1, H, W) bool, True on edges.

    Example:
        >>> d = torch.full((1, 8, 8), 2.0); d[:, :, 4:] = 8.0
        >>> depth_edges(d)[0, 0].tolist()
        [False, False, False, True, True, False, False, False]
    """
    disp = normalized_disparity(depth)
    return _sobel_magnitude(disp) > threshold
