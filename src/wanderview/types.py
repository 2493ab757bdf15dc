"""Small frozen dataclasses shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RenderOutput:
    """What every renderer and every scene returns.

    Colour is **straight, not premultiplied by alpha**: ``rgb`` is the mean colour of the *covered*
    part of each pixel, so an edge pixel that is 40 % covered shows the surface's own colour, not a
    darkened one. Where nothing was rendered (alpha 0) rgb is 0. With one sample per pixel alpha is 0
    or 1 and both conventions coincide. Compositing over a background ``bg`` is
    ``rgb * alpha + bg * (1 - alpha)`` (:attr:`premultiplied` is the first term).

    Attributes:
        rgb: (3, H, W) float straight colour in [0, 1]; 0 where nothing was rendered.
        depth: (1, H, W) float z-depth in the camera frame; ``inf`` where nothing was rendered. Never an
            average across a depth discontinuity: a supersampled renderer gives the nearest covered
            sample there.
        alpha: (1, H, W) float coverage in [0, 1]; 0 = empty (a hole), 1 = fully covered.
        face_id: optional (H, W) long, the mesh face seen at each pixel (-1 where none); meshes only.
        observed: optional (1, H, W) float in [0, 1], the share of each pixel showing content that
            was observed (the input image) rather than invented (0 where empty).
        features: optional (C, H, W) float, extra per-pixel channels a renderer was asked for (straight,
            like rgb; 0 where empty).
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor
    face_id: torch.Tensor | None = None
    observed: torch.Tensor | None = None
    features: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[0] != 3:
            raise ValueError(f"rgb must be (3, H, W), got {tuple(self.rgb.shape)}")
        hw = tuple(self.rgb.shape[1:])
        for name in ("depth", "alpha", "observed"):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != (1, *hw):
                raise ValueError(f"{name} must be (1, {hw[0]}, {hw[1]}), got {tuple(t.shape)}")
        if self.face_id is not None and tuple(self.face_id.shape) != hw:
            raise ValueError(f"face_id must be ({hw[0]}, {hw[1]}), got {tuple(self.face_id.shape)}")
        if self.features is not None and (self.features.ndim != 3 or tuple(self.features.shape[1:]) != hw):
            raise ValueError(f"features must be (C, {hw[0]}, {hw[1]}), got {tuple(self.features.shape)}")

    @property
    def holes(self) -> torch.Tensor:
        """(1, H, W) bool: pixels with less than half coverage."""
        return self.alpha < 0.5

    @property
    def premultiplied(self) -> torch.Tensor:
        """(3, H, W) colour premultiplied by coverage, ``rgb * alpha``."""
        return self.rgb * self.alpha


@dataclass(frozen=True)
class RGBD:
    """An image with its z-depth. rgb: (3, H, W) in [0, 1]; depth: (1, H, W) > 0 (inf = unknown)."""

    rgb: torch.Tensor
    depth: torch.Tensor
