"""How far a video's camera turns: a cheap view-coverage estimate from two-view geometry (OpenCV).

fourreal extends its generated freeze-time video clip by clip until the views cover ``--coverage``
degrees; running SfM after every clip would cost minutes, so each clip is measured with two-view
geometry instead: SIFT matches between consecutive frames (frames under 400 px are upsampled 2x
first: the detector finds too few keypoints in a 128x96 frame), the essential matrix with the known
intrinsics (least median of squares, which was the steadiest of OpenCV's robust estimators on the
procedural orbit) and ``cv2.recoverPose`` give the relative rotation, and the rotations are chained
from the first frame. The coverage is the largest angle between the optical axes of any two frames
(for an orbit around a point: the orbit's angle).

A frame pair with too few matches, or whose matched points hardly move (the essential matrix is
degenerate without translation), counts as no rotation: the estimate errs low, so a video is never
extended less than asked because of a bad pair. Measured on the procedural sliding-box orbit
(128x96, smooth noise textures on planes, which is hard for two-view geometry): 56 degrees for the
true 59, 32 for 39 and 78 for 88 (tests/test_fourreal_generate.py checks the first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

MIN_MATCHES = 16
"""Fewer matches (or RANSAC inliers) than this: the pair counts as no rotation."""
MIN_MOTION_PX = 0.5
"""Median displacement of the inliers (pixels of the matched, possibly upsampled, frames) below
which a pair counts as no rotation."""


@dataclass(frozen=True)
class Coverage:
    """What :func:`view_coverage` measured.

    Attributes:
        degrees: the largest angle between any two frames' optical axes.
        rotations: (N, 3, 3) float64 camera-to-first-camera rotations (OpenCV axes), chained.
        steps_deg: N - 1 rotation angles between consecutive frames (0 for failed pairs).
        failed_pairs: pairs that counted as no rotation (too few matches or too little motion).
    """

    degrees: float
    rotations: np.ndarray
    steps_deg: list[float]
    failed_pairs: int


def _gray(frame: torch.Tensor) -> np.ndarray:
    rgb = (frame.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).round().astype(np.uint8)


def relative_rotation(features_a, features_b, K: np.ndarray) -> np.ndarray | None:
    """Rotation R (3, 3) with x_b = R x_a + t between two views' (keypoints, descriptors), or None.

    K: (3, 3) intrinsics in pixels (both views).
    """
    import cv2

    (kp_a, desc_a), (kp_b, desc_b) = features_a, features_b
    if desc_a is None or desc_b is None or len(kp_a) < MIN_MATCHES or len(kp_b) < MIN_MATCHES:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_a, desc_b, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < MIN_MATCHES:
        return None
    pts_a = np.float64([kp_a[m.queryIdx].pt for m in good])
    pts_b = np.float64([kp_b[m.trainIdx].pt for m in good])
    E, inliers = cv2.findEssentialMat(pts_a, pts_b, K, method=cv2.LMEDS, prob=0.999, threshold=1.0)
    E = None if E is None else E[:3]  # several solutions come stacked; the first is the best
    if E is None or E.shape != (3, 3) or inliers is None or int(inliers.sum()) < MIN_MATCHES:
        return None
    keep = inliers.ravel().astype(bool)
    if np.median(np.linalg.norm(pts_a[keep] - pts_b[keep], axis=1)) < MIN_MOTION_PX:
        return None
    count, R, _, _ = cv2.recoverPose(E, pts_a[keep], pts_b[keep], K)
    return R if count >= MIN_MATCHES else None


def view_coverage(frames: torch.Tensor, K: torch.Tensor) -> Coverage:
    """The view coverage of a video (see the module docstring).

    frames: (N, 3, H, W) in [0, 1]; K: (3, 3) pixel intrinsics of the frames.
    """
    import cv2

    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (N, 3, H, W), got {tuple(frames.shape)}")
    if tuple(K.shape) != (3, 3):
        raise ValueError(f"K must be (3, 3), got {tuple(K.shape)}")
    sift = cv2.SIFT_create(contrastThreshold=0.01)  # default 0.04: generated and smooth frames
    up = 2 if max(frames.shape[2:]) < 400 else 1
    grays = [_gray(f) for f in frames]
    if up > 1:
        grays = [cv2.resize(g, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC) for g in grays]
    features = [sift.detectAndCompute(g, None) for g in grays]
    Kn = K.detach().double().cpu().numpy()
    Kn[:2] *= up
    rotations, steps, failed = [np.eye(3)], [], 0
    for a, b in zip(features[:-1], features[1:]):
        R = relative_rotation(a, b, Kn)
        if R is None:
            failed += 1
            R = np.eye(3)
        steps.append(math.degrees(math.acos(float(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)))))
        # camera b's axes in camera a's frame are R^T; chained into the first camera's frame
        rotations.append(rotations[-1] @ R.T)
    stacked = np.stack(rotations)
    axes = stacked[:, :, 2]  # optical axes (third column of camera-to-first rotations)
    cos = np.clip(axes @ axes.T, -1.0, 1.0)
    return Coverage(math.degrees(math.acos(float(cos.min()))), stacked, steps, failed)
