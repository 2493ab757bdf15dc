"""Fidelity metrics against ground-truth views: PSNR, SSIM (optionally on a pixel mask), LPIPS status.

Sources:
- PSNR: ``10 log10(peak^2 / MSE)`` with peak 1 for images in [0, 1] (same as
  ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``).
- SSIM: Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
  structural similarity", IEEE TIP 2004 — 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
  K2 = 0.03, population (not sample) covariances, averaged over the positions where the whole
  window lies inside the image, then over channels. This equals
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=0)``.
- LPIPS (Zhang et al., CVPR 2018) needs pretrained backbone weights that cannot be downloaded
  here; :func:`lpips_status` reports that honestly instead of a made-up number.

Masked variants average only over the pixels where a (1, H, W) bool mask is True; the run folder's
``masks/`` mark the disoccluded pixels of each frame, so ``psnr(..., mask=holes)`` measures the
quality of the inpainted content alone.
"""

from __future__ import annotations

import math

import torch

LPIPS_UNAVAILABLE = "n/a: weights not available"

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # skimage: int(truncate * sigma + 0.5) with truncate = 3.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def _check_pair(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> None:
    if pred.ndim != 3 or pred.shape[0] not in (1, 3):
        raise ValueError(f"images must be (3, H, W) or (1, H, W), got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"target must have the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}")
    if mask is not None and mask.shape != (1, *pred.shape[1:]):
        raise ValueError(f"mask must be (1, {pred.shape[1]}, {pred.shape[2]}), got {tuple(mask.shape)}")


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1].

    Args:
        pred: (C, H, W) image, C in {1, 3}.
        target: (C, H, W) reference image.
        mask: optional (1, H, W) bool; only pixels where it is True count.
    Returns:
        PSNR in dB; ``inf`` for identical images, ``nan`` when the mask selects no pixel.
    """
    _check_pair(pred, target, mask)
    sq_err = (pred.double() - target.double()) ** 2
    if mask is None:
        mse = sq_err.mean()
    else:
        weights = mask.to(sq_err.dtype).expand_as(sq_err)
        if weights.sum() == 0:
            return math.nan
        mse = (sq_err * weights).sum() / weights.sum()
    if mse == 0:
        return math.inf
    return float(10.0 * torch.log10(1.0 / mse))


def squared_error(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[float, int]:
    """Sum of squared errors and the number of values summed, for pooling MSE over frames.

    Args:
        pred, target: (C, H, W) images in [0, 1]; mask: optional (1, H, W) bool (True = counts).
    Returns:
        (sum of (pred - target)^2 over the counted values, count of values = C x counted pixels).
    """
    _check_pair(pred, target, mask)
    sq_err = (pred.double() - target.double()) ** 2
    if mask is None:
        return float(sq_err.sum()), sq_err.numel()
    weights = mask.to(sq_err.dtype).expand_as(sq_err)
    return float((sq_err * weights).sum()), int(weights.sum())


def psnr_of_mse(mse: float) -> float:
    """``10 log10(1 / mse)`` in dB; ``inf`` for 0, ``nan`` for nan (nothing counted)."""
    if math.isnan(mse):
        return math.nan
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    offsets = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (offsets / _SSIM_SIGMA) ** 2)
    g = g / g.sum()
    return g


def ssim_map(pred: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al. 2004) on the positions where the 11x11 window fits.

    Args:
        pred: (C, H, W) image in [0, 1].
        target: (C, H, W) reference image in [0, 1].
        dtype: compute precision; float64 for metrics, float32 is ~10x faster as a training loss.
    Returns:
        (C, H - 10, W - 10) SSIM values; entry (c, i, j) belongs to pixel (i + 5, j + 5).
    """
    _check_pair(pred, target, None)
    C, H, W = pred.shape
    win = 2 * _SSIM_RADIUS + 1
    if H < win or W < win:
        raise ValueError(f"SSIM needs images of at least {win}x{win} pixels, got {tuple(pred.shape)}")
    x = pred.to(dtype).unsqueeze(1)  # (C, 1, H, W): channels filtered independently
    y = target.to(dtype).unsqueeze(1)
    g = _gaussian_window(x.dtype, x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        # separable Gaussian, "valid" positions only (the border crop skimage applies); as sums of
        # shifted slices, because conv2d with a 1x11 kernel takes a slow path on the CPU (and its
        # backward is slower still, which matters when SSIM is a training loss)
        h, w = t.shape[-2] - win + 1, t.shape[-1] - win + 1
        t = sum(g[i] * t[..., :, i : i + w] for i in range(win))
        return sum(g[i] * t[..., i : i + h, :] for i in range(win))

    # one blur of the five stacked maps: fewer ops, which is what a training loss pays for
    mu_x, mu_y, e_xx, e_yy, e_xy = blur(torch.stack([x, y, x * x, y * y, x * y])).unbind(0)
    var_x = e_xx - mu_x**2
    var_y = e_yy - mu_y**2
    cov_xy = e_xy - mu_x * mu_y
    c1, c2 = _SSIM_K1**2, _SSIM_K2**2  # data range is 1
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).squeeze(1).to(pred.dtype)


def ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean SSIM (Wang et al. 2004), see :func:`ssim_map`.

    Args:
        pred: (C, H, W) image in [0, 1], H and W at least 11.
        target: (C, H, W) reference image.
        mask: optional (1, H, W) bool; the SSIM map is averaged over True pixels only (pixels
            within 5 px of the border have no full window and never count).
    Returns:
        SSIM in [-1, 1]; ``nan`` when the mask selects no pixel with a full window.
    """
    _check_pair(pred, target, mask)
    values = ssim_map(pred, target).double()
    if mask is None:
        return float(values.mean())
    r = _SSIM_RADIUS
    inner = mask[:, r : mask.shape[1] - r, r : mask.shape[2] - r].to(values.dtype).expand_as(values)
    if inner.sum() == 0:
        return math.nan
    return float((values * inner).sum() / inner.sum())


def lpips_status() -> str:
    """What the LPIPS column holds on this installation.

    LPIPS needs an ImageNet backbone plus the LPIPS linear heads; neither ships with wanderview and
    nothing is downloaded at run time, so the column states that instead of inventing a value.
    """
    return LPIPS_UNAVAILABLE
