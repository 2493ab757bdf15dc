"""Align a relative depth or disparity prediction to a reference depth (scale and shift)."""

from __future__ import annotations

import torch

# Disparity after alignment never goes below this fraction of the smallest reference disparity
# used in the fit: an affine fit may extrapolate to zero or negative disparity in regions the
# reference did not cover, which would mean infinite or negative depth. The floor caps those
# pixels at 100x the farthest reference depth.
DISP_FLOOR_RATIO = 0.01


def _check_map(name: str, t: torch.Tensor) -> None:
    if t.ndim != 3 or t.shape[0] != 1:
        raise ValueError(f"{name} must be (1, H, W), got {tuple(t.shape)}")


def fit_scale_shift(
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form least squares of ``y ≈ scale * x + shift`` over the masked pixels.

    Pixels where ``x`` or ``y`` is not finite are left out even if ``mask`` is True. The sums
    run in float64 so large images do not lose precision.

    Args:
        x: (...) values to map, any shape.
        y: (...) targets, same shape as ``x``.
        mask: (...) bool, same shape; True = use this pixel.
    Returns:
        scale, shift: 0-d tensors in the dtype and device of ``x``.
    Raises:
        ValueError: shapes differ, fewer than 2 usable pixels, or ``x`` is constant on them.

    Example:
        >>> x = torch.tensor([1.0, 2.0, 3.0]); m = torch.ones(3, dtype=torch.bool)
        >>> [round(float(v), 6) for v in fit_scale_shift(x, 2 * x + 1, m)]
        [2.0, 1.0]
    """
    if x.shape != y.shape or x.shape != mask.shape:
        raise ValueError(
            f"x, y and mask must share a shape, got {tuple(x.shape)}, {tuple(y.shape)}, {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    use = mask & torch.isfinite(x) & torch.isfinite(y)
    n = int(use.sum())
    if n < 2:
        raise ValueError(f"need at least 2 valid pixels to fit scale and shift, got {n}")
    xs, ys = x[use].double(), y[use].double()
    x_mean, y_mean = xs.mean(), ys.mean()
    dx = xs - x_mean
    var_x = (dx * dx).sum()
    if var_x <= 1e-12 * max(float((xs * xs).sum()), 1e-300):
        raise ValueError("cannot fit scale and shift: x is constant on the masked pixels")
    scale = (dx * (ys - y_mean)).sum() / var_x
    shift = y_mean - scale * x_mean
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return scale.to(dtype), shift.to(dtype)


def _reference_disp(ref_depth: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1,H,W) reference disparity and the mask of pixels where it is usable."""
    usable = mask & torch.isfinite(ref_depth) & (ref_depth > 0)
    ref_disp = torch.where(usable, 1.0 / torch.where(usable, ref_depth, torch.ones_like(ref_depth)), 0.0)
    return ref_disp, usable


def align_disparity(pred_disp: torch.Tensor, ref_depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Depth from a relative disparity map, affinely aligned to a reference depth.

    Fits ``1 / ref_depth ≈ scale * pred_disp + shift`` on the masked pixels (where the reference
    is finite and positive), then returns ``1 / clamp(scale * pred_disp + shift, floor)``. The
    floor is ``DISP_FLOOR_RATIO`` (1 %) of the smallest reference disparity in the fit, so no
    pixel is placed farther than 100x the farthest reference depth and depth stays positive.
    This is the alignment for backends (MiDaS, Depth Anything) that output relative disparity.

    Args:
        pred_disp: (1, H, W) relative disparity (any scale and shift).
        ref_depth: (1, H, W) z-depth, ``inf`` where unknown.
        mask: (1, H, W) bool, True = use this pixel in the fit.
    Returns:
        (1, H, W) positive depth in the reference's units, dtype of ``pred_disp``.
    """
    for name, t in (("pred_disp", pred_disp), ("ref_depth", ref_depth), ("mask", mask)):
        _check_map(name, t)
    ref_disp, usable = _reference_disp(ref_depth, mask)
    scale, shift = fit_scale_shift(pred_disp, ref_disp, usable)
    floor = DISP_FLOOR_RATIO * ref_disp[usable].min().to(pred_disp.dtype)
    aligned_disp = (scale * pred_disp + shift).clamp_min(floor)
    return 1.0 / aligned_disp


def align_depth(
    pred_depth: torch.Tensor, ref_depth: torch.Tensor, mask: torch.Tensor, space: str = "disparity"
) -> torch.Tensor:
    """Align a predicted depth map to a reference depth with one scale and one shift.

    ``space="disparity"`` fits in 1/depth (what monocular networks are accurate in; far pixels
    weigh less), ``space="depth"`` fits depth directly. Either way the result is kept positive:
    disparity is clamped to 1 % of the smallest reference disparity (see :func:`align_disparity`);
    in depth space the depth is clamped to 1 % of the smallest reference depth. Pixels whose
    predicted depth is ``inf`` (empty, sky) stay ``inf``.

    Args:
        pred_depth: (1, H, W) predicted z-depth (> 0, ``inf`` = empty).
        ref_depth: (1, H, W) reference z-depth, ``inf`` where unknown.
        mask: (1, H, W) bool, True = use this pixel in the fit.
        space: "disparity" or "depth".
    Returns:
        (1, H, W) aligned depth, dtype of ``pred_depth``.
    """
    for name, t in (("pred_depth", pred_depth), ("ref_depth", ref_depth), ("mask", mask)):
        _check_map(name, t)
    pred_empty = ~torch.isfinite(pred_depth)
    if space == "disparity":
        pred_disp = 1.0 / pred_depth.clamp_min(1e-12)
        aligned = align_disparity(pred_disp, ref_depth, mask & ~pred_empty)
    elif space == "depth":
        usable = mask & torch.isfinite(ref_depth) & (ref_depth > 0) & ~pred_empty
        scale, shift = fit_scale_shift(pred_depth, ref_depth, usable)
        floor = DISP_FLOOR_RATIO * ref_depth[usable].min().to(pred_depth.dtype)
        aligned = (scale * pred_depth + shift).clamp_min(floor)
    else:
        raise ValueError(f'space must be "disparity" or "depth", got {space!r}')
    return torch.where(pred_empty, torch.full_like(aligned, float("inf")), aligned)
