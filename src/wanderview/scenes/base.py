"""What every growing scene shares: start empty, lift a first RGBD frame, add more frames."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import torch

from wanderview.cameras.camera import Camera
from wanderview.types import RenderOutput


class GrowingScene(ABC):
    """Base of MeshScene and PointScene: subclasses define ``empty``, ``add`` and ``render``."""

    @classmethod
    @abstractmethod
    def empty(cls, device=None, **options) -> Self:
        """A scene with no content."""

    @abstractmethod
    def add(
        self, rgb: torch.Tensor, depth: torch.Tensor, camera: Camera, mask: torch.Tensor | None = None
    ) -> int:
        """Fuse the pixels of a frame where ``mask`` (1, H, W) is True; returns how much was added."""

    @abstractmethod
    def render(self, camera: Camera) -> RenderOutput:
        """Render into a single camera; holes have alpha 0."""

    @classmethod
    def from_rgbd(
        cls,
        rgb: torch.Tensor,
        depth: torch.Tensor,
        camera: Camera,
        mask: torch.Tensor | None = None,
        **options,
    ) -> Self:
        """Lift an RGBD frame: rgb (3, H, W), depth (1, H, W), mask (1, H, W) bool of pixels to use."""
        scene = cls.empty(device=rgb.device, **options)
        scene.add(rgb, depth, camera, mask)
        return scene
