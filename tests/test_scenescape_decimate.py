"""SceneScape's memory bound: sub-pixel decimation on a camera moving back from a textured wall, and
the streamed PLY writer, each against a known answer."""

from __future__ import annotations

import torch

from wanderview.cameras.camera import Camera
from wanderview.io.mesh import load_mesh, write_ply_streamed
from wanderview.scenes.scenescape_mesh import SceneScapeMesh

torch.set_num_threads(1)
SIZE = 64


def _back(distance: float) -> torch.Tensor:
    """Camera-to-world pose of a camera moved ``distance`` backward (-z) from the origin."""
    pose = torch.eye(4)
    pose[2, 3] = -distance
    return pose


def _wall_mesh() -> tuple[SceneScapeMesh, Camera]:
    """A fronto-parallel wall at depth 2 seen by a 64 x 64 camera, one vertex per pixel, textured
    with smooth stripes (so colour errors show) ."""
    cam = Camera.from_focal(64.0, SIZE, SIZE)
    v, u = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    rgb = torch.stack([0.5 + 0.4 * torch.sin(u / 3.0), 0.5 + 0.4 * torch.cos(v / 4.0), (u + v) / (2 * SIZE)])
    depth = torch.full((1, SIZE, SIZE), 2.0)
    mesh = SceneScapeMesh(supersample=2)
    mesh.add_frame(rgb.float(), depth, cam, torch.ones(1, SIZE, SIZE, dtype=torch.bool))
    return mesh, cam


def test_content_a_receding_camera_sees_sub_pixel_is_merged_without_holes():
    mesh, cam = _wall_mesh()
    # the rest of the path: 2 and 6 units back, the wall at 4 and 8 -> 2 and 4 old pixels per pixel
    remaining = Camera.stack([cam.with_pose(_back(2.0)), cam.with_pose(_back(6.0))])
    before_faces = len(mesh)
    before = [mesh.render(remaining[k]) for k in range(2)]
    dropped = mesh.decimate(remaining, subpixel=1.0)
    after = [mesh.render(remaining[k]) for k in range(2)]
    # the closest remaining view sees the wall at half resolution: about a 2x2 merge, so at least
    # 2x fewer faces (a 4x merge minus the faces along cluster borders)
    assert dropped == before_faces - len(mesh)
    assert len(mesh) < before_faces / 2
    assert mesh.vertices.shape[0] < SIZE * SIZE / 2.5
    for b, a in zip(before, after, strict=True):
        # no holes open: every pixel the wall covered is still covered, except within a pixel of its
        # outline (the outline moves by less than a cluster)
        inner = torch.zeros_like(b.alpha, dtype=torch.bool)
        inner[:, 1:-1, 1:-1] = (b.alpha[:, :-2, 1:-1] > 0.99) & (b.alpha[:, 2:, 1:-1] > 0.99)
        inner[:, 1:-1, 1:-1] &= (b.alpha[:, 1:-1, :-2] > 0.99) & (b.alpha[:, 1:-1, 2:] > 0.99)
        assert int(inner.sum()) > 100
        assert bool((a.alpha[inner] > 0.99).all())
        # the colours stay those of the receding wall (the anti-aliased render already averages them)
        assert (a.rgb - b.rgb).abs()[inner.expand(3, -1, -1)].mean() < 0.03
        assert torch.allclose(a.depth[inner], b.depth[inner], rtol=1e-3)


def test_content_still_seen_at_full_resolution_is_kept():
    mesh, cam = _wall_mesh()
    faces = mesh.faces.clone()
    # the current camera sees one vertex per pixel: a half-pixel merge must not touch it
    assert mesh.decimate(Camera.stack([cam, cam.with_pose(_back(0.5))]), subpixel=0.5) == 0
    assert torch.equal(mesh.faces, faces)
    # a closer camera later on the path (it still holds the whole wall) keeps it as well, however
    # far the others go
    near_then_far = Camera.stack([cam.with_pose(_back(20.0)), cam.with_pose(_back(-0.2))])
    assert mesh.decimate(near_then_far, subpixel=0.5) == 0
    # without it, the far camera alone merges the wall down to a few clusters
    assert mesh.decimate(near_then_far[:1], subpixel=0.5) > 0.9 * len(faces)


