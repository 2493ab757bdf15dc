"""The ``heuristic`` depth prior: a weak, documented stand-in for a monocular depth model.

It assumes an outdoor-like photo taken by a camera looking roughly horizontally:

1. **Ground plane.** Below the horizon row ``v_h`` (``horizon`` x H from the top), pixels lie on
   a flat ground, so z-depth = ``near * (H - v_h) / (v + 0.5 - v_h)``: the bottom row is at
   ``near`` and depth grows towards the horizon, capped at ``far``.
2. **Sky far.** Above the horizon, smooth bright or bluish pixels connected to the top edge are
   sky and get ``far``.
3. **Backdrop.** Other pixels above the horizon (trees, buildings) stand as a backdrop at the depth
   of the ground just below the horizon (``backdrop`` x far at most).
4. **Edge-aware refinement.** The disparity (1/depth) is smoothed by a guided filter whose guide
   is the grey image, so depth changes follow image edges instead of the prior's straight rows.

It knows nothing about objects, so any real depth model (``--depth-model hf:...``) or a user
depth map (``--depth FILE``) is better. ``is_weak_default`` is True so run manifests say so.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from wanderview.backends.protocols import check_image


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window with replicate padding. x: (1,H,W).

    Separable (a row mean, then a column mean): 2(2r+1) reads per pixel instead of (2r+1)^2, which
    made the guided filter the slowest step of a CPU SceneScape frame at the usual radii.
    """
    k = 2 * radius + 1
    padded = F.pad(x[None], (radius,) * 4, mode="replicate")
    return F.avg_pool2d(F.avg_pool2d(padded, (1, k), stride=1), (k, 1), stride=1)[0]


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter with a grey guide. guide, src: (1,H,W) -> (1,H,W)."""
    mean_g, mean_s = _box(guide, radius), _box(src, radius)
    cov = _box(guide * src, radius) - mean_g * mean_s
    var = _box(guide * guide, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    return _box(a, radius) * guide + _box(b, radius)


def sky_mask(image: torch.Tensor, horizon_row: int) -> torch.Tensor:
    """Smooth, bright or bluish pixels above the horizon that connect to the top edge.

    image: (3,H,W) in [0,1] -> (1,H,W) bool.
    """
    rgb = image.detach().float().cpu()
    r, b = rgb[0], rgb[2]
    grey = rgb.mean(0)
    gy, gx = torch.gradient(grey)
    smooth = (gx.abs() + gy.abs()) < 0.04
    bluish = (b > r + 0.03) & (b > 0.35)
    bright = grey > 0.75
    candidate = (smooth & (bluish | bright)).numpy().astype(np.uint8)
    candidate[max(horizon_row, 0) :] = 0
    _count, labels = cv2.connectedComponents(candidate, connectivity=4)
    top_labels = np.unique(labels[0][candidate[0] > 0])
    sky = np.isin(labels, top_labels[top_labels > 0])
    return torch.from_numpy(sky)[None].to(image.device)


class HeuristicDepth:
    """Ground plane rising to a horizon, sky far, backdrop between, refined along image edges."""

    output = "depth"
    module = None
    description = "heuristic depth prior (ground plane + sky + backdrop; weak stand-in for a depth model)"
    is_weak_default = True

    def __init__(self, horizon: float = 0.5, near: float = 1.0, far: float = 20.0, backdrop: float = 0.5):
        if not 0.0 < horizon < 1.0:
            raise ValueError(f"horizon must be a fraction of the height in (0, 1), got {horizon}")
        if not 0 < near < far:
            raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
        self.horizon, self.near, self.far, self.backdrop = (
            float(horizon),
            float(near),
            float(far),
            float(backdrop),
        )

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """image: (3,H,W) in [0,1] -> (1,H,W) float32 z-depth in [near, far]."""
        check_image(image)
        height, width = image.shape[1:]
        horizon_row = int(round(self.horizon * height))
        rows = torch.arange(height, dtype=torch.float32) + 0.5
        below = rows - horizon_row
        ground = torch.where(
            below > 0,
            self.near * (height - horizon_row) / below.clamp_min(1e-6),
            torch.full_like(rows, self.far),
        ).clamp(self.near, self.far)
        # The backdrop stands where the ground meets the horizon band, never farther than backdrop*far.
        band_row = min(height - 1, horizon_row + max(1, height // 20))
        backdrop_depth = min(float(ground[band_row]), self.backdrop * self.far)
        depth = ground[:, None].expand(height, width).clone()
        depth[:horizon_row] = backdrop_depth
        sky = sky_mask(image, horizon_row)[0].cpu()
        depth[sky] = self.far

        # Refine in disparity, where near structure dominates, guided by the image's own edges.
        grey = image.detach().float().cpu().mean(0, keepdim=True)
        radius = max(2, min(height, width) // 32)
        disp = guided_filter(grey, 1.0 / depth[None], radius, eps=1e-3)
        disp = disp.clamp(1.0 / self.far, 1.0 / self.near)
        return (1.0 / disp).to(device=image.device, dtype=torch.float32)
