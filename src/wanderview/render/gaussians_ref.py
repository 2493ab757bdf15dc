"""Dense pure-torch Gaussian compositing: the reference the fast paths are tested against.

Every pixel is paired with every Gaussian (memory H·W·N), alphas are masked by the same rules as
the tiled path, and autograd differentiates it. Slow and memory-hungry on purpose: it has no
tiles, no sorting tricks and no hand-written backward, so it can judge the ones that do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4


@dataclass(frozen=True)
class Splats2D:
    """Gaussians projected into C cameras: everything a compositor needs (one contract for both).

    Attributes:
        means2d: (C, N, 2) pixel positions (pixel centres at +0.5).
        conics: (C, N, 3) the (a, b, c) of Σ2D⁻¹.
        colors: (C, N, D) features to composite (RGB, depth, or both).
        opacities: (C, N).
        depths: (C, N) camera z, the compositing order (ties kept in index order).
        radii: (C, N, 2) int 3σ half-extents in pixels (0 = culled).
        width, height: image size in pixels.
        backgrounds: (C, D) colour behind the Gaussians, or None (black).
        tile_size: tile side in pixels (the tiled compositor's; the dense one has no tiles).
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor
    depths: torch.Tensor
    radii: torch.Tensor
    width: int
    height: int
    backgrounds: torch.Tensor | None = None
    tile_size: int = 16


def composite_reference(splats: Splats2D) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back compositing of projected Gaussians, all pairs at once.

    Returns:
        colors (C, H, W, D) and alphas (C, H, W, 1); autograd differentiates them.
    """
    means2d, conics, colors, opacities, depths, radii = (
        splats.means2d, splats.conics, splats.colors, splats.opacities, splats.depths, splats.radii,
    )  # fmt: skip
    width, height, backgrounds = splats.width, splats.height, splats.backgrounds
    outs, alphas = [], []
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means2d.dtype, device=means2d.device) + 0.5,
        torch.arange(width, dtype=means2d.dtype, device=means2d.device) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # (HW, 2)
    for cam in range(means2d.shape[0]):
        order = torch.sort(depths[cam].detach(), stable=True).indices
        rgb, acc = _composite_one(
            means2d[cam, order], conics[cam, order], colors[cam, order], opacities[cam, order],
            radii[cam, order], pix,
        )  # fmt: skip
        if backgrounds is not None:
            rgb = rgb + (1.0 - acc) * backgrounds[cam]
        outs.append(rgb.reshape(height, width, -1))
        alphas.append(acc.reshape(height, width, 1))
    return torch.stack(outs), torch.stack(alphas)


def _composite_one(means2d, conics, colors, opacities, radii, pix):
    """One camera, Gaussians already in depth order. pix: (P, 2) -> (P, D), (P, 1)."""
    d = means2d[None, :, :] - pix[:, None, :]  # (P, N, 2): mean minus pixel centre, as gsplat
    dx, dy = d[..., 0], d[..., 1]
    a, b, c = conics[None, :, 0], conics[None, :, 1], conics[None, :, 2]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = (opacities[None, :] * torch.exp(-sigma)).clamp(max=ALPHA_MAX)
    in_box = (dx.abs() <= radii[None, :, 0]) & (dy.abs() <= radii[None, :, 1]) & (radii[None, :, 0] > 0)
    used = in_box & (sigma >= 0) & (alpha >= ALPHA_MIN)
    alpha = torch.where(used, alpha, torch.zeros_like(alpha))
    # Compositing stops before the Gaussian that would bring transmittance to <= 1e-4; the
    # transmittance only falls, so the kept Gaussians are a prefix of the depth order.
    with torch.no_grad():
        keep = torch.cumprod(1.0 - alpha, dim=1) > T_MIN
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    one_minus = 1.0 - alpha
    trans = torch.cumprod(torch.cat([torch.ones_like(one_minus[:, :1]), one_minus[:, :-1]], dim=1), dim=1)
    weights = alpha * trans  # (P, N)
    return weights @ colors, weights.sum(dim=1, keepdim=True)
