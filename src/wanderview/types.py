"""Small frozen dataclasses shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RenderOutput:
    """What every renderer and every scene returns.

    Attributes:
        rgb: (3, H, W) float colour in [0, 1]; 0 where nothing was rendered.
        depth: (1, H, W) float z-depth in the camera frame; ``inf`` where nothing was rendered.
        alpha: (1, H, W) float coverage in [0, 1]; 0 = empty (a hole), 1 = fully covered.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[0] != 3:
            raise ValueError(f"rgb must be (3, H, W), got {tuple(self.rgb.shape)}")
        hw = self.rgb.shape[1:]
        for name in ("depth", "alpha"):
            t = getattr(self, name)
            if t.shape != (1, *hw):
                raise ValueError(f"{name} must be (1, {hw[0]}, {hw[1]}), got {tuple(t.shape)}")

    @property
    def holes(self) -> torch.Tensor:
        """(1, H, W) bool: pixels with less than half coverage."""
        return self.alpha < 0.5


@dataclass(frozen=True)
class RGBD:
    """An image with its z-depth. rgb: (3, H, W) in [0, 1]; depth: (1, H, W) > 0 (inf = unknown)."""

    rgb: torch.Tensor
    depth: torch.Tensor
