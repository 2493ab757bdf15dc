"""The SceneScape COLMAP protocol (Fridman et al., NeurIPS 2023, Sec. 4.1) on CPU with ``pycolmap``.

SceneScape judges the 3D consistency of a generated video by running COLMAP structure-from-motion
on its frames with only the intrinsics known, then reporting:

- the fraction of frames COLMAP registers (largest model),
- COLMAP's mean reprojection error in pixels,
- rotation error (degrees) and translation error (% of the trajectory length) of COLMAP's cameras
  against the video's cameras after a global similarity alignment (see :func:`align_similarity`),
- SI-RMSE (paper Eq. 7, from Eigen et al. 2014) between the video's depth maps and COLMAP's depths.

Differences from the paper, because COLMAP's dense stereo needs CUDA: SI-RMSE is computed on the
sparse triangulated points seen in each frame (the depth of every observed 3D point in COLMAP's
camera against the run's depth at that keypoint's pixel) rather than on dense depth maps; being
scale-invariant per frame, it does not need COLMAP's arbitrary scale resolved. Density is measured
in :mod:`wanderview.metrics.consistency` instead.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wanderview.errors import BackendError


@dataclass(frozen=True)
class ColmapOptions:
    """Settings of the structure-from-motion run.

    Attributes:
        num_threads: CPU threads for extraction, matching and mapping.
        max_num_features: SIFT features per frame (COLMAP's default is 8192; fewer is faster).
        exhaustive_max_frames: match all pairs up to this many frames, otherwise sequentially.
        sequential_overlap: neighbours matched per frame in sequential matching.
        seed: COLMAP's random seed, so repeated evaluations agree.
        min_points_si_rmse: frames with fewer observed 3D points are left out of SI-RMSE.
        log_level: COLMAP messages shown on stderr: 0 info (hundreds of lines), 1 warnings,
            2 errors only (default); glog never writes log files.
    """

    num_threads: int = 2
    max_num_features: int = 4096
    exhaustive_max_frames: int = 40
    sequential_overlap: int = 10
    seed: int = 0
    min_points_si_rmse: int = 10
    log_level: int = 2


@dataclass(frozen=True)
class ColmapReconstruction:
    """What the protocol needs from COLMAP's largest model.

    Attributes:
        num_frames: frames given to COLMAP.
        registered: indices (into the given frames) of the registered frames, ascending.
        cam_to_world: (R, 4, 4) float64 OpenCV poses of the registered frames, COLMAP's world.
        reprojection_error_px: COLMAP's mean reprojection error over all observations.
        observations: per registered frame, (uv (M, 2) keypoint pixels, z (M,) depth of its 3D point).
        num_points3d: triangulated points in the model.
        seconds: wall-clock time of the whole run.
    """

    num_frames: int
    registered: list[int]
    cam_to_world: np.ndarray
    reprojection_error_px: float
    observations: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    num_points3d: int
    seconds: float


def _import_pycolmap():
    try:
        import pycolmap
    except ImportError as err:  # pragma: no cover - depends on the installation
        message = "the COLMAP protocol needs pycolmap; install it with `pip install pycolmap`."
        raise BackendError(message) from err
    return pycolmap


@contextlib.contextmanager
def _glog_to_stderr(min_level: int):
    """COLMAP logs through glog: by default INFO lines flood stderr and log files land in the system
    temp folder. Inside this block glog writes no files and only messages of ``min_level`` or worse
    (0 info, 1 warning, 2 error) reach stderr; the previous settings come back afterwards."""
    logging = getattr(_import_pycolmap(), "logging", None)
    names = ("logtostderr", "alsologtostderr", "minloglevel", "stderrthreshold")
    if logging is None or not all(hasattr(logging, n) for n in names):
        yield
        return
    saved = {n: getattr(logging, n) for n in names}
    logging.logtostderr, logging.alsologtostderr = True, False
    logging.minloglevel = logging.stderrthreshold = min_level
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(logging, name, value)


def pycolmap_available() -> bool:
    """Whether the ``pycolmap`` wheel can be imported."""
    try:
        import pycolmap  # noqa: F401
    except ImportError:
        return False
    return True


def run_colmap(
    image_root: str | Path,
    image_names: Sequence[str],
    K: torch.Tensor,
    options: ColmapOptions = ColmapOptions(),
) -> ColmapReconstruction:
    """Sparse SfM on the frames with the known pinhole intrinsics held fixed.

    Args:
        image_root: folder the image names are relative to.
        image_names: frame files in time order, e.g. ``["frames/00000.png", ...]``.
        K: (3, 3) intrinsics in pixels shared by all frames (pixel centres at +0.5, as in COLMAP).
        options: see :class:`ColmapOptions`.
    Returns:
        The largest model COLMAP builds (no model: nothing registered).
    """
    if tuple(K.shape) != (3, 3):
        raise ValueError(f"K must be (3, 3), got {tuple(K.shape)}")
    pycolmap = _import_pycolmap()
    start = time.perf_counter()
    pycolmap.set_random_seed(options.seed)
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    names = list(image_names)
    with _glog_to_stderr(options.log_level), tempfile.TemporaryDirectory(prefix="wanderview-colmap-") as tmp:
        database = Path(tmp) / "database.db"
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        reader.camera_params = f"{fx},{fy},{cx},{cy}"
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = options.num_threads
        extraction.sift.max_num_features = options.max_num_features
        pycolmap.extract_features(
            database, str(image_root), image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu,
        )
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = options.num_threads
        if len(names) <= options.exhaustive_max_frames:
            pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
        else:
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = options.sequential_overlap
            pycolmap.match_sequential(
                database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
            )
        mapper = _mapper_options(pycolmap, options, len(names))
        models = pycolmap.incremental_mapping(database, str(image_root), Path(tmp) / "sparse", options=mapper)
    seconds = time.perf_counter() - start
    if not models:
        return ColmapReconstruction(len(names), [], np.zeros((0, 4, 4)), math.nan, [], 0, seconds)
    model = max(models.values(), key=lambda m: m.num_reg_images())
    return _summarise(model, names, seconds)


def _mapper_options(pycolmap, options: ColmapOptions, num_frames: int):
    mapper = pycolmap.IncrementalPipelineOptions()
    # the protocol gives COLMAP the intrinsics: never let bundle adjustment change them
    mapper.ba_refine_focal_length = False
    mapper.ba_refine_principal_point = False
    mapper.ba_refine_extra_params = False
    mapper.mapper.abs_pose_refine_focal_length = False
    mapper.mapper.abs_pose_refine_extra_params = False
    # short videos are legitimate: COLMAP's default drops models under 10 images
    mapper.min_model_size = max(2, min(10, num_frames // 2))
    mapper.num_threads = options.num_threads
    mapper.random_seed = options.seed
    return mapper


def _summarise(model, names: list[str], seconds: float) -> ColmapReconstruction:
    index_of = {name: i for i, name in enumerate(names)}
    found = []
    for image in model.images.values():
        if not image.has_pose or image.name not in index_of:
            continue
        world_to_cam = np.eye(4)
        world_to_cam[:3, :] = image.cam_from_world().matrix()
        uv, z = [], []
        for point2d in image.points2D:
            if point2d.has_point3D():
                xyz = model.points3D[point2d.point3D_id].xyz
                uv.append(point2d.xy)
                z.append(world_to_cam[2, :3] @ xyz + world_to_cam[2, 3])
        obs = (np.asarray(uv, dtype=np.float64).reshape(-1, 2), np.asarray(z, dtype=np.float64))
        found.append((index_of[image.name], np.linalg.inv(world_to_cam), obs))
    found.sort(key=lambda item: item[0])
    return ColmapReconstruction(
        num_frames=len(names),
        registered=[i for i, _, _ in found],
        cam_to_world=np.stack([pose for _, pose, _ in found]) if found else np.zeros((0, 4, 4)),
        reprojection_error_px=float(model.compute_mean_reprojection_error()),
        observations=[obs for _, _, obs in found],
        num_points3d=int(model.num_points3D()),
        seconds=seconds,
    )


# ---- alignment and errors ---------------------------------------------------------------------


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ scale * R @ src + t`` (Umeyama, IEEE PAMI 1991).

    Args:
        src: (N, 3) points.
        dst: (N, 3) corresponding points.
    Returns:
        scale, R (3, 3) proper rotation, t (3,).
    """
    if src.ndim != 2 or src.shape[1] != 3 or dst.shape != src.shape:
        raise ValueError(f"src and dst must both be (N, 3), got {src.shape} and {dst.shape}")
    mu_src, mu_dst = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    cov = dst_c.T @ src_c / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    var_src = (src_c**2).sum() / len(src)
    scale = float(np.trace(np.diag(S) @ D) / var_src) if var_src > 0 else 1.0
    return scale, R, mu_dst - scale * R @ mu_src


def _chordal_mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """The rotation closest (Frobenius) to the sum of (N, 3, 3) rotations."""
    U, _, Vt = np.linalg.svd(rotations.sum(0))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def align_similarity(
    est_c2w: np.ndarray, ref_c2w: np.ndarray, method: str = "orientations"
) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity taking the estimated cameras onto the reference cameras.

    ``method="orientations"`` (default): the global rotation is the chordal mean of
    ``R_ref_i @ R_est_i^T`` over all cameras, then scale and translation are the least-squares fit
    of the camera centres given that rotation (Umeyama's closed form with R fixed). Orientations pin
    the gauge rotation far better than the centres of a short, nearly straight path: on a perfect
    8-frame render COLMAP's cameras came out 0.02-0.06 deg off after this alignment but 0.41 deg off
    after aligning centres alone.

    ``method="centres"``: Umeyama on the camera centres (needs centres spanning a plane; when they
    are collinear or coincide, the orientation method is used instead).

    Args:
        est_c2w: (N, 4, 4) estimated poses.
        ref_c2w: (N, 4, 4) reference poses.
        method: ``"orientations"`` or ``"centres"``.
    Returns:
        scale, R (3, 3), t (3,) with ``ref_centre ≈ scale * R @ est_centre + t`` and
        ``R_ref ≈ R @ R_est``.
    """
    if est_c2w.ndim != 3 or est_c2w.shape[1:] != (4, 4) or ref_c2w.shape != est_c2w.shape:
        raise ValueError(f"poses must both be (N, 4, 4), got {est_c2w.shape} and {ref_c2w.shape}")
    if method not in ("orientations", "centres"):
        raise ValueError(f'method must be "orientations" or "centres", got {method!r}')
    est_c, ref_c = est_c2w[:, :3, 3], ref_c2w[:, :3, 3]
    if method == "centres":
        singular = np.linalg.svd(ref_c - ref_c.mean(0), compute_uv=False)
        if len(est_c) >= 3 and singular[0] > 0 and singular[1] > 1e-3 * singular[0]:
            return umeyama(est_c, ref_c)
    R = _chordal_mean_rotation(ref_c2w[:, :3, :3] @ est_c2w[:, :3, :3].transpose(0, 2, 1))
    est_rot = (est_c - est_c.mean(0)) @ R.T
    denom = (est_rot**2).sum()
    scale = float((est_rot * (ref_c - ref_c.mean(0))).sum() / denom) if denom > 0 else 1.0
    return scale, R, ref_c.mean(0) - scale * R @ est_c.mean(0)


def trajectory_length(c2w: np.ndarray) -> float:
    """Sum of the distances between consecutive camera centres of (N, 4, 4) poses."""
    centres = c2w[:, :3, 3]
    return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())


def pose_errors(
    est_c2w: np.ndarray,
    ref_c2w: np.ndarray,
    reference_length: float | None = None,
    method: str = "orientations",
) -> dict:
    """Rotation and translation errors of estimated cameras after a similarity alignment.

    Args:
        est_c2w: (N, 4, 4) estimated poses (e.g. COLMAP's, in its own world and scale).
        ref_c2w: (N, 4, 4) reference poses of the same frames.
        reference_length: trajectory length the translation error is relative to; by default the
            length of ``ref_c2w``'s path.
        method: alignment, see :func:`align_similarity`.
    Returns:
        ``rotation_error_deg``: mean angle of ``R_ref_i^T R R_est_i``; ``translation_error_pct``:
        mean distance between aligned and reference centres in % of the trajectory length (``nan``
        when the reference camera does not move).
    """
    est_c2w, ref_c2w = np.asarray(est_c2w, np.float64), np.asarray(ref_c2w, np.float64)
    scale, R, t = align_similarity(est_c2w, ref_c2w, method)
    aligned_rot = R @ est_c2w[:, :3, :3]
    relative = ref_c2w[:, :3, :3].transpose(0, 2, 1) @ aligned_rot
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    aligned_centres = scale * est_c2w[:, :3, 3] @ R.T + t
    distances = np.linalg.norm(aligned_centres - ref_c2w[:, :3, 3], axis=1)
    length = trajectory_length(ref_c2w) if reference_length is None else reference_length
    return {
        "rotation_error_deg": float(np.degrees(np.arccos(cos)).mean()),
        "translation_error_pct": float(100.0 * distances.mean() / length) if length > 0 else math.nan,
    }


def si_rmse(depth_a: np.ndarray, depth_b: np.ndarray) -> float:
    """Scale-invariant RMSE of log depths, SceneScape Eq. 7 (Eigen et al. 2014).

    ``sqrt(1/N^2 * sum_{p,q} ((log a_p - log a_q) - (log b_p - log b_q))^2)``, computed exactly as
    ``sqrt(2 * var(log a - log b))`` (the double sum over ordered pairs expands to that).

    Args:
        depth_a: (N,) positive depths.
        depth_b: (N,) positive depths of the same points.
    """
    if depth_a.shape != depth_b.shape or depth_a.ndim != 1:
        raise ValueError(f"depths must both be (N,), got {depth_a.shape} and {depth_b.shape}")
    diff = np.log(np.asarray(depth_a, np.float64)) - np.log(np.asarray(depth_b, np.float64))
    return float(math.sqrt(max(2.0 * diff.var(), 0.0)))


def colmap_metrics(
    recon: ColmapReconstruction, run_c2w: np.ndarray, depths: np.ndarray, min_points: int = 10
) -> dict:
    """The protocol's numbers for a run.

    Args:
        recon: output of :func:`run_colmap` on the run's frames.
        run_c2w: (N, 4, 4) the run's OpenCV poses of all frames.
        depths: (N, H, W) the run's z-depth maps (inf = unknown).
        min_points: frames with fewer usable observations are left out of SI-RMSE.
    Returns:
        dict with ``registered_fraction``, ``reprojection_error_px``, ``rotation_error_deg``,
        ``translation_error_pct``, ``si_rmse`` (``nan`` where undefined), and bookkeeping fields
        ``registered_frames``, ``points3d``, ``seconds``.
    """
    out = {
        "registered_fraction": len(recon.registered) / max(recon.num_frames, 1),
        "reprojection_error_px": recon.reprojection_error_px,
        "rotation_error_deg": math.nan,
        "translation_error_pct": math.nan,
        "si_rmse": math.nan,
        "registered_frames": len(recon.registered),
        "points3d": recon.num_points3d,
        "seconds": round(recon.seconds, 3),
    }
    if len(recon.registered) >= 2:
        errors = pose_errors(recon.cam_to_world, run_c2w[recon.registered], trajectory_length(run_c2w))
        out.update(errors)
    per_frame = []
    for index, (uv, z) in zip(recon.registered, recon.observations):
        run_z = sample_depth(depths[index], uv)
        usable = np.isfinite(run_z) & (run_z > 0) & (z > 0)
        if usable.sum() >= min_points:
            per_frame.append(si_rmse(run_z[usable], z[usable]))
    if per_frame:
        out["si_rmse"] = float(np.mean(per_frame))
    return out


def sample_depth(depth: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Depth at sub-pixel positions: bilinear where the four neighbours agree, else nearest.

    Keypoints sit at sub-pixel positions; on a slanted surface the nearest pixel's depth is off by
    up to half a pixel's depth change, so we interpolate, but never across a depth edge (neighbours
    more than 5 % apart or unknown), where interpolation would invent a surface.

    Args:
        depth: (H, W) z-depth, inf = unknown.
        uv: (M, 2) pixel coordinates with centres at +0.5.
    Returns:
        (M,) depths (inf where unknown).
    """
    H, W = depth.shape
    x = np.clip(uv[:, 0] - 0.5, 0, W - 1)
    y = np.clip(uv[:, 1] - 0.5, 0, H - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), W - 2), np.minimum(np.floor(y).astype(int), H - 2)
    x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    fx, fy = x - x0, y - y0
    corners = np.stack([depth[y0, x0], depth[y0, x1], depth[y1, x0], depth[y1, x1]])
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    with np.errstate(invalid="ignore"):
        smooth = np.isfinite(corners).all(0) & (corners.max(0) <= 1.05 * corners.min(0))
        bilinear = (np.where(np.isfinite(corners), corners, 0.0) * weights).sum(0)
    cols = np.clip(np.floor(uv[:, 0]).astype(int), 0, W - 1)
    rows = np.clip(np.floor(uv[:, 1]).astype(int), 0, H - 1)
    return np.where(smooth, bilinear, depth[rows, cols])