def test_content_no_remaining_camera_sees_is_left_to_prune():
    mesh, cam = _wall_mesh()
    turned = torch.eye(4)
    turned[:3, :3] = torch.tensor([[-1.0, 0, 0], [0, 1, 0], [0, 0, -1]])  # looking away, 180 degrees
    far_away = cam.with_pose(turned)  # at the origin, the wall (z = 2) behind it
    assert mesh.decimate(Camera.stack([far_away]), subpixel=1.0) == 0
    assert mesh.prune(Camera.stack([far_away])) == 2 * (SIZE - 1) ** 2


def test_decimation_bounds_the_mesh_of_a_camera_that_keeps_moving_back():
    """Growth by re-adding the uncovered border every frame stays bounded: the face count after
    many frames is far below the sum of what was added."""
    mesh, cam = _wall_mesh()
    added = len(mesh)
    path = [cam.with_pose(_back(0.4 * k)) for k in range(1, 25)]
    for k, frame_cam in enumerate(path[:-1]):
        view = mesh.render(frame_cam)
        face_id = view.face_id
        holes = view.holes
        depth = torch.where(holes, torch.full_like(view.depth, 2.0), view.depth)
        rgb = torch.where(holes, torch.full_like(view.rgb, 0.3), view.rgb)
        added += mesh.add_frame(rgb, depth, frame_cam, holes, face_id)
        mesh.decimate(Camera.stack(path[k + 1 :]), subpixel=1.0)
    # the wall fills a 64 x 64 view: about 2 faces per pixel is the bound, plus cluster borders
    assert added > 5 * SIZE * SIZE * 2
    assert len(mesh) < 3 * SIZE * SIZE


def test_streamed_ply_round_trips_through_the_mesh_reader(tmp_path):
    mesh, _ = _wall_mesh()
    path = tmp_path / "wall.ply"
    write_ply_streamed(path, mesh.vertices, mesh.faces, mesh.colors, chunk=1000)  # several chunks
    vertices, faces, colors = load_mesh(path)
    assert torch.equal(vertices.float(), mesh.vertices)
    assert torch.equal(faces.long(), mesh.faces)
    assert (colors.float() - mesh.colors).abs().max() <= 0.5 / 255 + 1e-6
    mesh.save(tmp_path / "via_save.ply")
    assert (tmp_path / "via_save.ply").read_bytes() == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["via_save.ply", "wall.ply"]  # no temp left


def test_unique_rows_matches_torch_unique_including_the_wide_range_fallback():
    from wanderview.scenes.scenescape_mesh import unique_rows

    rows = torch.randint(-5, 6, (2000, 4))
    expected_unique, expected_inverse = torch.unique(rows, dim=0, return_inverse=True)
    unique, inverse = unique_rows(rows)
    assert torch.equal(unique, expected_unique) and torch.equal(inverse, expected_inverse)
    wide = rows.clone()
    wide[:, 1:] *= 1 << 40  # spans too large to pack into one int64: the generic sort is used
    unique, inverse = unique_rows(wide)
    expected_unique, expected_inverse = torch.unique(wide, dim=0, return_inverse=True)
    assert torch.equal(unique, expected_unique) and torch.equal(inverse, expected_inverse)
    assert unique_rows(rows[:0])[0].shape == (0, 4)
    huge = torch.tensor([[0, -(2**62)], [0, 2**62], [1, 0], [0, 2**62]])  # a span beyond int64
    unique, inverse = unique_rows(huge)
    expected_unique, expected_inverse = torch.unique(huge, dim=0, return_inverse=True)
    assert torch.equal(unique, expected_unique) and torch.equal(inverse, expected_inverse)
