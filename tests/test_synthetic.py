"""Tests of the procedural ray-cast ground truth: exact depth, view-independent colour."""

from __future__ import annotations

import math

import pytest
import torch

from wanderview.cameras.camera import Camera
from wanderview.data.synthetic import (
    SCENE_NAMES,
    Box,
    Plane,
    Scene,
    Sphere,
    Texture,
    cast_rays,
    default_camera,
    make_scene,
    render_view,
)
from wanderview.errors import WanderviewError


def _pixel_rays(camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) normalised camera-frame x/z and y/z of the pixel centres, computed in float64."""
    K = camera.K.double()
    v, u = torch.meshgrid(
        torch.arange(camera.height, dtype=torch.float64) + 0.5,
        torch.arange(camera.width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    return (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]


def test_single_plane_depth_is_exact_everywhere():
    camera = default_camera("single_plane", 64, 48)
    view = render_view(make_scene("single_plane"), camera)
    assert view.rgb.shape == (3, 48, 64) and view.depth.shape == (1, 48, 64)
    assert view.rgb.dtype == torch.float32 and view.depth.dtype == torch.float32
    assert torch.equal(view.depth, torch.full((1, 48, 64), 3.0))


def test_two_planes_depth_matches_closed_form_square():
    camera = default_camera("two_planes", 80, 60)
    view = render_view(make_scene("two_planes"), camera)
    xn, yn = _pixel_rays(camera)
    on_square = ((xn * 2.0).abs() <= 0.5) & ((yn * 2.0).abs() <= 0.5)
    expected = torch.where(on_square, 2.0, 5.0).float()[None]
    assert 0.1 < on_square.float().mean() < 0.6
    assert torch.equal(view.depth, expected)


def test_sphere_and_box_depth_match_closed_form():
    # odd size: the centre pixel's ray is the optical axis
    camera = Camera.from_fov(50.0, 33, 33)
    sphere = Scene("s", (Sphere((0.0, 0.0, 4.0), 1.0),))
    depth = render_view(sphere, camera).depth
    assert float(depth[0, 16, 16]) == pytest.approx(3.0, abs=1e-6)
    xn, yn = _pixel_rays(camera)
    # ray (x, y, 1) t hits |p - c| = 1 at t = (4 - sqrt(16 - (1 + r2) * 15)) / (1 + r2), r2 = x^2 + y^2
    r2 = xn**2 + yn**2
    disc = 16.0 - (1.0 + r2) * 15.0
    expected = torch.where(disc >= 0, (4.0 - disc.clamp_min(0).sqrt()) / (1.0 + r2), math.inf)
    assert torch.allclose(depth[0].double(), expected, rtol=1e-6)
    box = Scene("b", (Box((-0.5, -0.5, 2.0), (0.5, 0.5, 3.0)),))
    depth = render_view(box, camera).depth[0]
    front = ((xn * 2.0).abs() <= 0.5) & ((yn * 2.0).abs() <= 0.5)
    assert torch.equal(depth[front], torch.full_like(depth[front], 2.0))
    assert torch.isinf(depth[~front]).all()


def test_misses_are_empty_and_rays_behind_are_ignored():
    scene = make_scene("boxes")
    view = render_view(scene, default_camera("boxes", 64, 48))
    empty = torch.isinf(view.depth)
    assert empty[:, 0].any()  # sky above the finite back wall
    assert (view.rgb[:, empty[0]] == 0).all()
    # a plane behind the ray origin is not hit; a ray starting inside a box exits through its far face
    origins = torch.zeros(2, 3, dtype=torch.float64)
    dirs = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    behind = Scene("p", (Plane((0.0, 0.0, -1.0), (0.0, 0.0, 1.0)),))
    t, rgb, prim = cast_rays(behind, origins, dirs)
    assert torch.isinf(t).all() and (prim == -1).all() and (rgb == 0).all()
    inside = Scene("b", (Box((-1.0, -1.0, -1.0), (2.0, 1.0, 3.0)),))
    t, _, prim = cast_rays(inside, origins, dirs)
    assert t.tolist() == [3.0, 2.0] and prim.tolist() == [0, 0]


def _camera_through(point: torch.Tensor, eye: torch.Tensor) -> Camera:
    """A 31x31 camera at ``eye`` whose centre pixel's ray passes exactly through ``point``."""
    K = Camera.intrinsics_from_fov(40.0, 31, 31)
    return Camera.look_at(eye, point, K, 31, 31)


