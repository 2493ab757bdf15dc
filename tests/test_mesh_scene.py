"""The one mesh scene and the render contract: straight colour and undivided depth at anti-aliased
edges (review bug 2), no cracks in smooth surfaces seen at grazing angles (review bug 5), and the
RenderOutput fields every renderer and scene fills."""

from __future__ import annotations

import pytest
import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.unproject import pixel_grid
from wanderview.render.mesh import render_mesh
from wanderview.scenes.base import GrowingScene
from wanderview.scenes.mesh import MeshScene
from wanderview.scenes.scenescape_mesh import SceneScapeMesh
from wanderview.types import RenderOutput


def _quad(half: float, z: float) -> tuple[torch.Tensor, torch.Tensor]:
    corners = [[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]]
    return torch.tensor(corners), torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_supersampled_edges_keep_their_colour():
    """Bug 2: a white square on nothing, 2x supersampled. Edge pixels are partly covered; the ones
    that count as known (alpha >= 0.5, not holes) must be white, not premultiplied grey."""
    cam = Camera.from_fov(60.0, 40, 32)
    vertices, faces = _quad(0.53, 2.0)
    for out in (
        render_mesh(vertices, faces, torch.ones(4, 3), cam, supersample=2),
        MeshScene(vertices, torch.ones(4, 3), faces, supersample=2).render(cam),
    ):
        partial = (out.alpha > 0.05) & (out.alpha < 0.95)
        assert int(partial.sum()) > 20, "the square's border is anti-aliased"
        known = ~out.holes
        assert float(out.rgb[:, known[0]].min()) > 0.99, "no dark fringe on known pixels"
        torch.testing.assert_close(out.premultiplied, out.rgb * out.alpha)


def test_supersampled_depth_is_never_between_two_surfaces():
    """Bug 2: at the border of a near square over a far wall, the depth is the near or the far
    surface's, never their coverage-weighted mean (flying depth)."""
    cam = Camera.from_fov(60.0, 40, 32)
    near_v, near_f = _quad(0.53, 2.0)
    far_v, far_f = _quad(20.0, 5.0)
    vertices = torch.cat([near_v, far_v])
    faces = torch.cat([near_f, far_f + 4])
    colors = torch.cat([torch.ones(4, 3), torch.zeros(4, 3)])
    out = render_mesh(vertices, faces, colors, cam, supersample=2)
    assert bool((out.alpha == 1).all())
    on_near = (out.depth - 2.0).abs() < 1e-4
    on_far = (out.depth - 5.0).abs() < 1e-4
    assert bool((on_near | on_far).all()), "flying depth between the surfaces"
    mixed = (out.rgb[0] > 0.05) & (out.rgb[0] < 0.95)
    assert int(mixed.sum()) > 20, "colour is still anti-aliased across the edge"
    # the pixel's face is the nearest sub-sample's: the near square wherever it covers a sub-sample
    assert bool(((out.face_id < 2) == on_near[0]).all())


def _grazing_plane(width: int = 64, height: int = 48, focal: float = 400.0):
    """A plane z = 2 + k x whose horizon lies 3.5 px beyond the right border of a narrow camera:
    the right third of the image sees it at grazing angles (cos < 0.05), but it is continuous."""
    cam = Camera.from_focal(focal, width, height)
    uv = pixel_grid(height, width)
    r_x = (uv[..., 0] - cam.cx) / cam.fx
    k = 1.0 / ((width + 3.5 - cam.cx) / focal)
    depth = (2.0 / (1.0 - k * r_x))[None]
    return cam, depth


def test_tilted_plane_seen_at_grazing_angles_has_no_holes():
    """Bug 5: the stretched-face rule alone cut the grazing part of a continuous plane; a face is
    removed only where it is stretched *and* spans a depth discontinuity."""
    cam, depth = _grazing_plane()
    rgb = torch.rand(3, *depth.shape[1:])
    scene = MeshScene.from_rgbd(rgb, depth, cam)
    # the same view (the outermost pixel centres lie on the grid's border: the tie rule may leave
    # them empty) and one moved forward and a little to the right, magnifying the grazing part
    moved = torch.eye(4)
    moved[:3, 3] = torch.tensor([0.05, 0.0, 0.5])
    for view, ring in ((cam, 1), (cam.with_pose(moved), 2)):
        holes = scene.render(view).holes[0, ring:-ring, ring:-ring]
        assert int(holes.sum()) == 0, f"{int(holes.sum())} holes in a continuous plane"
    assert len(scene) == 2 * 63 * 47, "every face of the plane stays"
    assert float(scene.render(cam.with_pose(moved)).alpha.mean()) > 0.9


