"""Embedded backends that need no downloads: user-given depth and classical inpainting.

Inpainters here are honest about what they are: ``none`` is a declared no-op (holes stay as they
are and the run's masks record them), ``telea`` and ``ns`` are OpenCV's diffusion-style fills
(smooth, blurry in large holes), ``patchmatch`` copies patches from the known part of the image
(pypatchmatch). None of them know anything about the scene beyond the pixels they are given.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from wanderview.backends.protocols import check_image, check_mask
from wanderview.errors import BackendError, InputError
from wanderview.geometry.masks import erode


class FileDepth:
    """Depth supplied by the user (a tensor or a file), returned for the image it belongs to.

    The depth map must have the image's size, the same rule as ``wanderview.io.depth.read_depth``
    with ``size=``: resampling depth invents values at edges and misaligns it by the rounding of
    the size, so a map of another size is refused rather than silently resized.
    """

    output = "depth"
    module = None
    description = "depth supplied by the user (--depth FILE)"
    is_weak_default = False

    def __init__(self, depth: torch.Tensor | None = None, path: str | None = None, kind: str = "depth"):
        """depth: (1,H,W) z-depth, or path to a depth file read by ``wanderview.io.depth.read_depth``."""
        if depth is None and not path:
            raise InputError("the 'file' depth model needs a depth map: pass --depth FILE")
        if depth is not None and (depth.ndim != 3 or depth.shape[0] != 1):
            raise ValueError(f"depth must be (1,H,W), got {tuple(depth.shape)}")
        self._depth = depth
        self._path = path
        self._kind = kind

    def _load(self) -> torch.Tensor:
        if self._depth is None:
            from wanderview.io.depth import read_depth

            self._depth, _valid = read_depth(self._path, kind=self._kind)
        return self._depth

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """image: (3,H,W) -> the user's depth as (1,H,W) float32 on the image's device."""
        check_image(image)
        depth = self._load().to(device=image.device, dtype=torch.float32)
        height, width = image.shape[1:]
        if depth.shape[1:] != (height, width):
            dh, dw = depth.shape[1:]
            raise InputError(
                f"the depth map is {dw}x{dh} but the image is {width}x{height}; give depth of its size"
            )
        return depth


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) in [0,1] -> (H,W,3) uint8 RGB."""
    return (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def _from_uint8(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32) / 255.0).permute(2, 0, 1).to(like)


def paste_known(filled: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep ``image`` where mask is False, ``filled`` where True. (3,H,W), (3,H,W), (1,H,W) bool."""
    return torch.where(mask, filled.to(image), image)


class NoInpainter:
    """Declared no-op: returns the image unchanged, holes untouched."""

    description = "no inpainting: holes stay empty (recorded in masks/)"
    is_weak_default = True

    def inpaint(self, image, mask, prompt="", negative_prompt=None, seed=0) -> torch.Tensor:
        """image: (3,H,W); mask: (1,H,W) bool -> a copy of image."""
        check_image(image)
        check_mask(mask, image)
        return image.clone()


class OpenCVInpainter:
    """OpenCV ``cv2.inpaint`` with the Telea (fast marching) or Navier-Stokes method."""

    is_weak_default = True

    def __init__(self, method: str = "telea", radius: int = 5):
        if method not in ("telea", "ns"):
            raise BackendError(f"unknown OpenCV inpainting method {method!r}; use 'telea' or 'ns'")
        self.method = method
        self.radius = int(radius)
        name = "Telea fast marching" if method == "telea" else "Navier-Stokes"
        self.description = (
            f"OpenCV {name} inpainting (smooth fill, no new detail; weak stand-in for diffusion)"
        )

    def inpaint(self, image, mask, prompt="", negative_prompt=None, seed=0) -> torch.Tensor:
        """image: (3,H,W) in [0,1]; mask: (1,H,W) bool, True = fill -> (3,H,W); known pixels exact."""
        check_image(image)
        check_mask(mask, image)
        if not bool(mask.any()):
            return image.clone()
        if bool(mask.all()):
            return _all_holes(image)
        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        hole = mask[0].cpu().numpy().astype(np.uint8) * 255
        filled = cv2.inpaint(_to_uint8(image), hole, self.radius, flag)
        return paste_known(_from_uint8(filled, image), image, mask)


class PatchMatchInpainter:
    """PatchMatch exemplar inpainting (pypatchmatch): copies texture from the known pixels."""

    description = "PatchMatch exemplar inpainting (copies existing texture; weak stand-in for diffusion)"
    is_weak_default = True

    def __init__(self, patch_size: int = 3):
        try:
            import patchmatch
        except ImportError as err:  # pragma: no cover - pypatchmatch is a core dependency
            raise BackendError(
                "the 'patchmatch' inpainter needs pypatchmatch: pip install pypatchmatch"
            ) from err
        if not patchmatch.patchmatch_available:  # pragma: no cover - depends on the wheel
            raise BackendError("pypatchmatch is installed but its compiled library could not be loaded")
        self._patchmatch = patchmatch
        self.patch_size = int(patch_size)

    def inpaint(self, image, mask, prompt="", negative_prompt=None, seed=0, exclude=None) -> torch.Tensor:
        """image: (3,H,W) in [0,1]; mask: (1,H,W) bool, True = fill -> (3,H,W); seeded, known pixels exact.

        ``exclude``: optional (1,H,W) bool of known pixels that no copied patch may contain (pypatchmatch's
        ``global_mask``); ignored when the source it leaves cannot hold one whole patch.
        """
        check_image(image)
        check_mask(mask, image)
        if not bool(mask.any()):
            return image.clone()
        if bool(mask.all()):
            return _all_holes(image)
        self._patchmatch.set_random_seed(int(seed))
        hole = mask[0].cpu().numpy().astype(np.uint8) * 255
        options = {"patch_size": self.patch_size}
        if exclude is not None:
            check_mask(exclude, image)
            exclude = exclude & ~mask
            # PatchMatch needs whole patches to copy: with less source left than one patch it
            # fills black, so the exclusion is dropped then
            r = self.patch_size + 1  # patches are (2 patch_size + 1)^2 and must lie inside the image
            source = F.pad((~mask & ~exclude).float(), (r, r, r, r)) > 0.5
            if bool(erode(source, 2 * r + 1).any()):
                options["global_mask"] = exclude[0].cpu().numpy().astype(np.uint8) * 255
        filled = self._patchmatch.inpaint(_to_uint8(image), hole, **options)
        return paste_known(_from_uint8(np.ascontiguousarray(filled), image), image, mask)


def _all_holes(image: torch.Tensor) -> torch.Tensor:
    """Every pixel is a hole: nothing to copy from, so the classical fills return flat grey 0.5."""
    return torch.full_like(image, 0.5)
