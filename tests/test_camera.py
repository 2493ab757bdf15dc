"""The Camera class: construction, batching, poses and projection."""

from __future__ import annotations

import math

import pytest
import torch

from wanderview.cameras.camera import Camera, look_at_pose
from wanderview.geometry.unproject import unproject_depth


def test_from_fov_gives_the_horizontal_field_of_view():
    cam = Camera.from_fov(90.0, 200, 100)
    assert cam.fx.item() == pytest.approx(100.0) and cam.fy.item() == pytest.approx(100.0)
    assert (cam.cx.item(), cam.cy.item()) == (100.0, 50.0)
    assert cam.fov_x_deg == pytest.approx(90.0)
    with pytest.raises(ValueError, match="fov"):
        Camera.from_fov(180.0, 10, 10)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        Camera(torch.eye(3), torch.eye(4)[:3], 8, 8)
    with pytest.raises(ValueError, match="batch shapes differ"):
        Camera(torch.eye(3).expand(2, 3, 3), torch.eye(4).expand(3, 4, 4), 8, 8)
    with pytest.raises(ValueError, match="positive"):
        Camera(torch.eye(3), torch.eye(4), 0, 8)


def test_batching_stack_index_iterate():
    a = Camera.from_focal(10.0, 16, 8)
    b = a.with_pose(torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0])))
    batch = Camera.stack([a, b])
    assert len(batch) == 2 and batch.batch_shape == (2,)
    assert torch.equal(batch[1].cam_to_world, b.cam_to_world)
    assert [c.width for c in batch] == [16, 16]
    shared_K = Camera(torch.eye(3), torch.eye(4).expand(5, 4, 4), 4, 4)  # K broadcast to the batch
    assert shared_K.K.shape == (5, 3, 3)
    with pytest.raises(ValueError, match="share an image size"):
        Camera.stack([a, Camera.from_focal(10.0, 8, 8)])
    with pytest.raises(TypeError):
        len(a)


def test_look_at_points_the_optical_axis_at_the_target_with_up_up():
    pose = look_at_pose([1.0, -2.0, 0.5], [0.0, 0.0, 4.0])
    R = pose[:3, :3]
    assert torch.allclose(R @ R.T, torch.eye(3), atol=1e-6) and torch.det(R) == pytest.approx(1.0, abs=1e-6)
    direction = torch.tensor([-1.0, 2.0, 3.5])
    assert torch.allclose(R[:, 2], direction / direction.norm(), atol=1e-6)
    assert R[1, 1] > 0  # image down has a positive world-y component: world up (-y) appears up
    assert torch.allclose(look_at_pose([0, 0, 0], [0, 0, 1]), torch.eye(4))
    cam = Camera.look_at([0, 0, 0], [0, 0, 2], torch.eye(3), 4, 4)
    assert torch.allclose(cam.cam_to_world, torch.eye(4))
    with pytest.raises(ValueError, match="parallel"):
        look_at_pose([0, 0, 0], [0, 1, 0])


def test_project_inverts_unproject():
    pose = look_at_pose([0.3, -0.2, -1.0], [0.0, 0.0, 2.0])
    cam = Camera.from_fov(60.0, 12, 9, pose)
    depth = 1.0 + torch.rand(1, 9, 12)
    points = unproject_depth(depth, cam.K, cam.cam_to_world).reshape(-1, 3)
    uv, z = cam.project(points)
    v, u = torch.meshgrid(torch.arange(9) + 0.5, torch.arange(12) + 0.5, indexing="ij")
    assert torch.allclose(uv, torch.stack([u, v], -1).reshape(-1, 2), atol=1e-4)
    assert torch.allclose(z, depth.reshape(-1), atol=1e-5)
    with pytest.raises(ValueError, match="single camera"):
        Camera.stack([cam, cam]).project(points)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        cam.project(points[:, :2])


def test_world_to_cam_center_and_scaled():
    pose = look_at_pose([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    cam = Camera.from_focal(50.0, 64, 48, pose)
    assert torch.allclose(cam.world_to_cam @ cam.cam_to_world, torch.eye(4), atol=1e-6)
    assert torch.equal(cam.inverse(), cam.world_to_cam)
    assert torch.equal(cam.center, torch.tensor([1.0, 2.0, 3.0]))
    half = cam.scaled(32, 24)
    assert (half.width, half.height) == (32, 24)
    assert torch.allclose(half.K, torch.tensor([[25.0, 0, 16], [0, 25.0, 12], [0, 0, 1]]))
    assert half.fov_x_deg == pytest.approx(cam.fov_x_deg)
    batch = Camera.stack([cam, cam]).scaled(128, 96)
    assert batch.K.shape == (2, 3, 3) and batch.fx[1].item() == 100.0


def test_a_point_projects_where_the_pinhole_model_says():
    cam = Camera.from_focal(100.0, 200, 100)
    uv, z = cam.project(torch.tensor([[1.0, -0.5, 2.0]]))
    assert torch.allclose(uv, torch.tensor([[150.0, 25.0]])) and z.item() == 2.0
    turned = cam.with_pose(look_at_pose([0, 0, 0], [math.sin(0.3), 0, math.cos(0.3)]))
    uv, _ = turned.project(torch.tensor([[math.sin(0.3), 0.0, math.cos(0.3)]]))
    assert torch.allclose(uv, torch.tensor([[100.0, 50.0]]), atol=1e-4)
