"""Mesh rasteriser and point splatting: exact depth, occlusion, perspective-correct interpolation,
no holes or cracks under magnification and minification."""

from __future__ import annotations

import pytest
import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import pixel_grid, unproject_depth
from wanderview.render.mesh import Fragments, rasterize, rasterize_and_shade, render_mesh
from wanderview.render.points import capture_radii, render_points, splat_points
from wanderview.render.raster_kernels import select_bits


def grid_mesh(depth: torch.Tensor, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertices (H*W, 3) at the pixel centres of ``depth`` and two triangles per pixel quad."""
    _, H, W = depth.shape
    vertices = unproject_depth(depth, camera.K, camera.cam_to_world).reshape(-1, 3)
    idx = torch.arange(H * W).view(H, W)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, c, b], 1), torch.stack([b, c, d], 1)])
    return vertices, faces


def bumpy_depth(H: int, W: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    return (2.0 + 0.3 * torch.sin(6 * xx) * torch.cos(4 * yy))[None]


def moved(camera: Camera, tx: float, ty: float, tz: float) -> Camera:
    pose = camera.cam_to_world.clone()
    pose[:3, 3] += torch.tensor([tx, ty, tz])
    return camera.with_pose(pose)


def quad(z_near_corners: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    vertices = torch.tensor(z_near_corners, dtype=torch.float32)
    return vertices, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_fronto_parallel_plane_renders_exact_depth_everywhere():
    cam = Camera.from_fov(60.0, 48, 32)
    vertices, faces = quad([[-5, -5, 3.0], [5, -5, 3.0], [5, 5, 3.0], [-5, 5, 3.0]])
    frags = rasterize(vertices, faces, cam)
    assert isinstance(frags, Fragments)
    assert frags.face_id.shape == (32, 48) and frags.bary.shape == (32, 48, 3)
    assert bool(frags.mask.all())
    torch.testing.assert_close(frags.depth, torch.full((32, 48), 3.0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(frags.bary.sum(-1), torch.ones(32, 48), rtol=1e-5, atol=1e-5)
    assert float(frags.bary.min()) >= -1e-5


def test_tilted_plane_depth_and_colour_are_perspective_correct():
    cam = Camera.from_fov(70.0, 40, 30)
    # plane z = 2 + 0.8 x, seen obliquely; vertex colour red = (x + 2) / 4 is linear in world x
    corners = [[-2.0, -2.0], [2.0, -2.0], [2.0, 2.0], [-2.0, 2.0]]
    vertices = torch.tensor([[x, y, 2.0 + 0.8 * x] for x, y in corners])
    colors = torch.stack([(vertices[:, 0] + 2) / 4, torch.zeros(4), torch.ones(4) * 0.5], dim=1)
    out = render_mesh(vertices, torch.tensor([[0, 1, 2], [0, 2, 3]]), colors, cam)
    # analytic: ray direction r = K^-1 (u, v, 1); z = 2 / (1 - 0.8 r_x), x = r_x z
    uv = pixel_grid(30, 40)
    r_x = (uv[..., 0] - cam.cx) / cam.fx
    z = 2.0 / (1.0 - 0.8 * r_x)
    covered = out.alpha[0] > 0.5
    assert covered.float().mean() > 0.8
    torch.testing.assert_close(out.depth[0][covered], z[covered], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.rgb[0][covered], ((r_x * z + 2) / 4)[covered], rtol=1e-4, atol=1e-4)
    # affine (screen-space) interpolation would be off by far more than the tolerance
    assert float(((r_x * z + 2) / 4 - (uv[..., 0] / 40)).abs().max()) > 1e-2


@pytest.mark.parametrize("near_first", [True, False])
def test_near_triangle_wins_regardless_of_order(near_first):
    cam = Camera.from_fov(60.0, 32, 32)
    near = [[-1, -1, 2.0], [1, -1, 2.0], [0, 1, 2.0]]
    far = [[-3, -3, 5.0], [3, -3, 5.0], [0, 3, 5.0]]
    vertices = torch.tensor(near + far if near_first else far + near)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    colors = torch.zeros(6, 3)
    near_ids = slice(0, 3) if near_first else slice(3, 6)
    colors[near_ids, 0] = 1.0
    out = render_mesh(vertices, faces, colors, cam)
    centre = (slice(None), 16, 16)
    assert float(out.depth[centre]) == pytest.approx(2.0, abs=1e-5)
    assert float(out.rgb[0, 16, 16]) == pytest.approx(1.0)
    assert bool((out.depth[out.alpha > 0] >= 2.0 - 1e-5).all())
    assert int((out.depth == 5.0).sum()) > 0  # the far triangle still shows around the near one


@pytest.mark.parametrize(
    ("name", "shift"), [("same", (0, 0, 0)), ("forward", (0.05, 0.0, 1.2)), ("sideways", (0.13, 0.07, 0.0))]
)
def test_grid_mesh_has_no_cracks_when_magnified(name, shift):
    cam = Camera.from_fov(60.0, 96, 80)
    vertices, faces = grid_mesh(bumpy_depth(80, 96), cam)
    out = render_mesh(vertices, faces, torch.rand(vertices.shape[0], 3), moved(cam, *shift))
    # the grid spans pixel centres, so the outermost half pixel ring may be empty in the same view
    inner = out.alpha[0, 3:-3, 3:-3] if name != "same" else out.alpha[0, :-1, :-1]
    if name == "sideways":  # the view slid right: the surface ends near the right border
        inner = out.alpha[0, 3:-12, 3:-12]
    assert bool((inner == 1).all()), f"{int((inner < 1).sum())} holes in {name}"


@pytest.mark.parametrize("scale", [1.0, 2.0, 3.0])
def test_small_face_path_matches_the_windowed_path(monkeypatch, scale):
    """Faces with boxes of at most 2 x 2 pixel centres are drawn in the setup pass; with that pass
    switched off every face takes the windowed path. Both must give the same fragments, ties
    included: the grid's vertices sit on pixel centres, so its edges pass through pixel centres."""
    import wanderview.render.raster_kernels as kernels

    cam = Camera.from_fov(60.0, 48, 40)
    front, faces = grid_mesh(bumpy_depth(40, 48), cam)
    back = front * 1.3 + torch.tensor([0.05, -0.03, 0.0])  # a second, partly hidden layer
    vertices, faces = torch.cat([front, back]), torch.cat([faces, faces + front.shape[0]])
    view = cam.scaled(round(48 * scale), round(40 * scale))
    shifted = moved(view, 0.15, -0.1, 0.0)  # the mesh crosses the image borders
    fast = [rasterize(vertices, faces, v) for v in (view, shifted)]
    monkeypatch.setattr(kernels, "_SMALL_BOX", 0)
    windowed = [rasterize(vertices, faces, v) for v in (view, shifted)]
    for a, b in zip(fast, windowed):
        assert torch.equal(a.face_id, b.face_id)
        assert torch.allclose(a.depth, b.depth, rtol=1e-5)
    assert float(fast[0].mask.float().mean()) > 0.9 and 0.3 < float(fast[1].mask.float().mean()) < 0.95


def test_grid_mesh_has_no_holes_when_minified():
    cam = Camera.from_fov(60.0, 120, 100)
    depth = bumpy_depth(100, 120)
    vertices, faces = grid_mesh(depth, cam)
    far_cam = moved(cam, 0.02, 0.01, -4.0)  # triangles shrink to ~1/3 px
    out = render_mesh(vertices, faces, torch.rand(vertices.shape[0], 3), far_cam)
    uv, _ = far_cam.project(vertices)
    u, v = uv[:, 0].view(100, 120), uv[:, 1].view(100, 120)
    # the surface's silhouette is bounded by its border rows/columns; test well inside it
    x0, x1 = int(u[:, 0].max()) + 2, int(u[:, -1].min()) - 2
    y0, y1 = int(v[0].max()) + 2, int(v[-1].min()) - 2
    inner = out.alpha[0, y0:y1, x0:x1]
    assert inner.numel() > 400
    assert bool((inner == 1).all())
    assert float(out.alpha.mean()) < 0.5


def test_faces_behind_the_camera_are_culled():
    cam = Camera.from_fov(60.0, 16, 16)
    straddling = [[-1, -1, 2.0], [1, -1, 2.0], [0, 1, -1.0]]
    behind = [[-1, -1, -2.0], [1, -1, -2.0], [0, 1, -3.0]]
    vertices = torch.tensor(straddling + behind)
    out = render_mesh(vertices, torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.ones(6, 3), cam)
    assert float(out.alpha.sum()) == 0.0
    assert bool(torch.isinf(out.depth).all())


def test_supersampled_render_shape_range_and_coverage():
    cam = Camera.from_fov(60.0, 40, 30)
    vertices = torch.tensor([[-0.5, -0.5, 2.0], [0.7, -0.4, 2.0], [0.1, 0.6, 2.5]])
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    faces = torch.tensor([[0, 1, 2]])
    hard = render_mesh(vertices, faces, colors, cam)
    for blur in (True, False):
        soft = render_mesh(vertices, faces, colors, cam, supersample=2, blur=blur)
        assert soft.rgb.shape == (3, 30, 40) and soft.alpha.shape == (1, 30, 40)
        assert float(soft.rgb.min()) >= 0 and float(soft.rgb.max()) <= 1
        assert float(soft.alpha.min()) >= 0 and float(soft.alpha.max()) <= 1
        fractional = ((soft.alpha > 0.05) & (soft.alpha < 0.95)).sum()
        assert int(fractional) > 10  # anti-aliased edges have partial coverage
        assert abs(float(soft.alpha.sum() - hard.alpha.sum())) < 0.1 * float(hard.alpha.sum())
        finite = torch.isfinite(soft.depth)
        assert bool((soft.depth[finite] >= 2.0 - 1e-4).all() and (soft.depth[finite] <= 2.5 + 1e-4).all())


def test_render_mesh_under_no_grad_and_with_colour_gradients():
    cam = Camera.from_fov(60.0, 24, 24)
    vertices, faces = quad([[-2, -2, 3.0], [2, -2, 3.0], [2, 2, 3.0], [-2, 2, 3.0]])
    colors = torch.full((4, 3), 0.5, requires_grad=True)
    with torch.no_grad():
        out = render_mesh(vertices, faces, colors, cam)
    assert not out.rgb.requires_grad
    out = render_mesh(vertices, faces, colors, cam)
    out.rgb.sum().backward()
    assert colors.grad is not None and float(colors.grad.sum()) == pytest.approx(24 * 24 * 3, rel=1e-4)


def test_bit_select_matches_torch_where_bit_for_bit():
    special = torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), -float("inf"), float("nan"), 1e-45, -1e-45])
    a = torch.cat([special, torch.randn(64)])
    b = torch.cat([special.flip(0), torch.randn(64)])
    cond = torch.rand(a.shape) < 0.5
    expected = torch.where(cond, a, b).view(torch.int32)
    assert torch.equal(select_bits(cond, a, b).view(torch.int32), expected)
    # an int32 mask of -1 / 0, a scalar and a broadcast (2, N) operand
    assert torch.equal(select_bits(-cond.int(), a, b).view(torch.int32), expected)
    scalar = torch.where(cond, a, float("inf")).view(torch.int32)
    assert torch.equal(select_bits(cond, a, float("inf")).view(torch.int32), scalar)
    stacked = torch.stack([a, b])
    expected = torch.where(cond, stacked, 0.0).view(torch.int32)
    assert torch.equal(select_bits(cond, stacked, 0.0).view(torch.int32), expected)


