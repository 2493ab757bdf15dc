"""Inputs of ``fourreal``: the two videos, their cameras (files or SfM) and the canonical frame match.

World frame: the canonical camera (the reference camera at the canonical frame) is the identity
pose. A reference camera file is taken relative to its first camera (as everywhere in
wanderview) and re-anchored at the canonical frame; a freeze-time camera file likewise, anchored
at the freeze frame that matches the canonical reference frame. Without camera files the
reference camera is fixed (identity) and the freeze-time cameras come from COLMAP on the
freeze-time frames plus the canonical reference frame, anchored the same way.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.errors import BackendError, InputError
from wanderview.io.images import read_image, write_image
from wanderview.metrics.image import psnr

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MATCH_PSNR = 27.0
"""A freeze-time frame matches the canonical reference frame when their PSNR reaches this (dB).

The canonical frame of the procedural scene encoded in both videos as MP4 decoded 40-45 dB apart
here (32x24 to 128x96; every decoded frame was >= 31 dB from its render), while the canonical view
at time 1 (the box moved) scored 22.9 dB and an orbit view 10 degrees away 21.9 dB: the former
20 dB let a freeze video of another time pass."""


def read_frames(path: Path, what: str) -> torch.Tensor:
    """A video file or a folder of frames (sorted by name, other files ignored) -> (V, 3, H, W)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"The {what} folder {path} has no image frames ({', '.join(FRAME_SUFFIXES)}).")
        frames = [read_image(p) for p in files]
    else:
        from wanderview.io.video import read_video

        frames = read_video(path)
        if not frames:
            raise InputError(f"The {what} {path} has no frames.")
    sizes = {tuple(f.shape[1:]) for f in frames}
    if len(sizes) != 1:
        raise InputError(f"The frames of the {what} {path} have different sizes {sorted(sizes)}.")
    return torch.stack(frames)


def working_size(
    height: int, width: int, max_side: int, size: tuple[int | None, int | None]
) -> tuple[int, int]:
    """(H, W) to work at: the given width/height, else the input downscaled so its longer side ≤ max_side."""
    w, h = size
    if w is not None and h is not None:
        return h, w
    scale = min(1.0, max_side / max(height, width))
    if w is not None:
        scale = w / width
    elif h is not None:
        scale = h / height
    return max(8, round(height * scale)), max(8, round(width * scale))


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(V, 3, h, w) -> (V, 3, height, width), area-averaged when shrinking."""
    if tuple(frames.shape[2:]) == (height, width):
        return frames
    return torch.nn.functional.interpolate(frames, size=(height, width), mode="area").clamp(0, 1)


@dataclass(frozen=True)
class CameraFile:
    """Cameras (V,) relative to the file's first camera, scaled to the working size; times or None."""

    cameras: Camera
    times: list[float] | None


def read_camera_file(path: Path, num_frames: int, height: int, width: int, what: str) -> CameraFile:
    """A transforms.json (per-frame ``time`` honoured) for a video of ``num_frames`` frames."""
    from wanderview.io.cameras import read_transforms_json

    cams, _ = read_transforms_json(path)
    if len(cams) != num_frames:
        raise InputError(f"The {what} camera file {Path(path).name} has {len(cams)} cameras for "
                         f"{num_frames} frames.")  # fmt: skip
    frames = json.loads(Path(path).read_text(encoding="utf-8"))["frames"]
    times = [f.get("time") for f in frames]
    if all(isinstance(t, int | float) and math.isfinite(t) for t in times):
        times = [float(t) for t in times]
    elif any(t is not None for t in times):
        raise InputError(
            f"The {what} camera file {Path(path).name} gives a number 'time' on some frames only."
        )
    else:
        times = None
    cams = cams.scaled(width, height)
    first = torch.linalg.inv(cams.cam_to_world[0].double())
    rel = (first @ cams.cam_to_world.double()).float()
    return CameraFile(Camera(cams.K, rel, width, height), times)


def anchored(cameras: Camera, index: int) -> Camera:
    """Cameras (V,) re-expressed so that camera ``index`` is the identity pose."""
    inv = torch.linalg.inv(cameras.cam_to_world[index].double())
    return cameras.with_pose((inv @ cameras.cam_to_world.double()).float())


