"""A static scene of 3D Gaussians (3DGS parameters), rendered by :mod:`wanderview.render.gaussians`.

Parameters are stored the way 3DGS optimises them: means, log-scales, wxyz quaternions (any norm),
opacity logits and SH coefficients (N, K, 3) with K = (max_sh_degree + 1)². ``sh_degree`` is the
degree currently in use (fitting raises it over time).

The dynamic-scene hook: every scene the ``render`` command can draw has ``render(camera,
time=None)`` and ``is_dynamic``. A static scene ignores ``time``; a dynamic one (fourreal's
deformable Gaussians) subclasses this and uses it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import unproject_depth
from wanderview.render.gaussians import SH_C0, rasterization
from wanderview.types import RenderOutput

PARAM_NAMES = ("means", "log_scales", "quats", "opacity_logits", "sh")


def rgb_to_sh_dc(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) colour in [0, 1] -> (..., 3) SH DC coefficient (colour = 0.5 + C0·dc)."""
    return (rgb - 0.5) / SH_C0


def knn_scale(points: torch.Tensor, k: int = 3, chunk: int = 4096) -> torch.Tensor:
    """(N, 3) -> (N,) root-mean-square distance to the ``k`` nearest other points (3DGS's init).

    Exact, in chunks of ``chunk`` query points (memory chunk·N).
    """
    n = points.shape[0]
    if n < 2:
        return torch.full((n,), 0.01, dtype=points.dtype, device=points.device)
    k = min(k, n - 1)
    out = []
    for start in range(0, n, chunk):
        d2 = torch.cdist(points[start : start + chunk], points).square()
        nearest = d2.topk(k + 1, dim=1, largest=False).values[:, 1:]  # drop the point itself
        out.append(nearest.mean(dim=1).sqrt())
    return torch.cat(out).clamp(min=1e-7)