def test_depth_gradients_reach_the_vertices():
    cam = Camera.from_fov(60.0, 20, 16)
    vertices, faces = quad([[-5, -5, 3.0], [5, -5, 3.0], [5, 5, 3.0], [-5, 5, 3.0]])
    vertices.requires_grad_(True)
    frags = rasterize(vertices, faces, cam)
    frags.depth.sum().backward()
    # moving the whole plane 1 along z moves every covered pixel's depth by 1
    assert float(vertices.grad[:, 2].sum()) == pytest.approx(20 * 16, rel=1e-4)


def test_bad_shapes_raise_value_error():
    cam = Camera.from_fov(60.0, 8, 8)
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        rasterize(torch.zeros(4, 2), torch.zeros(1, 3, dtype=torch.long), cam)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        render_points(torch.zeros(5, 3), torch.zeros(5, 4), cam)
    with pytest.raises(ValueError, match=r"colors must be \(V, C\)"):
        rasterize_and_shade(torch.rand(4, 3), torch.tensor([[0, 1, 2]]), Camera.from_fov(60.0, 8, 8),
                            torch.rand(3, 3))  # fmt: skip


@pytest.mark.parametrize("near_first", [True, False])
def test_points_z_test_keeps_the_nearest(near_first):
    cam = Camera.from_fov(60.0, 16, 16)
    # both on the ray through pixel (9, 9), away from pixel borders
    pts = torch.tensor([[0.1, 0.1, 1.0]]) * torch.tensor([[2.0], [4.0]])
    cols = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    if not near_first:
        pts, cols = pts.flip(0), cols.flip(0)
    for kernel, soft in (("square", False), ("square", True), ("bilinear", False)):
        out = render_points(pts, cols, cam, soft=soft, kernel=kernel)
        assert float(out.depth[0, 9, 9]) == pytest.approx(2.0)
        torch.testing.assert_close(out.rgb[:, 9, 9], torch.tensor([1.0, 0, 0]))
        if kernel == "square":
            assert float(out.alpha.sum()) == 1.0
        else:  # the tent spreads the near point over its 2x2 neighbouring pixel centres only
            assert int((out.alpha > 0).sum()) == 4


