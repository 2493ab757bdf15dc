"""SceneScape's mesh: ground-truth re-rendering, stitching, the stretched-triangle filter, pruning and
the floating-artifact mask, each on a constructed case with a known answer."""

from __future__ import annotations

import math

import torch

from wanderview.cameras.camera import Camera
from wanderview.data.synthetic import default_camera, make_scene, render_view
from wanderview.render.warp import splat
from wanderview.scenes.scenescape_mesh import SceneScapeMesh, floating_artifact_mask


def _pose(back: float, yaw_deg: float = 0.0, right: float = 0.0) -> torch.Tensor:
    """A camera-to-world pose relative to the default room camera's pose."""
    a = math.radians(yaw_deg)
    rel = torch.eye(4)
    rel[:3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rel[:3, 3] = torch.tensor([right, 0.0, -back])
    return rel


def _seen_from(points: torch.Tensor, camera: Camera, depth: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the world points are inside ``camera`` and not occluded in its depth map (1, H, W)."""
    uv, z = camera.project(points)
    u, v = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    inside = (z > 0) & (u >= 1) & (u < camera.width - 1) & (v >= 1) & (v < camera.height - 1)
    seen = torch.zeros_like(inside)
    # 3x3 neighbourhood: a point near a silhouette is visible if any neighbour has the same depth
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            d = depth[0, (v + dv).clamp(0, camera.height - 1), (u + du).clamp(0, camera.width - 1)]
            seen |= inside & ((d - z).abs() < 0.01 * z)
    return seen


def _world_points(depth: torch.Tensor, camera: Camera) -> torch.Tensor:
    from wanderview.geometry.unproject import unproject_depth

    return unproject_depth(depth, camera.K, camera.cam_to_world).reshape(-1, 3)


def test_mesh_rerenders_ground_truth_views_on_covisible_pixels():
    scene = make_scene("room", seed=1)
    cam0 = default_camera("room", 96, 72)
    cams = [
        cam0.with_pose(cam0.cam_to_world @ _pose(b, y)) for b, y in [(0.0, 0.0), (0.35, 4.0), (0.7, -3.0)]
    ]
    views = [render_view(scene, c) for c in cams]
    mesh = SceneScapeMesh(supersample=2)
    mesh.add_frame(views[0].rgb, views[0].depth, cams[0], torch.ones(1, 72, 96, dtype=torch.bool))
    seen_by = [cams[0]]
    for k in (1, 2):
        out = mesh.render(cams[k])
        face_id = out.face_id
        gt = views[k]
        points = _world_points(gt.depth, cams[k])
        covisible = torch.zeros(72 * 96, dtype=torch.bool)
        for c, v in zip(seen_by, views):
            covisible |= _seen_from(points, c, v.depth)
        covisible = covisible.view(1, 72, 96) & (out.alpha > 0.99)
        assert covisible.float().mean() > 0.5, "most of the next view was seen before"
        colour_error = (out.rgb - gt.rgb).abs().mean(0, keepdim=True)[covisible]
        depth_error = ((out.depth - gt.depth).abs() / gt.depth)[covisible]
        assert float(colour_error.median()) < 0.02 and float(colour_error.mean()) < 0.05
        assert float(depth_error.median()) < 0.005 and float(depth_error.quantile(0.95)) < 0.05
        # no inpainting: the holes get the exact ground truth, stitched onto the mesh
        holes = out.holes
        assert bool(holes.any())
        depth = torch.where(holes, gt.depth, out.depth)
        mesh.add_frame(torch.where(holes, gt.rgb, out.rgb), depth, cams[k], holes, face_id)
        seen_by.append(cams[k])


def test_stitching_leaves_no_crack_between_old_and_new_content():
    cam0 = Camera.from_focal(40.0, 48, 48)
    cam1 = cam0.with_pose(_pose(0.37, right=0.05))
    left = torch.zeros(1, 48, 48, dtype=torch.bool)
    left[..., :24] = True

    def build(stitch: bool) -> SceneScapeMesh:
        mesh = SceneScapeMesh(supersample=1)
        mesh.add_frame(torch.rand(3, 48, 48), torch.full((1, 48, 48), 3.0), cam0, left)
        out = mesh.render(cam1)
        face_id = out.face_id
        holes = out.holes
        depth = torch.where(holes, torch.full_like(out.depth, 3.37), out.depth)  # the plane z = 3 in cam1
        mesh.add_frame(torch.rand(3, 48, 48), depth, cam1, holes, face_id if stitch else None)
        return mesh

    stitched, plain = build(True), build(False)
    stitched.supersample = plain.supersample = 4
    coverage = stitched.render(cam1).alpha[0, 8:-8, 8:-8]
    assert float(coverage.min()) > 0.99, "a plane built from two frames renders without a crack"
    assert float(plain.render(cam1).alpha[0, 8:-8, 8:-8].min()) < 0.9, (
        "the test sees a crack when there is one"
    )


def test_stretched_faces_across_a_depth_step_are_removed():
    cam = Camera.from_focal(40.0, 40, 40)
    depth = torch.full((1, 40, 40), 6.0)
    depth[..., :20] = 1.5  # a near plane on the left half, a far plane on the right
    mesh = SceneScapeMesh(supersample=1)
    mesh.add_frame(torch.rand(3, 40, 40), depth, cam, torch.ones(1, 40, 40, dtype=torch.bool))
    z = mesh.vertices[mesh.faces][..., 2]  # (F, 3) depth of each face's corners
    assert not bool(((z.amax(1) - z.amin(1)) > 1.0).any()), "no face bridges the step"
    assert len(mesh) > 0.9 * 2 * 39 * 39, "faces on the planes stay"
    # a steep but continuous floor keeps all its faces (no discontinuity, faces look at the camera)
    rows = torch.arange(40, dtype=torch.float32) + 0.5
    floor = (1.0 * 40.0 / (rows - 20.0).clamp_min(0.5)).clamp(max=30.0).view(1, 40, 1).expand(1, 40, 40)
    below = torch.zeros(1, 40, 40, dtype=torch.bool)
    below[:, 25:] = True
    ramp = SceneScapeMesh(supersample=1)
    ramp.add_frame(torch.rand(3, 40, 40), floor.contiguous(), cam, below)
    assert len(ramp) == 2 * 14 * 39


def test_floating_artifact_mask_flags_only_what_the_padding_covers_in_front():
    cam0 = Camera.from_focal(64.0, 64, 64)
    prev = torch.full((1, 64, 64), 10.0)
    prev[..., :8] = 1.0  # near content touching the left border
    cam1 = cam0.with_pose(_pose(0.5))
    rendered = torch.full((1, 64, 64), 10.5)  # the mesh shows the far wall everywhere but the strip
    rendered[..., 11:17] = 1.5
    mask = floating_artifact_mask(prev, cam0, cam1, rendered, pad_factor=1.5)
    # the near strip continued beyond the border lands on columns ~0.4..11 of the new view
    assert bool(mask[0, 4:-4, 1:10].all())
    assert not bool(mask[0, :, 18:].any()), "padding of the far wall matches the render: not flagged"
    assert not bool(floating_artifact_mask(prev, cam0, cam1, rendered, pad_factor=1.0).any())


def test_splat_is_exact_for_identity_and_z_buffers():
    cam = Camera.from_focal(30.0, 32, 24)
    depth = torch.full((1, 24, 32), 4.0)
    depth[:, 8:16, 8:16] = 2.0
    rgb = torch.rand(3, 24, 32)
    warped, warped_depth = splat(rgb, depth, cam, cam)
    assert torch.allclose(warped_depth, depth) and torch.allclose(warped, rgb)
    moved, moved_depth = splat(rgb, depth, cam, cam.with_pose(_pose(0.0, right=0.3)))
    assert bool(torch.isinf(moved_depth).any()), "a sideways move reveals pixels nothing splats onto"
    assert float(moved_depth[torch.isfinite(moved_depth)].min()) == 2.0


def test_prune_drops_faces_behind_every_remaining_camera_and_keeps_the_rest():
    cam = Camera.from_focal(40.0, 32, 32)
    mesh = SceneScapeMesh(supersample=1)
    mesh.add_frame(
        torch.rand(3, 32, 32), torch.full((1, 32, 32), 2.0), cam, torch.ones(1, 32, 32, dtype=torch.bool)
    )
    before_render = mesh.render(cam.with_pose(_pose(0.5))).rgb
    assert mesh.prune(Camera.stack([cam.with_pose(_pose(0.5)), cam.with_pose(_pose(1.0))])) == 0
    assert torch.equal(mesh.render(cam.with_pose(_pose(0.5))).rgb, before_render)
    turned = Camera.stack([cam.with_pose(_pose(0.0, yaw_deg=180.0))])
    assert mesh.prune(turned, merge_duplicates=True) == 2 * 31 * 31 and mesh.vertices.shape[0] == 0


def test_merging_duplicate_vertices_keeps_the_faces_and_shrinks_the_vertex_table():
    mesh = SceneScapeMesh(supersample=1)
    square = torch.tensor([[0.0, 0, 2], [1, 0, 2], [0, 1, 2], [1, 1, 2]])
    mesh.vertices = torch.cat([square, square[1:3]])  # vertices 4, 5 duplicate 1, 2
    mesh.colors = torch.rand(6, 3)
    mesh.observed = torch.zeros(6)
    mesh.faces = torch.tensor([[0, 2, 1], [4, 5, 3]])
    corners = mesh.vertices[mesh.faces].clone()
    assert mesh.prune(None, merge_duplicates=True) == 0
    assert mesh.vertices.shape[0] == 4 and torch.equal(mesh.vertices[mesh.faces], corners)


def test_observed_flags_follow_the_content_through_render_prune_decimate_and_resume():
    """Frame 0 (the input image) is observed, later fills are invented; each rendered pixel reports
    which it shows, and merging, pruning and a state round trip keep the flags."""
    scene = make_scene("room", seed=1)
    cam0 = default_camera("room", 64, 48)
    cam1 = cam0.with_pose(cam0.cam_to_world @ _pose(0.6))
    first, second = render_view(scene, cam0), render_view(scene, cam1)
    mesh = SceneScapeMesh(supersample=2)
    everything = torch.ones_like(first.depth, dtype=torch.bool)
    mesh.add_frame(first.rgb, first.depth, cam0, everything, observed=True)
    view = mesh.render(cam1)
    face_id, observed = view.face_id, view.observed
    assert observed.shape == (1, 48, 64)
    assert bool((observed[~view.holes] > 0.99).all()) and bool((observed[view.alpha == 0] == 0).all())
    new = view.holes
    mesh.add_frame(second.rgb, torch.where(new, second.depth, view.depth), cam1, new, face_id)
    observed = mesh.render(cam1).observed
    from wanderview.geometry.masks import erode

    inside_new = erode(new, 5)  # away from the seam, where sub-samples of both mix
    assert int(inside_new.sum()) > 50
    assert float(observed[inside_new].max()) < 0.01 and float(observed[~new].mean()) > 0.9
    remaining = Camera.stack([cam1.with_pose(cam1.cam_to_world @ _pose(0.5))])
    mesh.prune(remaining)
    mesh.decimate(remaining, 1.0)
    assert mesh.observed.shape == (mesh.vertices.shape[0],)
    assert float(mesh.observed.min()) >= 0.0 and float(mesh.observed.max()) <= 1.0
    restored = SceneScapeMesh(supersample=2)
    restored.load_state_dict(mesh.state_dict())
    assert torch.equal(restored.render(cam1).observed, mesh.render(cam1).observed)
