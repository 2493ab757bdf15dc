"""The SceneScape COLMAP protocol: alignment, pose errors under known jitter, SI-RMSE, and a real SfM run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from test_metrics_support import render_room, room_cameras, write_run
from wanderview.metrics.colmap import ColmapOptions, colmap_metrics, pose_errors, run_colmap, si_rmse, umeyama


def _orbit(n: int = 60, radius: float = 2.0) -> np.ndarray:
    """(n, 4, 4) cameras on a half circle looking at the origin (non-collinear centres)."""
    poses = np.tile(np.eye(4), (n, 1, 1))
    for i, a in enumerate(np.linspace(0, np.pi, n)):
        eye = np.array([radius * np.cos(a), 0.2 * np.sin(3 * a), radius * np.sin(a)])
        fwd = -eye / np.linalg.norm(eye)
        right = np.cross(fwd, [0.0, -1.0, 0.0])
        right /= np.linalg.norm(right)
        poses[i, :3, :3] = np.stack([right, np.cross(fwd, right), fwd], axis=1)
        poses[i, :3, 3] = eye
    return poses


def _similarity(poses: np.ndarray, scale: float, rot: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = poses.copy()
    out[:, :3, :3] = rot @ poses[:, :3, :3]
    out[:, :3, 3] = scale * poses[:, :3, 3] @ rot.T + t
    return out


def _path_length(poses: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum())


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    rot = Rotation.from_rotvec([0.3, -1.0, 0.5]).as_matrix()
    dst = 2.5 * src @ rot.T + np.array([1.0, 2.0, 3.0])
    scale, R, t = umeyama(src, dst)
    assert scale == pytest.approx(2.5) and np.allclose(R, rot) and np.allclose(t, [1, 2, 3])


@pytest.mark.parametrize("method", ["orientations", "centres"])
def test_pose_errors_vanish_for_a_similar_trajectory(method):
    ref = _orbit()
    est = _similarity(ref, 0.37, Rotation.from_rotvec([1.0, 0.2, -0.4]).as_matrix(), np.array([5.0, -1, 2]))
    errors = pose_errors(est, ref, method=method)
    assert errors["rotation_error_deg"] < 1e-4 and errors["translation_error_pct"] < 1e-6


@pytest.mark.parametrize("method", ["orientations", "centres"])
def test_rotation_jitter_adds_its_angle(method):
    rng = np.random.default_rng(1)
    ref = _orbit()
    est = _similarity(ref, 3.0, Rotation.from_rotvec([0.0, 0.5, 0.1]).as_matrix(), np.zeros(3))
    jitter_deg = 2.0
    axes = rng.normal(size=(len(ref), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    est[:, :3, :3] = est[:, :3, :3] @ Rotation.from_rotvec(np.radians(jitter_deg) * axes).as_matrix()
    errors = pose_errors(est, ref, method=method)
    assert errors["rotation_error_deg"] == pytest.approx(jitter_deg, rel=0.1)
    # centres are untouched; the orientation alignment absorbs a sliver of the jitter's mean rotation
    assert errors["translation_error_pct"] < (1e-6 if method == "centres" else 0.5)


@pytest.mark.parametrize("method", ["orientations", "centres"])
def test_translation_jitter_adds_its_length_relative_to_the_path(method):
    rng = np.random.default_rng(2)
    ref = _orbit(200)
    noise = rng.normal(size=(len(ref), 3))
    noise *= 0.05 / np.linalg.norm(noise, axis=1, keepdims=True)  # every centre moved by 0.05
    est = ref.copy()
    est[:, :3, 3] += noise
    errors = pose_errors(est, ref, method=method)
    expected = 100.0 * 0.05 / _path_length(ref)
    assert errors["translation_error_pct"] == pytest.approx(expected, rel=0.1)
    assert errors["rotation_error_deg"] < 0.5


def test_collinear_path_uses_orientations():
    ref = np.tile(np.eye(4), (10, 1, 1))
    ref[:, 2, 3] = np.linspace(0, 1, 10)  # a straight dolly: centres do not fix the roll about z
    est = _similarity(ref, 2.0, Rotation.from_rotvec([0.1, 0.2, 0.3]).as_matrix(), np.ones(3))
    errors = pose_errors(est, ref, method="centres")
    assert errors["rotation_error_deg"] < 1e-4 and errors["translation_error_pct"] < 1e-6
    assert math.isnan(pose_errors(est[:1].repeat(3, 0), ref[:1].repeat(3, 0))["translation_error_pct"])


def test_si_rmse_matches_eq7_and_ignores_global_scale():
    rng = np.random.default_rng(3)
    a = rng.uniform(1, 5, size=30)
    b = a * np.exp(rng.normal(scale=0.1, size=30))
    la, lb = np.log(a), np.log(b)
    pairwise = ((la[:, None] - la[None, :]) - (lb[:, None] - lb[None, :])) ** 2
    assert si_rmse(a, b) == pytest.approx(math.sqrt(pairwise.sum() / 30**2))
    assert si_rmse(7.3 * a, b) == pytest.approx(si_rmse(a, b))
    assert si_rmse(a, 0.01 * a) == pytest.approx(0.0, abs=1e-9)


def test_consistent_render_registers_every_frame_sub_pixel(tmp_path):
    cameras = room_cameras(8, 256, 192)
    views = [render_room(c) for c in cameras]
    run = write_run(tmp_path / "run", cameras, [v[0] for v in views], [v[1] for v in views])
    names = [f"frames/{i:05d}.png" for i in range(8)]
    recon = run_colmap(run, names, cameras.K[0], ColmapOptions(num_threads=2, max_num_features=2048))
    depths = np.stack([v[1][0].numpy() for v in views])
    metrics = colmap_metrics(recon, cameras.cam_to_world.double().numpy(), depths)
    assert metrics["registered_fraction"] == 1.0
    assert metrics["reprojection_error_px"] < 0.5
    assert metrics["rotation_error_deg"] < 0.3
    assert metrics["translation_error_pct"] < 1.0
    assert metrics["si_rmse"] < 0.1
    # scaling every run depth by one factor leaves SI-RMSE unchanged
    scaled = colmap_metrics(recon, cameras.cam_to_world.double().numpy(), 4.0 * depths)
    assert scaled["si_rmse"] == pytest.approx(metrics["si_rmse"], rel=1e-6)