def test_points_same_view_reproduces_the_image_and_stay_hole_free_closer():
    cam = Camera.from_fov(60.0, 64, 48)
    depth = bumpy_depth(48, 64)
    rgb = torch.rand(3, 48, 64)
    pts = unproject_depth(depth, cam.K).reshape(-1, 3)
    cols = rgb.reshape(3, -1).T
    radii = capture_radii(depth, cam.K)
    same = render_points(pts, cols, cam, radii=radii)
    torch.testing.assert_close(same.rgb, rgb)
    torch.testing.assert_close(same.depth, depth)
    closer = moved(cam, 0.0, 0.0, 0.6)  # ~30 % closer: each point spreads over ~1.4 px
    hole_free = render_points(pts, cols, closer, radii=radii)
    assert bool((hole_free.alpha[0, 2:-2, 2:-2] == 1).all())
    one_pixel = render_points(pts, cols, closer, kernel="square")  # one pixel per point: holes
    assert float(one_pixel.alpha.mean()) < 0.8
    soft = render_points(pts, cols, closer, radii=radii, soft=True)
    assert bool((soft.alpha[0, 2:-2, 2:-2] == 1).all())
    assert float((soft.rgb - hole_free.rgb).abs().mean()) < 0.25


def test_soft_points_blend_the_front_surface_only():
    cam = Camera.from_fov(60.0, 8, 8)
    radius = torch.full((3,), 0.5)
    pts = torch.tensor([[0.0, 0.0, 2.0], [0.01, 0.0, 2.01], [0.0, 0.0, 3.0]])
    feats = torch.tensor([[1.0], [0.0], [5.0]])  # any channel count through splat_points
    out, depth, alpha = splat_points(pts, feats, cam, radii=radius, soft=True, kernel="square")
    value = float(out[0, 4, 4])
    assert 0.4 < value < 1.0  # both front points, the nearer weighted more; never the far one
    assert float(depth[0, 4, 4]) == pytest.approx(2.0)
