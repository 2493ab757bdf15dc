"""3D Gaussian splatting with gsplat's functional contract (``gsplat.rasterization``).

One stateless function, :func:`rasterization`, projects N 3D Gaussians into C cameras and
alpha-composites them front to back. The math is 3DGS's / gsplat's "classic" mode:

- covariance Σ = R S Sᵀ Rᵀ from a (normalised) wxyz quaternion and scales, moved into the camera
  (``viewmats`` are world-to-camera, OpenCV axes), projected with the perspective Jacobian whose
  x/z, y/z are clamped to the frustum widened by 0.3·tan(fov/2) on each side;
- Σ2D + ``eps2d``·I, conic = Σ2D⁻¹; the mean projects with K (pixel centres at +0.5);
- a Gaussian touches the pixels inside its 3σ box (half-extents ceil(3·sqrt(Σ2D_xx)),
  ceil(3·sqrt(Σ2D_yy)), reported in ``meta["radii"]``) and is culled when its camera z is outside
  (near_plane, far_plane) or its box misses the image;
- α = min(0.99, o·exp(−σ)), σ = ½ dᵀ Σ2D⁻¹ d; α < 1/255 is skipped; Gaussians are taken in order
  of camera z and compositing stops before transmittance falls to 1e-4 (that Gaussian is left out);
- colours are given directly (N, D) / (C, N, D), or as SH coefficients (N, K, 3) with
  ``sh_degree`` ≤ 3, evaluated in the direction camera → mean; colour = SH + 0.5 clamped at 0.

Backends: ``"gsplat"`` (CUDA tensors, when gsplat imports), ``"cpu"`` (the tiled numba
compositor of :mod:`wanderview.render.gaussians_cpu`, analytic backward) and ``"reference"``
(:mod:`wanderview.render.gaussians_ref`, dense torch autograd: the judge of the other two).
The projection below is shared torch code with autograd; only compositing differs per backend.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch
import torch.nn.functional as F

RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
BACKENDS = ("auto", "cpu", "reference", "gsplat")

SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
_SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """(..., 4) wxyz quaternions (any norm, normalised here) -> (..., 3, 3) rotation matrices."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*quats.shape[:-1], 3, 3)


