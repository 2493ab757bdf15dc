"""Deformable 3D Gaussians (4Real): canonical Gaussians plus a temporal deformation field.

Files: the canonical Gaussians are the standard 3DGS PLY (``gaussians.ply``, what any splat
viewer opens: the scene at the canonical time); ``deformation.safetensors`` beside it holds the
weights of the temporal field w(x, t) and the per-frame field w(x, k), with their settings in the
safetensors metadata (``config``: JSON). :meth:`DeformableGaussianScene.load` reads both; the
``render`` command uses it for any run folder that has the two files, so ``--time`` moves the scene.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.errors import InputError
from wanderview.optim.deformation import FrameDeformation, TemporalDeformation, apply_deformation
from wanderview.render.gaussians import rasterization
from wanderview.scenes.gaussians import GaussianScene
from wanderview.types import RenderOutput

DEFORMATION_FILE = "deformation.safetensors"


class DeformableGaussianScene(GaussianScene):
    """A :class:`GaussianScene` (the canonical time) whose ``render(camera, time)`` deforms it.

    Attributes:
        temporal: w(x, t) or None (then every time renders the canonical scene).
        frames: the per-frame field w(x, k) of the freeze-time video, or None (kept for inspection;
            rendering at a time never uses it).
    """

    is_dynamic = True

    def __init__(self, *args, temporal: TemporalDeformation | None = None,
                 frames: FrameDeformation | None = None, **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.temporal, self.frames = temporal, frames

    @classmethod
    def wrap(cls, scene: GaussianScene, temporal=None, frames=None) -> DeformableGaussianScene:
        """The same parameters (shared tensors) with deformation fields."""
        return cls(*scene.params().values(), sh_degree=scene.sh_degree, temporal=temporal, frames=frames)

    @property
    def canonical_time(self) -> float:
        return self.temporal.canonical_time if self.temporal is not None else 0.0

    def deformation(self, time: float | None = None, frame: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Δx (N, 3), Δq (N, 4) at ``time`` (temporal field) or freeze ``frame`` (per-frame field)."""
        x = self.means
        if frame is not None and self.frames is not None:
            return self.frames(x, frame)
        if time is not None and self.temporal is not None:
            return self.temporal(x, time)
        return x.new_zeros(len(x), 3), x.new_zeros(len(x), 4)

    def rasterize_deformed(self, camera: Camera, dx: torch.Tensor, dq: torch.Tensor,
                           render_mode: str = "RGB", backend: str = "auto"):  # fmt: skip
        """gsplat-style outputs of the Gaussians moved by ``dx`` (N, 3) and rotated by ``dq`` (N, 4)."""
        cams = camera if camera.batch_shape else Camera.stack([camera])
        means, quats = apply_deformation(self.means, self.quats, dx, dq)
        return rasterization(
            means, quats, self.scales, self.opacities, self.sh, cams.world_to_cam.to(means),
            cams.K.to(means), cams.width, cams.height, sh_degree=self.sh_degree,
            render_mode=render_mode, backend=backend,
        )  # fmt: skip

    def render(self, camera: Camera, time: float | None = None, min_alpha: float = 0.5) -> RenderOutput:
        """Render one camera at ``time`` (None = the canonical time): rgb, depth, alpha as the base."""
        if camera.batch_shape:
            raise ValueError("render() needs a single camera; index the batch first")
        with torch.no_grad():
            dx, dq = self.deformation(time=time)
            colors, alphas, _ = self.rasterize_deformed(camera, dx, dq, render_mode="RGB+ED")
        rgb = colors[0, ..., :3].permute(2, 0, 1).clamp(0, 1)
        alpha = alphas[0].permute(2, 0, 1).clamp(0, 1)
        depth = torch.where(alpha >= min_alpha, colors[0, ..., 3:].permute(2, 0, 1),
                            torch.full_like(alpha, math.inf))  # fmt: skip
        return RenderOutput(rgb=rgb.contiguous(), depth=depth.contiguous(), alpha=alpha.contiguous())

    # ---- files --------------------------------------------------------------------------------
    def save_deformation(self, path: str | Path, config: dict) -> None:
        """Write both fields' weights and ``config`` (their constructor settings) as safetensors."""
        from safetensors.torch import save_file

        tensors = {}
        for name, field in (("temporal", self.temporal), ("frames", self.frames)):
            if field is not None:
                tensors.update(
                    {f"{name}.{k}": v.detach().cpu().contiguous() for k, v in field.state_dict().items()}
                )
        save_file(tensors, str(path), metadata={"config": json.dumps(config)})

    @classmethod
    def load(cls, path: str | Path) -> DeformableGaussianScene:
        """Read ``gaussians.ply`` and the ``deformation.safetensors`` beside it (if any)."""
        base = GaussianScene.load(path)
        file = Path(path).with_name(DEFORMATION_FILE)
        if not file.is_file():
            return cls.wrap(base)
        from safetensors import safe_open

        try:
            with safe_open(str(file), framework="pt") as handle:
                config = json.loads(handle.metadata()["config"])
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        except Exception as err:  # a damaged or foreign file: one sentence, not a traceback
            raise InputError(f"The deformation file {file} cannot be read ({type(err).__name__}).") from err
        fields = {}
        for name, kind in (("temporal", TemporalDeformation), ("frames", FrameDeformation)):
            if name not in config:
                continue
            field = kind(**{k: v for k, v in config[name].items()}, center=torch.zeros(3), radius=1.0)
            state = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(name + ".")}
            field.load_state_dict(state)
            fields[name] = field.eval()
        return cls.wrap(base, fields.get("temporal"), fields.get("frames"))
