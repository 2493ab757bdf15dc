"""Binary morphology on bool masks with square kernels (max-pooling, torch only).

Border rule: the square window is clipped to the image, i.e. pixels outside the image are
ignored rather than counted as False. So ``erode`` does not eat a mask that touches the image
border, ``dilate`` does not grow from outside, and the two stay exact duals:
``dilate(m) == ~erode(~m)``. With the clipped window the pair is still an adjunction, so
``open_mask`` is idempotent and anti-extensive and ``close_mask`` idempotent and extensive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(mask: torch.Tensor, kernel_size: int) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    if mask.ndim not in (2, 3) or (mask.ndim == 3 and mask.shape[0] != 1):
        raise ValueError(f"mask must be (1, H, W) or (H, W), got {tuple(mask.shape)}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")


def dilate(mask: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """Grow True regions by ``kernel_size // 2`` pixels (square window).

    Args:
        mask: (1, H, W) or (H, W) bool.
        kernel_size: odd side of the square window.
    Returns:
        bool mask of the same shape.

    Example:
        >>> m = torch.zeros(1, 5, 5, dtype=torch.bool); m[0, 2, 2] = True
        >>> int(dilate(m).sum())
        9
    """
    _check(mask, kernel_size)
    if kernel_size == 1:
        return mask.clone()
    # a window wider than the image grows a region no further than one of the image's size
    radius = min(kernel_size // 2, max(mask.shape[-2:]))
    k = 2 * radius + 1
    x = mask.reshape(1, 1, *mask.shape[-2:]).to(torch.float32)
    # the square window is separable: a row max then a column max (2k reads per pixel, not k^2);
    # max_pool2d pads with -inf, which is exactly "outside the image is ignored"
    x = F.max_pool2d(x, (1, k), stride=1, padding=(0, radius))
    out = F.max_pool2d(x, (k, 1), stride=1, padding=(radius, 0)) > 0.5
    return out.reshape(mask.shape)


def erode(mask: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """Shrink True regions by ``kernel_size // 2`` pixels; the image border does not erode.

    Args:
        mask: (1, H, W) or (H, W) bool.
        kernel_size: odd side of the square window.
    Returns:
        bool mask of the same shape.
    """
    return ~dilate(~mask, kernel_size)


def open_mask(mask: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """Opening (erode then dilate): removes True specks smaller than the kernel.

    Args:
        mask: (1, H, W) or (H, W) bool.
    Returns:
        bool mask of the same shape, a subset of ``mask``.
    """
    return dilate(erode(mask, kernel_size), kernel_size)


def close_mask(mask: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """Closing (dilate then erode): fills False gaps smaller than the kernel.

    Args:
        mask: (1, H, W) or (H, W) bool.
    Returns:
        bool mask of the same shape, a superset of ``mask``.
    """
    return erode(dilate(mask, kernel_size), kernel_size)