def agree_on_canonical(reference: Camera, canonical: int, freeze: Camera | None, match: int,
                       reference_file: bool) -> Camera:  # fmt: skip
    """The reference cameras (R,), made to agree with the freeze-time cameras on the canonical camera.

    The canonical reference frame and the matching freeze frame are one image, so one camera: both
    are the identity pose after anchoring, and their intrinsics must be the same. A freeze camera
    file without a reference file gives its intrinsics at the match to the (fixed) reference camera,
    which would otherwise take ``--fov``'s.

    Args:
        reference: (R,) anchored at ``canonical``; freeze: (F,) from a camera file, anchored at
            ``match``, or None when SfM will estimate them (with the reference intrinsics);
            reference_file: whether ``reference`` came from a camera file.
    Raises:
        InputError: both files given with intrinsics more than 1 % apart at the canonical camera,
            or a moving reference camera file with SfM, whose scale is arbitrary.
    """
    if freeze is None:
        if reference_file and float(reference.cam_to_world[:, :3, 3].norm(dim=-1).max()) > 1e-6:
            raise InputError("The reference camera file moves the camera, and SfM's freeze-time "
                             "cameras have an arbitrary scale that cannot match it; give "
                             "--freeze-cameras too.")  # fmt: skip
        return reference
    if not reference_file:
        return Camera(freeze.K[match].expand(len(reference), 3, 3), reference.cam_to_world,
                      reference.width, reference.height)  # fmt: skip
    K_ref, K_frz = reference.K[canonical].double(), freeze.K[match].double()
    if float(((K_ref - K_frz).abs() / K_ref[0, 0]).max()) > 0.01:
        fields = lambda K: ", ".join(f"{float(v):.1f}" for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))  # noqa: E731
        raise InputError(f"The camera files disagree on the canonical camera: fx, fy, cx, cy = "
                         f"{fields(K_ref)} px in the reference file but {fields(K_frz)} px in the "
                         f"freeze-time file (frame {match}), at the working size.")  # fmt: skip
    return reference


def canonical_match(freeze: torch.Tensor, canonical_frame: torch.Tensor) -> int:
    """Index of the freeze-time frame (F, 3, H, W) closest to the canonical frame (3, H, W).

    Raises:
        InputError: no frame reaches ``MATCH_PSNR``.
    """
    scores = [psnr(f, canonical_frame) for f in freeze]
    best = max(range(len(scores)), key=lambda i: scores[i])
    if scores[best] < MATCH_PSNR:
        raise InputError(f"No freeze-time frame matches the canonical reference frame (best PSNR "
                         f"{scores[best]:.1f} dB < {MATCH_PSNR:.0f} dB); the freeze-time video must "
                         f"start from (or pass through) that frame.")  # fmt: skip
    return best


def sfm_cameras(freeze: torch.Tensor, canonical_frame: torch.Tensor, K: torch.Tensor, seed: int
                ) -> tuple[Camera, torch.Tensor, torch.Tensor, dict]:  # fmt: skip
    """COLMAP on the freeze-time frames and the canonical reference frame (intrinsics ``K`` fixed).

    Returns:
        cameras (F,) of the freeze-time frames anchored at the canonical frame (identity), points
        (P, 3) and their colours (P, 3) in that frame (from COLMAP's observations), and a summary.
    Raises:
        BackendError: pycolmap is missing. InputError: the canonical frame or fewer than two freeze
        frames are registered.
    """
    from wanderview.metrics.colmap import ColmapOptions, pycolmap_available, run_colmap

    if not pycolmap_available():
        raise BackendError("Cameras were not given and SfM needs pycolmap (pip install 'wanderview[eval]').")
    F, _, H, W = freeze.shape
    with tempfile.TemporaryDirectory(prefix="wanderview-fourreal-") as tmp:
        names = [f"{i:05d}.png" for i in range(F)] + ["canonical.png"]
        for name, image in zip(names, [*freeze, canonical_frame]):
            write_image(Path(tmp) / name, image)
        rec = run_colmap(tmp, names, K, ColmapOptions(seed=seed))
    index = {frame: row for row, frame in enumerate(rec.registered)}
    if not index:
        raise InputError("SfM reconstructed nothing from the freeze-time frames (too few features or too "
                         "little camera motion); give --freeze-cameras.")  # fmt: skip
    if F not in index:
        raise InputError("SfM could not place the canonical reference frame; give --freeze-cameras.")
    missing = [i for i in range(F) if i not in index]
    if F - len(missing) < 2:
        raise InputError(
            f"SfM registered only {F - len(missing)} of {F} freeze-time frames; give --freeze-cameras."
        )
    c2w = torch.from_numpy(rec.cam_to_world).double()
    to_canonical = torch.linalg.inv(c2w[index[F]])
    poses = []
    for i in range(F):  # an unregistered frame takes its nearest registered neighbour's pose
        j = i if i in index else min(index.keys() - {F}, key=lambda r: abs(r - i))
        poses.append(to_canonical @ c2w[index[j]])
    points, colors = [], []
    for frame, (uv, z) in zip(rec.registered, rec.observations):
        if len(z) == 0:
            continue
        pose = to_canonical @ c2w[index[frame]]
        uvt, zt = torch.from_numpy(uv), torch.from_numpy(z)
        cam = torch.stack(
            [(uvt[:, 0] - K[0, 2]) / K[0, 0] * zt, (uvt[:, 1] - K[1, 2]) / K[1, 1] * zt, zt], -1
        )
        points.append((cam @ pose[:3, :3].T + pose[:3, 3]).float())
        image = canonical_frame if frame == F else freeze[frame]
        px = uvt.long().clamp_min(0)
        colors.append(image[:, px[:, 1].clamp_max(H - 1), px[:, 0].clamp_max(W - 1)].T)
    cams = Camera(K.expand(F, 3, 3), torch.stack(poses).float(), W, H)
    summary = {"registered": len(rec.registered), "of": F + 1, "points3d": rec.num_points3d,
               "reprojection_error_px": rec.reprojection_error_px, "unregistered_freeze_frames": missing,
               "seconds": round(rec.seconds, 2)}  # fmt: skip
    if not points:
        raise InputError("SfM triangulated no points; give --freeze-cameras.")
    return cams, torch.cat(points), torch.cat(colors), summary