def covariances(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """World covariances Σ = R S Sᵀ Rᵀ. quats: (N, 4) wxyz; scales: (N, 3) -> (N, 3, 3)."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    # elementwise, not a batched 3x3 matmul: batched tiny matmuls are slow on the CPU
    return (M[..., :, None, :] * M[..., None, :, :]).sum(-1)


def eval_sh(degree: int, coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics of 3DGS, degree 0..3.

    Args:
        degree: how many bands to use (coefficients beyond (degree+1)² are ignored).
        coeffs: (..., K, 3) with K ≥ (degree+1)².
        dirs: (..., 3) view directions (normalised here).
    Returns:
        (..., 3) SH value (without the +0.5 offset).
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"sh_degree must be in 0..3, got {degree}")
    if coeffs.shape[-2] < (degree + 1) ** 2:
        raise ValueError(f"sh_degree {degree} needs {(degree + 1) ** 2} coefficients, got {coeffs.shape[-2]}")
    out = SH_C0 * coeffs[..., 0, :]
    if degree == 0:
        return out
    x, y, z = (t[..., None] for t in F.normalize(dirs, dim=-1).unbind(-1))
    out = (
        out - _SH_C1 * y * coeffs[..., 1, :] + _SH_C1 * z * coeffs[..., 2, :] - _SH_C1 * x * coeffs[..., 3, :]
    )
    if degree == 1:
        return out
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    c2 = _SH_C2
    out = (
        out
        + c2[0] * xy * coeffs[..., 4, :]
        + c2[1] * yz * coeffs[..., 5, :]
        + c2[2] * (2 * zz - xx - yy) * coeffs[..., 6, :]
        + c2[3] * xz * coeffs[..., 7, :]
        + c2[4] * (xx - yy) * coeffs[..., 8, :]
    )
    if degree == 2:
        return out
    c3 = _SH_C3
    return (
        out
        + c3[0] * y * (3 * xx - yy) * coeffs[..., 9, :]
        + c3[1] * xy * z * coeffs[..., 10, :]
        + c3[2] * y * (4 * zz - xx - yy) * coeffs[..., 11, :]
        + c3[3] * z * (2 * zz - 3 * xx - 3 * yy) * coeffs[..., 12, :]
        + c3[4] * x * (4 * zz - xx - yy) * coeffs[..., 13, :]
        + c3[5] * z * (xx - yy) * coeffs[..., 14, :]
        + c3[6] * x * (xx - 3 * yy) * coeffs[..., 15, :]
    )


def project_gaussians(
    means: torch.Tensor,
    covars: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EWA projection of 3D Gaussians into C pinhole cameras (differentiable).

    Args:
        means: (N, 3) world; covars: (N, 3, 3) world; viewmats: (C, 4, 4) world-to-camera;
        Ks: (C, 3, 3) pixels.
    Returns:
        means2d (C, N, 2) pixels; conics (C, N, 3) = (a, b, c) of Σ2D⁻¹ = [[a, b], [b, c]];
        depths (C, N) camera z; radii (C, N, 2) int32 3σ half-extents in x and y, 0 = culled.
    """
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]
    # R Σ Rᵀ as one GEMM per camera: vec(R Σ Rᵀ) = (R ⊗ R) vec(Σ)
    kron = torch.einsum("cij,clk->ciljk", R, R).reshape(-1, 9, 9)
    covars_c = torch.matmul(covars.reshape(1, -1, 9), kron.transpose(-1, -2))  # (C, N, 9)
    x, y, z = means_c.unbind(-1)
    in_depth = (z > near_plane) & (z < far_plane)
    # Culled Gaussians get a harmless z so that no inf/NaN reaches autograd through them.
    zs = torch.where(in_depth, z, torch.ones_like(z))
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    # The Jacobian is evaluated at the mean clamped to a widened frustum (3DGS): a Gaussian far
    # outside the view would otherwise get a huge, unstable footprint.
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    tx = zs * torch.minimum(torch.maximum(x / zs, -lim_x_neg), lim_x_pos)
    ty = zs * torch.minimum(torch.maximum(y / zs, -lim_y_neg), lim_y_pos)
    # J = [[j00, 0, j02], [0, j11, j12]]; Σ2D = J Σc Jᵀ written out (J is sparse)
    j00, j02 = fx / zs, -fx * tx / zs**2
    j11, j12 = fy / zs, -fy * ty / zs**2
    s00, s01, s02, s11, s12, s22 = (covars_c[..., i] for i in (0, 1, 2, 4, 5, 8))
    a = j00 * j00 * s00 + 2 * j00 * j02 * s02 + j02 * j02 * s22 + eps2d
    b = j00 * j11 * s01 + j00 * j12 * s02 + j02 * j11 * s12 + j02 * j12 * s22
    c = j11 * j11 * s11 + 2 * j11 * j12 * s12 + j12 * j12 * s22 + eps2d
    det = a * c - b * b
    det_safe = det.clamp(min=1e-10)
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    means2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], dim=-1)
    with torch.no_grad():
        radii = torch.stack(
            [torch.ceil(3.0 * a.clamp(min=0).sqrt()), torch.ceil(3.0 * c.clamp(min=0).sqrt())], -1
        )
        u, v = means2d.unbind(-1)
        inside = (u + radii[..., 0] > 0) & (u - radii[..., 0] < width)
        inside &= (v + radii[..., 1] > 0) & (v - radii[..., 1] < height)
        keep = in_depth & (det > 0) & inside & (radii.amax(-1) > radius_clip)
        radii = torch.where(keep[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
    return means2d, conics, z, radii


def gsplat_available() -> bool:
    """True when the gsplat package is importable (its kernels need CUDA tensors)."""
    return importlib.util.find_spec("gsplat") is not None


def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, sh_degree, render_mode) -> None:
    N = means.shape[0]
    if means.ndim != 2 or means.shape[-1] != 3:
        raise ValueError(f"means must be (N, 3), got {tuple(means.shape)}")
    if quats.shape != (N, 4):
        raise ValueError(f"quats must be ({N}, 4), got {tuple(quats.shape)}")
    if scales.shape != (N, 3):
        raise ValueError(f"scales must be ({N}, 3), got {tuple(scales.shape)}")
    if viewmats.ndim != 3 or viewmats.shape[-2:] != (4, 4):
        raise ValueError(f"viewmats must be (C, 4, 4), got {tuple(viewmats.shape)}")
    C = viewmats.shape[0]
    if Ks.shape != (C, 3, 3):
        raise ValueError(f"Ks must be ({C}, 3, 3), got {tuple(Ks.shape)}")
    if opacities.shape not in ((N,), (C, N)):
        raise ValueError(f"opacities must be ({N},) or ({C}, {N}), got {tuple(opacities.shape)}")
    if sh_degree is None:
        if colors.ndim not in (2, 3) or colors.shape[-2] != N or (colors.ndim == 3 and colors.shape[0] != C):
            raise ValueError(f"colors must be ({N}, D) or ({C}, {N}, D), got {tuple(colors.shape)}")
    elif colors.ndim not in (3, 4) or colors.shape[-3] != N or colors.shape[-1] != 3:
        raise ValueError(f"SH colors must be ({N}, K, 3) or ({C}, {N}, K, 3), got {tuple(colors.shape)}")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")


def rasterization(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    tile_size: int = 16,
    backgrounds: torch.Tensor | None = None,
    render_mode: RenderMode = "RGB",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Render N 3D Gaussians into C cameras (gsplat's ``rasterization`` contract, classic mode).

    Args:
        means: (N, 3) world positions.  quats: (N, 4) wxyz rotations (normalised inside).
        scales: (N, 3) standard deviations along the rotated axes (not logs).
        opacities: (N,) or (C, N) in [0, 1] (not logits).
        colors: (N, D) or (C, N, D) features; or SH coefficients (N, K, 3) / (C, N, K, 3) when
            ``sh_degree`` is given.
        viewmats: (C, 4, 4) world-to-camera (OpenCV axes).  Ks: (C, 3, 3) intrinsics in pixels.
        width, height: image size in pixels.
        backgrounds: (C, D) colour behind the Gaussians (colour channels only; depth gets 0).
        render_mode: "RGB" colours; "D" accumulated z; "ED" expected z (D / alpha);
            "RGB+D" / "RGB+ED" colours with the depth as the last channel.
        backend: "auto" (gsplat for CUDA tensors when it imports, else "cpu"), "cpu", "reference"
            or "gsplat".
    Returns:
        render_colors (C, H, W, D | 1 | D+1); render_alphas (C, H, W, 1); meta dict with
        ``means2d`` (C, N, 2) (call ``retain_grad()`` on it for density control), ``radii``
        (C, N, 2) int32, ``depths`` (C, N), ``conics`` (C, N, 3), ``opacities`` (C, N),
        ``width``, ``height``, ``tile_size``, ``n_cameras``, ``backend``.
    """
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, sh_degree, render_mode)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "gsplat" if means.is_cuda and gsplat_available() else "cpu"
    if backend == "gsplat":
        return _rasterize_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane,
            far_plane, radius_clip, eps2d, sh_degree, tile_size, backgrounds, render_mode,
        )  # fmt: skip
    C, N = viewmats.shape[0], means.shape[0]
    means2d, conics, depths, radii = project_gaussians(
        means,
        covariances(quats, scales),
        viewmats,
        Ks,
        width,
        height,
        eps2d,
        near_plane,
        far_plane,
        radius_clip,
    )
    if sh_degree is not None:
        campos = torch.linalg.inv(viewmats)[:, :3, 3]
        dirs = means[None, :, :] - campos[:, None, :]
        coeffs = colors if colors.ndim == 4 else colors[None].expand(C, *colors.shape)
        feats = (eval_sh(sh_degree, coeffs, dirs) + 0.5).clamp(min=0.0)
    else:
        feats = colors if colors.ndim == 3 else colors[None].expand(C, *colors.shape)
    opac = opacities if opacities.ndim == 2 else opacities[None].expand(C, N)
    n_color = feats.shape[-1]
    if render_mode in ("D", "ED"):
        feats = depths[..., None]
    elif render_mode in ("RGB+D", "RGB+ED"):
        feats = torch.cat([feats, depths[..., None]], dim=-1)
    bg = None
    if backgrounds is not None and render_mode not in ("D", "ED"):
        if backgrounds.shape != (C, n_color):
            raise ValueError(f"backgrounds must be ({C}, {n_color}), got {tuple(backgrounds.shape)}")
        bg = backgrounds if feats.shape[-1] == n_color else F.pad(backgrounds, (0, 1))
    from wanderview.render.gaussians_ref import Splats2D, composite_reference

    if backend == "reference":
        composite = composite_reference
    else:
        from wanderview.render.gaussians_cpu import composite_tiles as composite
    splats = Splats2D(means2d, conics, feats, opac, depths, radii, width, height, bg, tile_size)
    render_colors, render_alphas = composite(splats)
    if render_mode in ("ED", "RGB+ED"):
        expected = render_colors[..., -1:] / render_alphas.clamp(min=1e-10)
        render_colors = torch.cat([render_colors[..., :-1], expected], dim=-1)
    meta = {
        "means2d": means2d, "radii": radii, "depths": depths, "conics": conics, "opacities": opac,
        "width": width, "height": height, "tile_size": tile_size, "n_cameras": C, "backend": backend,
    }  # fmt: skip
    return render_colors, render_alphas, meta


def _rasterize_gsplat(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane, far_plane,
    radius_clip, eps2d, sh_degree, tile_size, backgrounds, render_mode,
):  # fmt: skip
    """gsplat's own CUDA rasteriser. Differences to the CPU path: gsplat clamps α at 0.999 (not
    0.99) and bins whole 16-px tiles (not the 3σ box), so images agree to a few 1e-3."""
    if not means.is_cuda:
        raise ValueError("the gsplat backend needs CUDA tensors; use backend='cpu' on the CPU")
    try:
        import gsplat
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ValueError(f"the gsplat backend needs the gsplat package ({exc})") from exc
    render_colors, render_alphas, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
        sh_degree=sh_degree, packed=False, tile_size=tile_size, backgrounds=backgrounds,
        render_mode=render_mode,
    )  # fmt: skip
    meta["backend"] = "gsplat"
    meta.setdefault("n_cameras", viewmats.shape[0])
    return render_colors, render_alphas, meta