class GaussianScene:
    """N 3D Gaussians with 3DGS parameters (see the module docstring).

    Attributes:
        means: (N, 3); log_scales: (N, 3); quats: (N, 4) wxyz; opacity_logits: (N,);
        sh: (N, K, 3); sh_degree: active SH degree (≤ max_sh_degree = sqrt(K) − 1).
    """

    is_dynamic = False

    def __init__(self, means, log_scales, quats, opacity_logits, sh, sh_degree: int | None = None):
        n = means.shape[0]
        shapes = {"means": (n, 3), "log_scales": (n, 3), "quats": (n, 4), "opacity_logits": (n,)}
        for name, shape in shapes.items():
            value = locals()[name]
            if tuple(value.shape) != shape:
                raise ValueError(f"{name} must be {shape}, got {tuple(value.shape)}")
        if sh.ndim != 3 or sh.shape[0] != n or sh.shape[2] != 3 or sh.shape[1] not in (1, 4, 9, 16):
            raise ValueError(f"sh must be ({n}, K, 3) with K in 1, 4, 9, 16, got {tuple(sh.shape)}")
        self.means, self.log_scales, self.quats = means, log_scales, quats
        self.opacity_logits, self.sh = opacity_logits, sh
        self.sh_degree = self.max_sh_degree if sh_degree is None else int(sh_degree)
        if not 0 <= self.sh_degree <= self.max_sh_degree:
            raise ValueError(f"sh_degree must be in 0..{self.max_sh_degree}, got {sh_degree}")

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_points(
        cls, points: torch.Tensor, colors: torch.Tensor, scales: torch.Tensor | None = None,
        max_sh_degree: int = 3, opacity: float = 0.1,
    ) -> GaussianScene:  # fmt: skip
        """Isotropic Gaussians at ``points`` (N, 3) with ``colors`` (N, 3) in [0, 1].

        ``scales`` (N,) world standard deviations; default: RMS distance to the 3 nearest points.
        """
        if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
            raise ValueError(
                f"points and colors must both be (N, 3), got {tuple(points.shape)}, {tuple(colors.shape)}"
            )
        points, colors = points.float(), colors.float()
        n = points.shape[0]
        scales = knn_scale(points) if scales is None else scales.float()
        sh = torch.zeros(n, (max_sh_degree + 1) ** 2, 3, device=points.device)
        sh[:, 0] = rgb_to_sh_dc(colors.clamp(0, 1))
        quats = torch.zeros(n, 4, device=points.device)
        quats[:, 0] = 1.0
        logit = math.log(opacity / (1 - opacity))
        logits = torch.full((n,), logit, device=points.device)
        return cls(points, scales.log()[:, None].repeat(1, 3), quats, logits, sh, sh_degree=0)

    @classmethod
    def from_rgbd(
        cls, frames: list[tuple[torch.Tensor, torch.Tensor, Camera]], stride: int = 2,
        max_sh_degree: int = 3, opacity: float = 0.1, footprint: float = 0.7,
    ) -> GaussianScene:  # fmt: skip
        """One Gaussian per pixel of a ``stride`` grid of each RGBD frame.

        Args:
            frames: [(rgb (3, H, W), depth (1, H, W) z-depth, inf/0 = unknown, camera)].
            footprint: standard deviation in units of the grid spacing at the pixel's depth
                (``stride``·depth / f), so neighbouring Gaussians overlap into a closed surface.
        """
        points, colors, scales = [], [], []
        for rgb, depth, camera in frames:
            valid = torch.isfinite(depth) & (depth > 0)
            safe = torch.where(valid, depth, torch.ones_like(depth))
            xyz = unproject_depth(safe, camera.K, camera.cam_to_world)  # (H, W, 3)
            sel = valid[0, ::stride, ::stride]
            points.append(xyz[::stride, ::stride][sel])
            colors.append(rgb[:, ::stride, ::stride].permute(1, 2, 0)[sel])
            focal = float(camera.K[..., 0, 0].reshape(-1)[0])
            scales.append(footprint * stride * safe[0, ::stride, ::stride][sel] / focal)
        if not points or sum(len(p) for p in points) == 0:
            raise ValueError("the RGBD frames have no pixel with a known depth")
        return cls.from_points(
            torch.cat(points), torch.cat(colors), torch.cat(scales), max_sh_degree, opacity
        )

    @classmethod
    def random(
        cls, n: int, low: torch.Tensor, high: torch.Tensor, seed: int = 0, max_sh_degree: int = 3
    ) -> GaussianScene:
        """``n`` grey-ish Gaussians uniform in the box [low, high] (3,) each (3DGS's random init)."""
        g = torch.Generator().manual_seed(seed)
        points = low + (high - low) * torch.rand(n, 3, generator=g)
        colors = torch.rand(n, 3, generator=g)
        return cls.from_points(points, colors, None, max_sh_degree)

    # ---- parameters ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def max_sh_degree(self) -> int:
        return math.isqrt(self.sh.shape[1]) - 1

    @property
    def scales(self) -> torch.Tensor:
        """(N, 3) standard deviations."""
        return self.log_scales.exp()

    @property
    def opacities(self) -> torch.Tensor:
        """(N,) opacities in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    def params(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def state_dict(self) -> dict:
        return {**{k: v.detach().clone() for k, v in self.params().items()}, "sh_degree": self.sh_degree}

    def load_state_dict(self, state: dict) -> None:
        for name in PARAM_NAMES:
            setattr(self, name, state[name].detach().clone())
        self.sh_degree = int(state["sh_degree"])

    # ---- rendering ----------------------------------------------------------------------------
    def rasterize(
        self, camera: Camera, render_mode: str = "RGB+ED", backgrounds: torch.Tensor | None = None,
        backend: str = "auto", time: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:  # fmt: skip
        """gsplat-style outputs for a single camera or a batch of C: see ``rasterization``.

        ``time`` is ignored here; a dynamic subclass deforms its Gaussians to it first.
        """
        cams = camera if camera.batch_shape else Camera.stack([camera])
        return rasterization(
            self.means, self.quats, self.scales, self.opacities, self.sh,
            cams.world_to_cam.to(self.means), cams.K.to(self.means), cams.width, cams.height,
            sh_degree=self.sh_degree, backgrounds=backgrounds, render_mode=render_mode, backend=backend,
        )  # fmt: skip

    def render(self, camera: Camera, time: float | None = None, min_alpha: float = 0.5) -> RenderOutput:
        """Render one camera. ``time`` is ignored (the scene is static).

        Returns:
            RenderOutput: rgb (3, H, W) over black, alpha (1, H, W), depth (1, H, W) the expected
            z-depth where alpha ≥ ``min_alpha``, else inf.
        """
        if camera.batch_shape:
            raise ValueError("render() needs a single camera; index the batch first")
        with torch.no_grad():
            colors, alphas, _ = self.rasterize(camera, time=time)
        rgb = colors[0, ..., :3].permute(2, 0, 1).clamp(0, 1)
        alpha = alphas[0].permute(2, 0, 1).clamp(0, 1)
        depth = torch.where(
            alpha >= min_alpha, colors[0, ..., 3:].permute(2, 0, 1), torch.full_like(alpha, math.inf)
        )
        return RenderOutput(rgb=rgb.contiguous(), depth=depth.contiguous(), alpha=alpha.contiguous())

    # ---- files --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the standard 3DGS PLY (see :mod:`wanderview.io.gaussian_ply`)."""
        from wanderview.io.gaussian_ply import write_gaussian_ply

        write_gaussian_ply(path, *(t.detach() for t in self.params().values()))

    @classmethod
    def load(cls, path: str | Path) -> GaussianScene:
        """Read a 3DGS PLY; every SH band in the file is used."""
        from wanderview.io.gaussian_ply import read_gaussian_ply

        ply = read_gaussian_ply(path)
        return cls(ply.means, ply.log_scales, ply.quats, ply.opacity_logits, ply.sh)