def orbit_distance(cameras: Camera) -> float:
    """Distance from the canonical camera (identity) to the point its views converge on.

    The least-squares nearest point to all optical axes (a turntable or orbit video looks at one
    point); falls back to 1 when the axes are nearly parallel.
    """
    c2w = cameras.cam_to_world.double()
    centres, axes = c2w[:, :3, 3], torch.nn.functional.normalize(c2w[:, :3, 2], dim=-1)
    proj = torch.eye(3, dtype=torch.float64) - axes[:, :, None] * axes[:, None, :]
    A, b = proj.sum(0), (proj @ centres[:, :, None]).sum(0)[:, 0]
    if torch.linalg.cond(A) > 1e6:
        return 1.0
    point = torch.linalg.solve(A, b)
    depth = float(point[2])  # the canonical camera looks down +z
    return depth if depth > 1e-6 else 1.0


def frustum_points(cameras: Camera, images: torch.Tensor, count: int, near: float, far: float, seed: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``count`` random points in the views' frusta (depth uniform in disparity over [near, far]),
    coloured by the pixel they project to: an initialisation when no SfM points exist.

    Returns points (count, 3) and colours (count, 3).
    """
    g = torch.Generator().manual_seed(seed)
    V, _, H, W = images.shape
    view = torch.randint(0, V, (count,), generator=g)
    u, v = torch.rand(count, generator=g) * W, torch.rand(count, generator=g) * H
    depth = 1.0 / (1.0 / far + torch.rand(count, generator=g) * (1.0 / near - 1.0 / far))
    K, c2w = cameras.K[view], cameras.cam_to_world[view]
    cam = torch.stack(
        [(u - K[:, 0, 2]) / K[:, 0, 0] * depth, (v - K[:, 1, 2]) / K[:, 1, 1] * depth, depth], -1
    )
    points = (c2w[:, :3, :3] @ cam[:, :, None])[:, :, 0] + c2w[:, :3, 3]
    colors = images[view, :, v.long().clamp_max(H - 1), u.long().clamp_max(W - 1)]
    return points, colors


def thin_points(points: torch.Tensor, colors: torch.Tensor, max_points: int, seed: int,
                voxel_fraction: float = 4e-3) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Merge duplicate points and cap their number: the initial Gaussians from SfM.

    SfM returns every 3D point once per frame that observes it, so a point seen in five frames
    arrives five times at (almost) the same place; their nearest-neighbour distance, which sets
    the initial Gaussian scale, is then ~0 and the splats start invisible. Points in one voxel
    (``voxel_fraction`` of the points' extent; the copies differ by the keypoints' sub-pixel
    reprojection error, so the voxel is a few times coarser than a pixel's footprint) are merged
    into their mean (colour too); if more than ``max_points`` remain, a seeded random subset is
    kept (density control's cap would otherwise be exceeded before the first step).

    Args:
        points: (P, 3); colors: (P, 3) in [0, 1].
    Returns:
        points (M, 3) and colors (M, 3), M ≤ max_points.
    """
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
        raise ValueError(
            f"points and colors must be (P, 3), got {tuple(points.shape)}, {tuple(colors.shape)}"
        )
    lo, hi = points.quantile(0.01, dim=0), points.quantile(0.99, dim=0)
    voxel = float((hi - lo).max().clamp(min=1e-9)) * voxel_fraction
    keys = torch.floor((points - lo) / voxel).long()
    _, group = torch.unique(keys, dim=0, return_inverse=True)
    count = torch.zeros(int(group.max()) + 1).index_add_(0, group, torch.ones(len(points)))
    merged = torch.zeros(len(count), 3).index_add_(0, group, points.float()) / count[:, None]
    merged_colors = torch.zeros(len(count), 3).index_add_(0, group, colors.float()) / count[:, None]
    if len(merged) > max_points:
        keep = torch.randperm(len(merged), generator=torch.Generator().manual_seed(seed))[:max_points]
        merged, merged_colors = merged[keep], merged_colors[keep]
    return merged, merged_colors



def triangulated_points(images: torch.Tensor, cameras: Camera, gap: int = 2, upscale: int = 2,
                        max_flow_error_px: float = 0.25, max_error_px: float = 0.5,
                        min_angle_deg: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, dict]:  # fmt: skip
    """Dense points from optical flow between frames ``gap`` apart, triangulated with the given
    cameras: the initial Gaussians when camera files replace SfM (which would give points itself).

    Flow (OpenCV's DIS, on frames upscaled by ``upscale`` for sub-pixel accuracy) is computed both
    ways; a pixel is kept when the round trip returns within ``max_flow_error_px`` (occlusions and
    untextured areas fail it), its triangulated point lies in front of both cameras and reprojects
    within ``max_error_px`` in both, and its rays meet at ``min_angle_deg`` or more. On the
    procedural orbit (12 frames, 5.5 degrees apart, gap 2) this keeps ~6500 of 12288 pixels per
    pair with a median distance error of 0.8 % (sparse SIFT found 154 points there).

    Args:
        images: (F, 3, H, W) in [0, 1]; cameras: batch (F,).
    Returns:
        points (P, 3), their colours (P, 3) and a summary dict; P is small (or 0) when the cameras
        do not fit the frames or the frames lack texture.
    """
    from wanderview.geometry.flow import optical_flow, sample_flow
    from wanderview.geometry.triangulate import (
        project,
        projection_matrix,
        triangulate_linear,
        triangulation_angle,
    )

    F, _, H, W = images.shape
    gap = max(1, min(gap, F - 1))
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    uv_a = torch.stack([xs, ys]).reshape(2, -1)
    P = [projection_matrix(cameras.K[i], cameras.cam_to_world[i]) for i in range(F)]
    centres = cameras.cam_to_world[:, :3, 3]
    points, colors = [], []
    for a in range(F - gap):
        b = a + gap
        uv_b = uv_a + sample_flow(optical_flow(images[a], images[b], upscale), uv_a)
        back = uv_b + sample_flow(optical_flow(images[b], images[a], upscale), uv_b)
        keep = (back - uv_a).norm(dim=0) <= max_flow_error_px
        pa, pb = uv_a.T.double(), uv_b.T.double()
        X = triangulate_linear(pa, pb, P[a], P[b])
        keep &= triangulation_angle(X, centres[a], centres[b]) >= min_angle_deg
        for view, uv in ((a, pa), (b, pb)):
            proj, z = project(X, P[view])
            keep &= (z > 0) & ((proj - uv).norm(dim=-1) <= max_error_px)
        points.append(X[keep].float())
        colors.append(images[a].reshape(3, -1).T[keep])
    if not points:  # a single frame: nothing to pair
        empty = torch.zeros(0, 3)
        return empty, empty.clone(), {"how": "one freeze-time frame: no pair to triangulate", "points": 0}
    points, colors = torch.cat(points), torch.cat(colors)
    how = f"optical flow between frames {gap} apart, triangulated with the given cameras"
    return points, colors, {"how": how, "points": len(points)}
