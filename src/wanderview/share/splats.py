"""Gaussian splats for the viewer and ``export --to splat``, on top of ``scenes/gaussians.py`` and
``io/gaussian_ply.py`` (the standard 3DGS PLY that SuperSplat and Gradio's ``Model3D`` open).

A run that holds Gaussians (``gaussians.ply``) is exported as they are. A mesh or point run becomes
one isotropic, nearly opaque Gaussian per vertex/point whose standard deviation is 0.7 of the pixel
footprint the point had when it was captured (its distance to the nearest camera of the path over
the focal length): neighbours overlap into a closed surface, as in ``GaussianScene.from_rgbd``.
That is a conversion, not a fitted 3DGS scene: ``wanderview fit-gaussians`` optimises one.
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


def export_splat(run: RunFolder, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the run's scene as a 3DGS PLY (see the module docstring)."""
    from wanderview.share.export import check_output_file, run_scene

    out = Path(out)
    check_output_file(out, ".ply", overwrite)
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