def test_colour_of_a_3d_point_is_the_same_from_two_cameras():
    scene = make_scene("boxes", seed=3)
    cam_a = default_camera("boxes", 48, 36)
    view_a = render_view(scene, cam_a)
    xn, yn = _pixel_rays(cam_a)
    points_cam = torch.stack([xn, yn, torch.ones_like(xn)], -1) * view_a.depth[0, ..., None].double()
    c2w = cam_a.cam_to_world.double()
    points = points_cam @ c2w[:3, :3].T + c2w[:3, 3]
    eye_b = torch.tensor([0.7, -0.5, 0.6])
    checked = 0
    for v in range(2, 36, 5):
        for u in range(3, 48, 7):
            if not torch.isfinite(view_a.depth[0, v, u]):
                continue
            point = points[v, u]
            view_b = render_view(scene, _camera_through(point.float(), eye_b))
            distance = float((point - eye_b.double()).norm())
            if abs(float(view_b.depth[0, 15, 15]) - distance) > 1e-3 * distance:
                continue  # the point is hidden from the second camera
            checked += 1
            assert torch.allclose(view_b.rgb[:, 15, 15], view_a.rgb[:, v, u], atol=2e-3), (u, v)
    assert checked >= 40


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_every_scene_renders_valid_images_deterministically(name):
    camera = default_camera(name, 40, 30)
    first = render_view(make_scene(name, seed=1), camera)
    again = render_view(make_scene(name, seed=1), camera)
    assert torch.equal(first.rgb, again.rgb) and torch.equal(first.depth, again.depth)
    assert first.rgb.min() >= 0 and first.rgb.max() <= 1 and first.rgb.std() > 0.05
    finite = torch.isfinite(first.depth)
    assert finite.float().mean() > 0.5 and (first.depth[finite] > 0).all()
    if name == "room":
        assert finite.all()  # closed room: every ray hits a wall


def test_seed_changes_the_scene_and_unknown_names_are_user_errors():
    camera = default_camera("boxes", 40, 30)
    assert not torch.equal(
        render_view(make_scene("boxes", 0), camera).rgb, render_view(make_scene("boxes", 1), camera).rgb
    )
    with pytest.raises(WanderviewError, match="unknown synthetic scene"):
        make_scene("castle")
    with pytest.raises(WanderviewError, match="unknown synthetic scene"):
        default_camera("castle", 10, 10)
    with pytest.raises(ValueError, match="single camera"):
        render_view(make_scene("room"), Camera.stack([camera, camera]))


@pytest.mark.parametrize("kind", ["solid", "checker", "stripes", "noise"])
def test_texture_colours_stay_between_the_two_colours(kind):
    coords = torch.randn(500, 3, dtype=torch.float64) * 3.0
    texture = Texture(kind, (0.2, 0.4, 0.6), (0.8, 0.6, 0.4), 0.5, seed=2)
    weight = texture.weight(coords)
    assert weight.min() >= 0 and weight.max() <= 1
    if kind != "solid":
        assert weight.std() > 0.1
    expected = (1 - weight[:, None]) * torch.tensor([0.2, 0.4, 0.6]) + weight[:, None] * torch.tensor(
        [0.8, 0.6, 0.4]
    )
    assert torch.allclose(texture.color(coords), expected.double())
    with pytest.raises(ValueError, match="texture kind"):
        Texture("marble").weight(coords)
