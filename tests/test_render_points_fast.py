"""The numba fast path of the bilinear point splatter gives the torch reference's frames."""

from __future__ import annotations

import pytest
import torch

from wanderview.cameras.camera import Camera
from wanderview.cameras.trajectories import make_trajectory
from wanderview.data.synthetic import default_camera, make_scene, render_view
from wanderview.geometry.unproject import unproject_depth
from wanderview.render import points as P
from wanderview.render import points_fast


def _both(points, radii, colors, camera, band=0.05):
    ref = P._splat_bilinear(points, radii, colors, camera, 1e-4, band)
    fast = points_fast.splat_bilinear_fast(
        points, radii, colors, camera, 1e-4, band, P._STRONG, P._WEAK_FLAG, P.MAX_TENT_PX
    )
    return ref, fast


def _assert_close(ref, fast):
    (rgb_r, depth_r, w_r), (rgb_f, depth_f, w_f) = ref, fast
    covered = torch.isfinite(depth_r)
    assert covered.any()
    assert torch.equal(covered, torch.isfinite(depth_f)), "the same pixels are covered"
    # the same front surface everywhere; only summation order and exp's last bit differ
    torch.testing.assert_close(rgb_f, rgb_r, atol=1e-5, rtol=0)
    torch.testing.assert_close(depth_f[covered], depth_r[covered], atol=0, rtol=1e-5)
    torch.testing.assert_close(w_f, w_r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("magnify", [1.0, 6.0])
@pytest.mark.parametrize("frame", [0, 6])
def test_fast_splats_match_the_reference_on_a_moved_view(frame, magnify):
    scene = make_scene("boxes")
    src = default_camera("boxes", 96, 96)
    view = render_view(scene, src)
    dst = make_trajectory("orbit", 9, src, scene_scale=2.0)[frame]
    ok = torch.isfinite(view.depth.reshape(-1))
    points = unproject_depth(view.depth, src.K, src.cam_to_world).reshape(-1, 3)[ok]
    colors = view.rgb.reshape(3, -1).T[ok].contiguous()
    radii = P.capture_radii(view.depth, src.K)[ok] * magnify  # magnified: windows of up to 16 px
    _assert_close(*_both(points, radii, colors, dst))
    _assert_close(*_both(points, None, colors, dst))


def test_fast_splats_match_the_reference_on_random_points_with_occlusion_and_culling():
    torch.manual_seed(0)
    camera = Camera(torch.tensor([[40.0, 0, 32], [0, 40.0, 24], [0, 0, 1]]), torch.eye(4), 64, 48)
    n = 3000
    # points in front of, beside and behind the camera, with very different sizes and depths
    xyz = torch.randn(n, 3) * torch.tensor([1.5, 1.2, 2.0]) + torch.tensor([0.0, 0.0, 2.5])
    radii = torch.rand(n) * 0.05
    radii[::7] = float("inf")  # dropped like the reference drops them
    colors = torch.rand(n, 5)  # any channel count
    _assert_close(*_both(xyz, radii, colors, camera, band=0.02))


def test_render_points_uses_the_fast_path_and_keeps_the_reference_contract():
    camera = Camera(torch.tensor([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]), torch.eye(4), 16, 16)
    ys, xs = torch.meshgrid(torch.arange(16) + 0.5, torch.arange(16) + 0.5, indexing="ij")
    depth = torch.full((1, 16, 16), 2.0)
    points = unproject_depth(depth, camera.K, camera.cam_to_world).reshape(-1, 3)
    colors = torch.stack([xs.reshape(-1) / 16, ys.reshape(-1) / 16, torch.ones(256) * 0.5], 1)
    out = P.render_points(points, colors, camera, radii=P.capture_radii(depth, camera.K))
    # the same view reproduces the image (a grid of samples is bilinear interpolation)
    torch.testing.assert_close(out.rgb, colors.T.reshape(3, 16, 16), atol=1e-6, rtol=0)
    assert torch.all(out.depth == 2.0) and torch.all(out.alpha == 1.0)
    assert points_fast.available(points, colors) and not points_fast.available(points, colors.double())
