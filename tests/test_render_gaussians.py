"""The Gaussian rasteriser: analytic footprint, tiled path vs dense reference, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from wanderview.render.gaussians import SH_C0, covariances, eval_sh, project_gaussians, rasterization


def _scene(n=120, seed=0, dtype=torch.float32, behind=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.7 + torch.tensor([0.0, 0.0, 3.0])
    if behind:
        means[:behind, 2] = -torch.rand(behind, generator=g) - 0.2
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.12 + 0.02
    opac = torch.rand(n, generator=g) * 0.9 + 0.05
    colors = torch.rand(n, 3, generator=g)
    return [t.to(dtype) for t in (means, quats, scales, opac, colors)]


def _cams(C=1, W=40, H=30, dtype=torch.float32):
    K = torch.tensor([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]], dtype=dtype).expand(C, 3, 3).clone()
    views = torch.eye(4, dtype=dtype).repeat(C, 1, 1)
    for c in range(1, C):  # a second camera shifted right and turned a little
        ang = 0.1 * c
        views[c, :3, :3] = torch.tensor(
            [[math.cos(ang), 0, -math.sin(ang)], [0, 1, 0], [math.sin(ang), 0, math.cos(ang)]], dtype=dtype
        )
        views[c, 0, 3] = -0.2 * c
    return views, K, W, H


def _render_and_grad(params, views, K, W, H, backend, mode="RGB+ED", bg=True):
    leaves = [p.clone().requires_grad_() for p in params]
    bgs = torch.full((views.shape[0], 3), 0.25, dtype=params[0].dtype, requires_grad=True) if bg else None
    rc, ra, meta = rasterization(*leaves, views, K, W, H, backgrounds=bgs, render_mode=mode, backend=backend)
    weights = torch.linspace(-1, 1, rc.numel(), dtype=rc.dtype).reshape(rc.shape)
    loss = (rc * weights).sum() + (ra * ra).sum()
    loss.backward()
    grads = [p.grad for p in leaves] + ([bgs.grad] if bg else [])
    return rc.detach(), ra.detach(), grads, meta


def test_single_gaussian_renders_its_analytic_footprint():
    # An isotropic Gaussian on the optical axis: Σ2D = (f s / z)² I + 0.3 I exactly.
    f, z, s, o, W, H = 50.0, 4.0, 0.2, 0.8, 64, 48
    means = torch.tensor([[0.0, 0.0, z]])
    quats, scales = torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), s)
    K = torch.tensor([[[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]])
    var = (f * s / z) ** 2 + 0.3
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    r2 = (xs - W / 2) ** 2 + (ys - H / 2) ** 2
    expected = o * torch.exp(-0.5 * r2 / var)
    radius = math.ceil(3 * math.sqrt(var))
    inside = ((xs - W / 2).abs() <= radius) & ((ys - H / 2).abs() <= radius) & (expected >= 1 / 255)
    expected = torch.where(inside, expected, torch.zeros_like(expected))
    for backend in ("cpu", "reference"):
        rc, ra, meta = rasterization(
            means,
            quats,
            scales,
            torch.tensor([o]),
            torch.ones(1, 3),
            torch.eye(4)[None],
            K,
            W,
            H,
            backend=backend,
        )
        assert torch.allclose(ra[0, ..., 0], expected, atol=1e-5), backend
        assert torch.allclose(rc[0, ..., 1], expected, atol=1e-5)
        assert meta["radii"][0, 0].tolist() == [radius, radius]
        assert torch.allclose(meta["means2d"][0, 0], torch.tensor([W / 2, H / 2]))


@pytest.mark.parametrize("seed,mode,C", [(0, "RGB+ED", 1), (1, "RGB", 2), (2, "D", 1)])
def test_tiles_match_the_dense_reference_forward_and_gradients(seed, mode, C):
    params = _scene(n=150, seed=seed, behind=10)
    views, K, W, H = _cams(C=C, W=45, H=35)  # 45 x 35: partial tiles at the right and bottom
    bg = mode != "D"
    ref = _render_and_grad(params, views, K, W, H, "reference", mode, bg)
    fast = _render_and_grad(params, views, K, W, H, "cpu", mode, bg)
    assert torch.allclose(ref[0], fast[0], atol=2e-5, rtol=1e-4)
    assert torch.allclose(ref[1], fast[1], atol=2e-5)
    for g_ref, g_fast in zip(ref[2], fast[2]):
        if g_ref is None:  # colours do not reach a depth-only render
            assert g_fast is None and mode == "D"
            continue
        scale = g_ref.abs().max().clamp(min=1e-6)
        assert (g_ref - g_fast).abs().max() / scale < 1e-3
    assert ref[1].max() > 0.5  # the scene really covers the image


def test_one_thread_serial_kernels_equal_the_parallel_ones(monkeypatch):
    from wanderview.render import gaussians_cpu

    params = _scene(n=150, seed=3, behind=5)
    views, K, W, H = _cams(C=2, W=45, H=35)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert gaussians_cpu._kernels()[0] is gaussians_cpu._forward_serial
        serial = _render_and_grad(params, views, K, W, H, "cpu")
        # the parallel kernels, still on one thread where the machine (or numba) allows no more
        monkeypatch.setattr(gaussians_cpu, "_forward_serial", gaussians_cpu._forward)
        monkeypatch.setattr(gaussians_cpu, "_backward_serial", gaussians_cpu._backward)
        parallel = _render_and_grad(params, views, K, W, H, "cpu")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(serial[0], parallel[0]) and torch.equal(serial[1], parallel[1])
    for g_s, g_p in zip(serial[2], parallel[2]):
        assert torch.equal(g_s, g_p)
    assert serial[1].max() > 0.5


def test_gaussians_straddling_tiles_are_seamless():
    # One large Gaussian centred on a tile corner: tiles 16 and 8 must give identical pixels.
    params = [
        torch.tensor([[0.05, -0.02, 2.0]]), torch.tensor([[0.9, 0.1, 0.3, 0.2]]),
        torch.tensor([[0.5, 0.3, 0.05]]), torch.tensor([0.9]), torch.tensor([[0.2, 0.7, 0.4]]),
    ]  # fmt: skip
    views, K, W, H = _cams(W=32, H=32)
    K[:, 0, 2] = K[:, 1, 2] = 16.0
    out16, a16, _ = rasterization(*params, views, K, W, H, tile_size=16)
    out8, a8, meta = rasterization(*params, views, K, W, H, tile_size=8)
    ref, aref, _ = rasterization(*params, views, K, W, H, backend="reference")
    assert meta["radii"][0, 0].min() > 16  # it spans four 16-px tiles
    assert torch.equal(out16, out8) and torch.equal(a16, a8)
    assert torch.allclose(out16, ref, atol=1e-6)


def test_behind_camera_and_out_of_view_gaussians_are_culled():
    params = _scene(n=60, seed=3)
    extra = _scene(n=20, seed=4)
    extra[0][:10, 2] = -extra[0][:10, 2]  # behind the camera
    extra[0][10:, 0] += 50.0  # far right, outside the view
    views, K, W, H = _cams()
    both = [torch.cat([a, b]) for a, b in zip(params, extra)]
    rc1, ra1, _ = rasterization(*params, views, K, W, H)
    rc2, ra2, meta = rasterization(*both, views, K, W, H)
    assert torch.equal(meta["radii"][0, 60:], torch.zeros(20, 2, dtype=torch.int32))
    assert torch.allclose(rc1, rc2) and torch.allclose(ra1, ra2)
    assert torch.isfinite(meta["means2d"]).all()


def test_fast_path_gradients_match_finite_differences():
    params = _scene(n=25, seed=5, dtype=torch.float64)
    views, K, W, H = _cams(W=24, H=20, dtype=torch.float64)
    params[2] = params[2] * 2.0  # larger footprints: every Gaussian covers pixels

    def loss_of(ps):
        rc, ra, _ = rasterization(*ps, views, K, W, H, render_mode="RGB+ED", backend="cpu")
        w = torch.linspace(-1, 1, rc.numel(), dtype=rc.dtype).reshape(rc.shape)
        return (rc[..., :3] * w[..., :3]).sum() + 0.1 * (rc[..., 3:] * ra).sum() + ra.sum()

    leaves = [p.clone().requires_grad_() for p in params]
    loss_of(leaves).backward()
    g = torch.Generator().manual_seed(0)
    for which, leaf in enumerate(leaves):
        for _ in range(3):
            direction = torch.randn(leaf.shape, generator=g, dtype=torch.float64)
            eps = 1e-5
            plus = [p.detach().clone() for p in params]
            minus = [p.detach().clone() for p in params]
            plus[which] += eps * direction
            minus[which] -= eps * direction
            numeric = (loss_of(plus) - loss_of(minus)) / (2 * eps)
            analytic = (leaf.grad * direction).sum()
            assert abs(float(numeric - analytic)) <= 1e-4 * max(1.0, abs(float(numeric))), which


def test_sh_degree_zero_is_the_dc_colour_and_higher_bands_are_view_dependent():
    params = _scene(n=40, seed=6)
    views, K, W, H = _cams(C=2)
    sh = torch.zeros(40, 16, 3)
    sh[:, 0] = (params[4] - 0.5) / SH_C0
    rgb, _, _ = rasterization(*params, views, K, W, H)
    sh0, _, _ = rasterization(*params[:4], sh, views, K, W, H, sh_degree=0)
    assert torch.allclose(rgb, sh0, atol=1e-5)
    sh[:, 1:] = torch.randn(40, 15, 3) * 0.3
    dirs = torch.randn(40, 3)
    for degree in (1, 2, 3):  # a band changes the colour; the +0.5 / clamp is applied by rasterization
        assert not torch.allclose(eval_sh(degree, sh, dirs), eval_sh(degree - 1, sh, dirs))


def test_expected_depth_of_an_opaque_gaussian_is_its_depth():
    means = torch.tensor([[0.1, 0.0, 2.5]])
    args = (torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.3), torch.tensor([0.95]), torch.ones(1, 3))
    views, K, W, H = _cams()
    rc, ra, _ = rasterization(means, *args, views, K, W, H, render_mode="ED")
    centre = rc[0, H // 2, W // 2 + 1, 0]
    assert abs(float(centre) - 2.5) < 1e-4 and ra[0, H // 2, W // 2 + 1, 0] > 0.9


def test_means2d_gradient_is_available_for_density_control():
    params = [p.requires_grad_() for p in _scene(n=30, seed=7)]
    views, K, W, H = _cams()
    rc, ra, meta = rasterization(*params, views, K, W, H)
    meta["means2d"].retain_grad()
    rc.sum().backward()
    visible = meta["radii"][0].amax(-1) > 0
    assert meta["means2d"].grad.shape == (1, 30, 2)
    assert meta["means2d"].grad[0, visible].abs().sum() > 0


def test_projection_checks_shapes_and_covariance_is_symmetric():
    params = _scene(n=5)
    cov = covariances(params[1], params[2])
    assert torch.allclose(cov, cov.transpose(-1, -2))
    views, K, W, H = _cams()
    m2, conics, depths, radii = project_gaussians(params[0], cov, views, K, W, H)
    assert m2.shape == (1, 5, 2) and conics.shape == (1, 5, 3) and radii.dtype == torch.int32
    with pytest.raises(ValueError, match="quats"):
        rasterization(params[0], params[1][:3], *params[2:], views, K, W, H)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat's kernels need a CUDA GPU")
def test_gsplat_on_cuda_agrees_with_the_reference():  # pragma: no cover - no GPU on the CI machine
    pytest.importorskip("gsplat")
    params = _scene(n=200, seed=8)
    views, K, W, H = _cams(W=64, H=48)
    ref, aref, _ = rasterization(*params, views, K, W, H, backend="reference")
    cuda = [p.cuda() for p in params]
    out, alpha, meta = rasterization(*cuda, views.cuda(), K.cuda(), W, H)
    assert meta["backend"] == "gsplat"
    # gsplat clamps alpha at 0.999 and bins whole tiles: small differences are expected
    assert (out.cpu() - ref).abs().mean() < 5e-3 and (alpha.cpu() - aref).abs().mean() < 5e-3
