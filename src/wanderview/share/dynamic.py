"""fourreal runs in the viewer: deformable Gaussians at the times of the time slider.

A fourreal run holds the canonical Gaussians (``gaussians.ply``) and the temporal deformation
w(x, t) beside them (``deformation.safetensors``). The viewer's time slider shows one scene per
time step (as it does for a ``scene_t/`` folder); here each step is the canonical scene moved by
w(x, t) at that time, evaluated once when the viewer starts, and the render button draws
:class:`~wanderview.scenes.deformable.DeformableGaussianScene` at the step's time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from wanderview.share.run import RunFolder, SceneData

MAX_STEPS = 16


def slider_times(run: RunFolder, max_steps: int = MAX_STEPS) -> list[float]:
    """The times of the slider's steps: the reference frames' per-frame ``time`` in ``cameras.json``
    (the times w(x, t) was fitted to; ``max_steps`` evenly spaced over their range when there are
    more), else ``max_steps`` evenly spaced in [0, 1]."""
    times: list[float] = []
    try:
        frames = json.loads((run.root / "cameras.json").read_text(encoding="utf-8")).get("frames", [])
        times = sorted({float(f["time"]) for f in frames if isinstance(f, dict)
                        and str(f.get("file_path", "")).startswith("reference/")
                        and isinstance(f.get("time"), int | float)})  # fmt: skip
    except (OSError, ValueError, AttributeError):
        times = []
    if len(times) < 2:
        times = [0.0, 1.0]
    if len(times) > max_steps or len(times) == 2:
        lo, hi = times[0], times[-1]
        count = max_steps if len(times) > max_steps else min(max_steps, 9)
        times = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    return times


def load_deformable(path: Path):
    """The :class:`DeformableGaussianScene` of ``gaussians.ply`` and its ``deformation.safetensors``."""
    from wanderview.scenes.deformable import DeformableGaussianScene

    return DeformableGaussianScene.load(path)


@torch.no_grad()
def deformed_scenes(scene, base: SceneData, times: list[float]) -> list[SceneData]:
    """``base`` (the canonical Gaussians as viewer arrays) moved by the scene's w(x, t) at each time.

    Args:
        scene: a DeformableGaussianScene; base: its ``SceneData("gaussians", ...)``; times: T values.
    Returns:
        T scenes whose centres, quaternions and covariances are deformed (colours, opacities and
        scales are the canonical ones: the fields predict Δx and Δq only).
    """
    from wanderview.optim.deformation import apply_deformation
    from wanderview.share.splats import covariances

    out = []
    for t in times:
        dx, dq = scene.deformation(time=t)
        means, quats = apply_deformation(scene.means, scene.quats, dx, dq)
        quats = torch.nn.functional.normalize(quats, dim=-1).double().numpy()
        g = dict(base.gaussians or {})
        g["quats"] = quats.astype(np.float32)
        g["covariances"] = covariances(quats, g["scales"].astype(np.float64)).astype(np.float32)
        out.append(SceneData("gaussians", means.float().numpy(), base.colors, gaussians=g))
    return out
