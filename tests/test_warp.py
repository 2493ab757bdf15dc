"""Warping with real ground truth: the Middlebury motorcycle pair (true depth, calibrated cameras)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wanderview.cameras.camera import Camera
from wanderview.data.samples import middlebury_pair
from wanderview.geometry.unproject import unproject_depth
from wanderview.geometry.warp import backward_warp
from wanderview.render.mesh import render_mesh
from wanderview.render.warp import forward_warp


@pytest.fixture(scope="module")
def pair():
    return middlebury_pair()


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    mse = ((a - b) ** 2).mean(dim=0)[mask[0]].mean()
    return -10.0 * math.log10(float(mse))


def smooth_interior(depth: torch.Tensor, radius: int = 2, rel: float = 0.03) -> torch.Tensor:
    """(1, H, W) bool: rendered pixels whose (2r+1)^2 neighbourhood is rendered and within ``rel``
    relative depth - i.e. away from occlusion boundaries and holes, where a single-view warp cannot
    be right (the right camera sees surfaces the left one never did)."""
    finite = torch.where(torch.isfinite(depth), depth, torch.full_like(depth, 1e6))
    k = 2 * radius + 1
    hi = F.max_pool2d(finite[None], k, stride=1, padding=radius)[0]
    lo = -F.max_pool2d(-finite[None], k, stride=1, padding=radius)[0]
    return (hi - lo <= rel * lo) & torch.isfinite(depth)


def test_sample_calibration_is_consistent(pair):
    assert pair.left.shape == pair.right.shape == (3, 500, 741)
    assert pair.left_depth.shape == (1, 500, 741)
    known = torch.isfinite(pair.left_depth)
    assert 0.5 < float(known.float().mean()) < 1.0  # some disparities are unknown (inf)
    assert 1.5 < float(pair.left_depth[known].min()) and float(pair.left_depth[known].max()) < 6.0
    baseline = pair.right_camera.center - pair.left_camera.center
    torch.testing.assert_close(baseline, torch.tensor([0.193001, 0, 0]))
    # projecting a left pixel's 3D point into the right camera moves it by exactly -disparity
    points = unproject_depth(pair.left_depth, pair.left_camera.K).reshape(-1, 3)[known.reshape(-1)]
    uv_left, _ = pair.left_camera.project(points)
    uv_right, _ = pair.right_camera.project(points)
    shift = uv_left[:, 0] - uv_right[:, 0]
    torch.testing.assert_close(shift, pair.left_disp[known], rtol=1e-4, atol=2e-3)


def test_forward_warp_left_to_right_matches_the_right_photo(pair):
    out = forward_warp(pair.left, pair.left_depth, pair.left_camera, pair.right_camera)
    covered = out.alpha > 0.5
    assert float(covered.float().mean()) > 0.6
    interior = smooth_interior(out.depth) & covered
    assert float(interior.float().mean()) > 0.5
    value = psnr(out.rgb, pair.right, interior)
    assert value >= 26.0, value
    # the same warp with the wrong sign of the baseline must be far worse (the test can fail)
    wrong = pair.right_camera.with_pose(torch.linalg.inv(pair.right_camera.cam_to_world))
    bad = forward_warp(pair.left, pair.left_depth, pair.left_camera, wrong)
    bad_mask = (bad.alpha > 0.5) & smooth_interior(bad.depth)
    assert psnr(bad.rgb, pair.right, bad_mask) < value - 6.0


def test_mesh_render_left_to_right_matches_the_right_photo(pair):
    H, W = pair.left_depth.shape[1:]
    vertices = unproject_depth(pair.left_depth, pair.left_camera.K).reshape(-1, 3)
    idx = torch.arange(H * W).view(H, W)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, c, b], 1), torch.stack([b, c, d], 1)])
    depth = pair.left_depth.reshape(-1)[faces]  # (F, 3)
    # drop faces with an unknown corner or spanning a depth discontinuity (they would smear colour
    # across disocclusions)
    keep = torch.isfinite(depth).all(dim=1) & (depth.amax(dim=1) <= 1.03 * depth.amin(dim=1))
    vertices = torch.where(torch.isfinite(vertices), vertices, torch.zeros_like(vertices))
    colors = pair.left.reshape(3, -1).T
    out = render_mesh(vertices, faces[keep], colors, pair.right_camera)
    interior = smooth_interior(out.depth) & (out.alpha > 0.5)
    assert float(interior.float().mean()) > 0.5
    assert psnr(out.rgb, pair.right, interior) >= 26.0


def test_backward_warp_identity_and_validity():
    cam = Camera.from_fov(60.0, 40, 30)
    image = torch.rand(3, 30, 40)
    depth = torch.full((1, 30, 40), 2.0)
    depth[0, :3, :3] = float("inf")
    warped, valid = backward_warp(image, depth, cam, cam)
    assert valid.shape == (1, 30, 40) and valid.dtype == torch.bool
    assert not bool(valid[0, :3, :3].any()) and bool(valid[0, 3:, 3:].all())
    torch.testing.assert_close(warped[:, 3:, 3:], image[:, 3:, 3:], rtol=1e-5, atol=1e-5)
    # a camera slid sideways sees the shifted image; points that leave the source are invalid
    pose = torch.eye(4)
    pose[0, 3] = 2.0 * 4 / float(cam.fx)  # 4 pixels at depth 2
    shifted, valid = backward_warp(image, torch.full((1, 30, 40), 2.0), cam, cam.with_pose(pose))
    torch.testing.assert_close(shifted[:, :, :-4], image[:, :, 4:], rtol=1e-4, atol=1e-4)
    assert not bool(valid[0, :, -3:].any())


def test_backward_warp_right_photo_into_left_view(pair):
    warped, valid = backward_warp(pair.right, pair.left_depth, pair.right_camera, pair.left_camera)
    mask = valid & smooth_interior(pair.left_depth)
    assert psnr(warped, pair.left, mask) >= 24.0


def test_forward_warp_same_camera_is_identity():
    cam = Camera.from_fov(60.0, 40, 30)
    rgb = torch.rand(3, 30, 40)
    depth = 2.0 + torch.rand(1, 30, 40)
    out = forward_warp(rgb, depth, cam, cam)
    torch.testing.assert_close(out.rgb, rgb)
    torch.testing.assert_close(out.depth, depth)
    with pytest.raises(ValueError, match="depth"):
        forward_warp(rgb, depth[:, :10], cam, cam)