def test_discontinuities_are_still_cut_where_sobel_misses_them():
    """Near content (a floor right below the camera) squeezes a far step below the Sobel mask's
    threshold; the jump test still cuts the stretched faces that bridge it."""
    cam = Camera.from_focal(40.0, 40, 40)
    depth = torch.full((1, 40, 40), 6.0)
    depth[..., :20] = 3.0  # a step 3 -> 6, 2.5 % of the disparity range below
    depth[:, 34:] = 0.1  # near content
    scene = MeshScene.from_rgbd(torch.rand(3, 40, 40), depth, cam)
    z = scene.vertices[scene.faces][..., 2]
    assert not bool(((z.amax(1) > 5.0) & (z.amin(1) < 4.0)).any()), "no face bridges the step"
    assert len(scene) > 0.8 * 2 * 39 * 39


def test_both_mesh_scenes_render_the_named_channels():
    cam = Camera.from_fov(60.0, 24, 20)
    depth = torch.full((1, 20, 24), 3.0)
    rgb = torch.rand(3, 20, 24)
    for cls in (MeshScene, SceneScapeMesh):
        scene = cls.from_rgbd(rgb, depth, cam)
        assert isinstance(scene, GrowingScene)
        out = scene.render(cam)
        assert isinstance(out, RenderOutput)
        assert out.face_id.shape == (20, 24) and out.face_id.dtype == torch.long
        assert out.observed.shape == (1, 20, 24) and float(out.observed.max()) == 0.0
        assert bool(((out.face_id >= 0) == torch.isfinite(out.depth[0])).all())
    stitched = SceneScapeMesh()
    stitched.add(rgb, depth, cam, observed=True)
    new = torch.zeros(1, 20, 24, dtype=torch.bool)
    new[..., 12:] = True
    before = stitched.vertices.shape[0]
    stitched.add(rgb, depth, cam, new)  # through the GrowingScene contract: stitched, not a patch
    assert stitched.vertices.shape[0] == before + 20 * 12
    assert float(stitched.render(cam).observed[0, 5:-5, 2:8].min()) > 0.99


def test_mesh_scene_state_round_trip_and_files(tmp_path):
    cam = Camera.from_fov(60.0, 16, 12)
    scene = MeshScene()
    scene.add(torch.rand(3, 12, 16), torch.full((1, 12, 16), 2.0), cam, observed=True)
    copy = MeshScene()
    copy.load_state_dict(scene.state_dict())
    assert torch.equal(copy.render(cam).rgb, scene.render(cam).rgb)
    assert torch.equal(copy.render(cam).observed, scene.render(cam).observed)
    scene.save(tmp_path / "mesh.ply")
    loaded = MeshScene.load(tmp_path / "mesh.ply")
    assert len(loaded) == len(scene)
    torch.testing.assert_close(loaded.render(cam).depth, scene.render(cam).depth)


def test_render_output_checks_its_optional_fields():
    rgb, one = torch.zeros(3, 4, 5), torch.zeros(1, 4, 5)
    out = RenderOutput(rgb, one, one)
    assert out.face_id is None and out.observed is None and out.features is None
    RenderOutput(rgb, one, one, face_id=torch.zeros(4, 5, dtype=torch.long), features=torch.zeros(7, 4, 5))
    with pytest.raises(ValueError, match="face_id"):
        RenderOutput(rgb, one, one, face_id=torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="observed"):
        RenderOutput(rgb, one, one, observed=torch.zeros(4, 5))
    with pytest.raises(ValueError, match="features"):
        RenderOutput(rgb, one, one, features=torch.zeros(2, 4, 4))
