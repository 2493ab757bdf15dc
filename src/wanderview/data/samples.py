"""Real sample data shipped inside installed packages (no downloads).

The Middlebury 2014 "motorcycle" stereo pair from scikit-image, with ground-truth disparity and the
calibration printed in ``skimage.data.stereo_motorcycle``'s docstring (valid for its 4x down-sampled
images). Two facts that docstring leaves easy to get wrong, checked against the data:

- The disparity belongs to the **left** image: ``left[y, x]`` matches ``right[y, x - disp[y, x]]``
  (the docstring's index example reads the other way round; the photometric error of this direction
  is half that of the other). Unknown disparity is ``inf``.
- "Principal point dx" is Middlebury's ``doffs`` = cx_right - cx_left, so the right camera's principal
  point is x = 311.193 + 31.086 px, and z-depth = baseline * f / (disp + doffs).

Middlebury gives pixel coordinates with the centre of the first pixel at 0; wanderview puts it at 0.5,
so both principal points move by +0.5 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wanderview.cameras.camera import Camera

MIDDLEBURY_FOCAL_PX = 994.978
MIDDLEBURY_CX_LEFT = 311.193
MIDDLEBURY_CY = 254.877
MIDDLEBURY_DOFFS_PX = 31.086
MIDDLEBURY_BASELINE_M = 0.193001


@dataclass(frozen=True)
class MiddleburySample:
    """A calibrated, rectified stereo pair with the left view's true depth.

    Attributes:
        left: (3, H, W) float32 left image in [0, 1].
        right: (3, H, W) float32 right image in [0, 1].
        left_depth: (1, H, W) float32 z-depth of the left view in metres, ``inf`` where unknown.
        left_disp: (1, H, W) float32 left-view disparity in pixels, ``inf`` where unknown.
        left_camera: Camera at the world origin (identity pose).
        right_camera: Camera translated by the baseline along +x, same orientation.
    """

    left: torch.Tensor
    right: torch.Tensor
    left_depth: torch.Tensor
    left_disp: torch.Tensor
    left_camera: Camera
    right_camera: Camera


def middlebury_pair() -> MiddleburySample:
    """The Middlebury motorcycle pair (741 x 500) from ``skimage.data.stereo_motorcycle()``.

    Returns:
        MiddleburySample with images (3, 500, 741), depth (1, 500, 741) in metres and both cameras.
    """
    from skimage.data import stereo_motorcycle

    left_u8, right_u8, disp = stereo_motorcycle()
    H, W = disp.shape
    left = torch.from_numpy(np.ascontiguousarray(left_u8)).permute(2, 0, 1).float() / 255.0
    right = torch.from_numpy(np.ascontiguousarray(right_u8)).permute(2, 0, 1).float() / 255.0
    disp_t = torch.from_numpy(np.asarray(disp, dtype=np.float32))[None]
    known = torch.isfinite(disp_t)
    depth = torch.full_like(disp_t, float("inf"))
    depth[known] = MIDDLEBURY_BASELINE_M * MIDDLEBURY_FOCAL_PX / (disp_t[known] + MIDDLEBURY_DOFFS_PX)
    disp_t = torch.where(known, disp_t, torch.full_like(disp_t, float("inf")))

    def intrinsics(cx: float) -> torch.Tensor:
        f = MIDDLEBURY_FOCAL_PX
        return torch.tensor([[f, 0.0, cx + 0.5], [0.0, f, MIDDLEBURY_CY + 0.5], [0.0, 0.0, 1.0]])

    right_pose = torch.eye(4)
    right_pose[0, 3] = MIDDLEBURY_BASELINE_M
    left_camera = Camera(intrinsics(MIDDLEBURY_CX_LEFT), torch.eye(4), W, H)
    right_camera = Camera(intrinsics(MIDDLEBURY_CX_LEFT + MIDDLEBURY_DOFFS_PX), right_pose, W, H)
    return MiddleburySample(left, right, depth, disp_t, left_camera, right_camera)
