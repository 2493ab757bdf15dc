"""Gaussian splats for the viewer and ``export --to splat``, on top of ``scenes/gaussians.py`` and
``io/gaussian_ply.py`` (the standard 3DGS PLY that SuperSplat and Gradio's ``Model3D`` open).

A run that holds Gaussians (``gaussians.ply``) is exported as they are. A mesh or point run becomes
one isotropic, nearly opaque Gaussian per vertex/point whose standard deviation is 0.7 of the pixel
footprint the point had when it was captured (its distance to the nearest camera of the path over
the focal length): neighbours overlap into a closed surface, as in ``GaussianScene.from_rgbd``.
That is a conversion, not a fitted 3DGS scene: ``wanderview fit-gaussians`` optimises one.

``-o NAME.splat`` writes the compact ``.splat`` format of the antimatter15 web viewer (which Gradio's
``Model3D`` also opens): 32 bytes per Gaussian — position and standard deviations as 3 float32 each,
RGBA as 4 uint8 (alpha = opacity), the normalised wxyz quaternion as 4 uint8 (q·128 + 128) — sorted
by size x opacity, largest first. It needs no 3DGS modules for mesh and point runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch

from wanderview.errors import BackendError
from wanderview.io.images import atomic_output
from wanderview.share.run import RunFolder, SceneData

FOOTPRINT = 0.7  # standard deviation in pixel spacings (GaussianScene.from_rgbd's default)
OPACITY = 0.95


def _gaussian_modules():
    try:
        from wanderview.io import gaussian_ply
        from wanderview.scenes import gaussians
    except ImportError as err:  # the splat modules are newer than this one
        raise BackendError(
            "Gaussian splats need wanderview's scenes/gaussians.py, which this installation lacks."
        ) from err
    return gaussian_ply, gaussians


def covariances(quats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(N, 3, 3) world covariances R diag(s²) Rᵀ from wxyz quaternions (N, 4) (any norm) and
    standard deviations (N, 3)."""
    q = quats / np.linalg.norm(quats, axis=1, keepdims=True).clip(1e-12)
    w, x, y, z = q.T
    R = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=1).reshape(-1, 3, 3)  # fmt: skip
    return (R * scales[:, None, :] ** 2) @ R.transpose(0, 2, 1)


def load_gaussian_scene(path: str | os.PathLike) -> SceneData:
    """A 3DGS PLY as ``SceneData("gaussians", ...)``: centres, DC colours, and in ``gaussians``
    ``opacities`` (N,), ``scales`` (N, 3), ``quats`` (N, 4) normalised wxyz, ``covariances`` (N, 3, 3)."""
    gaussian_ply, gaussians = _gaussian_modules()
    ply = gaussian_ply.read_gaussian_ply(path)
    from wanderview.render.gaussians import SH_C0

    colors = (0.5 + SH_C0 * ply.sh[:, 0, :]).clamp(0, 1).numpy()
    scales = ply.log_scales.exp().numpy().astype(np.float64)
    quats = ply.quats.numpy().astype(np.float64)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True).clip(1e-12)
    extra = {
        "opacities": torch.sigmoid(ply.opacity_logits).numpy(),
        "scales": scales.astype(np.float32),
        "quats": quats.astype(np.float32),
        "covariances": covariances(quats, scales).astype(np.float32),
    }
    return SceneData("gaussians", ply.means.numpy(), colors, gaussians=extra)


def gaussian_renderer(path: str | os.PathLike):
    """The ``GaussianScene`` of a 3DGS PLY (``render(camera) -> RenderOutput``)."""
    _, gaussians = _gaussian_modules()
    return gaussians.GaussianScene.load(path)


def capture_sigmas(points: torch.Tensor, run: RunFolder) -> torch.Tensor:
    """(N,) standard deviations: FOOTPRINT x (distance to the nearest path camera) / focal."""
    centres = run.cameras.center.reshape(-1, 3).to(points)
    nearest = torch.cat([torch.cdist(chunk, centres).min(dim=1).values for chunk in points.split(65536)])
    focal = float(run.cameras.fx.reshape(-1)[0])
    return (FOOTPRINT * nearest / focal).clamp(min=1e-6)


SPLAT_DTYPE = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def write_splat_file(path: str | os.PathLike, scene: SceneData) -> None:
    """Write ``scene`` (kind ``"gaussians"``) as a ``.splat`` file, atomically (see the module docstring)."""
    g = scene.gaussians
    if g is None:
        raise ValueError("write_splat_file needs a scene of Gaussians")
    importance = np.prod(g["scales"], axis=1) * g["opacities"]
    order = np.argsort(-importance, kind="stable")
    rows = np.empty(len(scene), dtype=SPLAT_DTYPE)
    rows["position"] = scene.positions[order]
    rows["scale"] = g["scales"][order]
    alpha = g["opacities"][order, None]
    rows["rgba"] = np.clip(np.round(np.concatenate([scene.colors[order], alpha], 1) * 255), 0, 255)
    quats = g["quats"][order] / np.linalg.norm(g["quats"][order], axis=1, keepdims=True).clip(1e-12)
    rows["rot"] = np.clip(np.round(quats * 128 + 128), 0, 255)
    with atomic_output(path) as tmp:
        tmp.write_bytes(rows.tobytes())


def read_splat_file(path: str | os.PathLike) -> np.ndarray:
    """The rows of a ``.splat`` file as a structured array of ``SPLAT_DTYPE`` (N,)."""
    data = Path(path).read_bytes()
    if len(data) % SPLAT_DTYPE.itemsize:
        raise ValueError(f"{path} is not a .splat file (size not a multiple of 32 bytes)")
    return np.frombuffer(data, dtype=SPLAT_DTYPE)


def points_as_gaussians(scene: SceneData, run: RunFolder) -> SceneData:
    """A mesh's vertices or a point cloud as isotropic Gaussians (see the module docstring)."""
    points = torch.from_numpy(np.ascontiguousarray(scene.positions, dtype=np.float32))
    sigma = capture_sigmas(points, run).numpy()
    scales = np.repeat(sigma[:, None], 3, axis=1).astype(np.float32)
    quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (len(scene), 1))
    extra = {"opacities": np.full(len(scene), OPACITY, np.float32), "scales": scales, "quats": quats,
             "covariances": covariances(quats, scales)}  # fmt: skip
    return SceneData("gaussians", scene.positions, scene.colors, gaussians=extra)


def export_splat(run: RunFolder, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the run's scene as a 3DGS PLY or, for ``.splat``, the compact web format."""
    from wanderview.share.export import check_output_file, run_scene

    out = Path(out)
    check_output_file(out, ".splat" if out.suffix.lower() == ".splat" else ".ply", overwrite)
    if out.suffix.lower() == ".splat":
        scene = run_scene(run)
        write_splat_file(out, scene if scene.kind == "gaussians" else points_as_gaussians(scene, run))
        return out
    _, gaussians = _gaussian_modules()
    if run.scene_path is not None and run.scene_path.name == "gaussians.ply":
        with atomic_output(out) as tmp:
            shutil.copyfile(run.scene_path, tmp)
        return out
    scene = run_scene(run)
    points = torch.from_numpy(np.ascontiguousarray(scene.positions, dtype=np.float32))
    colors = torch.from_numpy(np.ascontiguousarray(scene.colors, dtype=np.float32))
    splats = gaussians.GaussianScene.from_points(points, colors, capture_sigmas(points, run),
                                                 max_sh_degree=0, opacity=OPACITY)  # fmt: skip
    splats.save(out)
    return out
