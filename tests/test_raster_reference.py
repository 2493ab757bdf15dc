"""The fast rasteriser against the plain reference rasteriser on random meshes (gsplat tests its CUDA
path against a torch reference the same way)."""

from __future__ import annotations

import pytest
import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.mesh_from_rgbd import grid_faces
from wanderview.geometry.unproject import pixel_grid, unproject_depth
from wanderview.render.mesh import rasterize
from wanderview.render.raster_reference import rasterize_reference


def _screen_bary_and_depth(vertices, face, camera, pixel):
    """float64 screen barycentrics (3,) and perspective depth of ``face`` at flat pixel index ``pixel``."""
    uv, z = camera.project(vertices.double())
    p = pixel_grid(camera.height, camera.width, dtype=torch.float64).reshape(-1, 2)[pixel]
    a, b, c = (uv[k] for k in face)

    def edge(p0, q0, r0):
        return (q0[0] - p0[0]) * (r0[1] - p0[1]) - (q0[1] - p0[1]) * (r0[0] - p0[0])

    area = edge(a, b, c)
    w = torch.stack([edge(b, c, p), edge(c, a, p), edge(a, b, p)]) / area
    return w, float(1.0 / (w / z[face]).sum())


def _assert_same_fragments(vertices, faces, camera):
    """Face ids agree except at genuine ties (a pixel centre within float rounding of an edge, or two
    faces at the same depth there); depth and barycentrics agree wherever the faces do."""
    fast, ref = rasterize(vertices, faces, camera), rasterize_reference(vertices, faces, camera)
    differ = (fast.face_id != ref.face_id).reshape(-1).nonzero().squeeze(1).tolist()
    assert len(differ) <= max(3, fast.face_id.numel() // 500), f"{len(differ)} pixels differ"
    for pixel in differ:
        ids = [int(f.face_id.reshape(-1)[pixel]) for f in (fast, ref)]
        on_edge, depths = False, []
        for face_index in ids:
            if face_index < 0:
                continue
            w, depth = _screen_bary_and_depth(vertices, faces[face_index].tolist(), camera, pixel)
            on_edge |= float(w.abs().min()) < 1e-5
            depths.append(depth)
        tie = len(depths) == 2 and abs(depths[0] - depths[1]) < 1e-5 * depths[0]
        assert on_edge or tie, f"pixel {pixel}: fast face {ids[0]}, reference face {ids[1]}"
    same = (fast.face_id == ref.face_id) & fast.mask
    assert int(same.sum()) > 0
    torch.testing.assert_close(fast.depth[same], ref.depth[same], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.bary[same], ref.bary[same], rtol=0, atol=2e-4)
    assert bool(torch.isinf(fast.depth[~fast.mask]).all()) and bool((fast.bary[~fast.mask] == 0).all())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_triangle_soup_matches_the_reference(seed):
    """Overlapping and intersecting triangles of every size (sub-pixel to larger than the image, so
    both the setup-pass and the windowed path draw), both windings, some crossing the near plane."""
    gen = torch.Generator().manual_seed(seed)
    camera = Camera.from_fov(60.0, 48, 40)
    n = 90
    box_size, box_low = torch.tensor([3.0, 2.4, 4.0]), torch.tensor([-1.5, -1.2, 1.0])
    centres = torch.rand(n, 3, generator=gen) * box_size + box_low
    sizes = torch.exp(torch.rand(n, 1, 1, generator=gen) * 6.0 - 5.0)  # 0.007 .. 2.7 world units
    vertices = (centres[:, None] + sizes * torch.randn(n, 3, 3, generator=gen)).reshape(-1, 3)
    vertices[:5, 2] = -0.5  # a few faces cross the near plane: culled, not clipped
    faces = torch.arange(3 * n).view(n, 3)
    _assert_same_fragments(vertices, faces, camera)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_grid_mesh_seen_from_elsewhere_matches_the_reference(seed):
    """A bumpy grid mesh (shared edges everywhere) from a moved, turned camera: no cracks and no
    double hits, so the fast path agrees with a rasteriser that simply tests every face."""
    gen = torch.Generator().manual_seed(seed)
    source = Camera.from_fov(60.0, 28, 22)
    depth = 2.0 + 0.4 * torch.rand(1, 22, 28, generator=gen)
    vertices = unproject_depth(depth, source.K, source.cam_to_world).reshape(-1, 3)
    faces = grid_faces(22, 28)
    pose = torch.eye(4)
    angle = float(torch.rand(1, generator=gen)) * 0.3 - 0.15  # a turn about y of up to 8.6 degrees
    cos, sin = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    pose[:3, :3] = torch.tensor([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])
    pose[:3, 3] = torch.rand(3, generator=gen) * 0.3 - 0.15
    target = Camera.from_fov(60.0, 40, 32).with_pose(pose)
    _assert_same_fragments(vertices, faces, target)
