"""Tests of the pure geometry functions: edges, morphology, alignment, mesh from RGB-D."""

from __future__ import annotations

import doctest

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import wanderview.geometry.align as align_module
import wanderview.geometry.edges as edges_module
import wanderview.geometry.masks as masks_module
import wanderview.geometry.mesh_from_rgbd as mesh_module
from wanderview.cameras.camera import Camera
from wanderview.geometry.align import align_depth, align_disparity, fit_scale_shift
from wanderview.geometry.edges import depth_edges
from wanderview.geometry.masks import close_mask, dilate, erode, open_mask
from wanderview.geometry.mesh_from_rgbd import (
    compact_mesh,
    face_normals,
    grid_faces,
    mesh_from_rgbd,
    remove_faces_at_edges,
    remove_long_edges,
    remove_stretched_faces,
)


@pytest.mark.parametrize("module", [align_module, edges_module, masks_module, mesh_module])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.failed == 0


# ---- edges --------------------------------------------------------------------------------------
def test_edges_fire_on_depth_step_only_next_to_it():
    depth = torch.full((1, 32, 48), 2.0)
    depth[:, :, 24:] = 6.0
    edges = depth_edges(depth)
    assert edges[:, :, 23:25].all()
    assert not edges[:, :, :23].any() and not edges[:, :, 25:].any()


def test_edges_silent_on_smooth_ramp_and_constant():
    ramp = torch.linspace(2.0, 3.0, 64).expand(1, 48, 64).clone()
    assert not depth_edges(ramp).any()
    assert not depth_edges(torch.full((1, 16, 16), 3.0)).any()


def test_edges_between_surface_and_empty_sky():
    depth = torch.full((1, 20, 20), 4.0)
    depth[:, :8] = float("inf")
    edges = depth_edges(depth)
    assert edges[:, 7:9].all() and not edges[:, :6].any() and not edges[:, 10:].any()


def test_edges_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(16, 16\)"):
        depth_edges(torch.ones(16, 16))


# ---- morphology ---------------------------------------------------------------------------------
def _random_mask(seed: int) -> torch.Tensor:
    return torch.rand(12, 15, generator=torch.Generator().manual_seed(seed)) > 0.6


masks_2d = st.integers(0, 2**30).map(_random_mask)


@settings(max_examples=40, deadline=None)
@given(mask=masks_2d, k=st.sampled_from([1, 3, 5]))
def test_morphology_identities(mask, k):
    mask = mask[None]
    assert torch.equal(dilate(mask, k), ~erode(~mask, k))
    assert (erode(mask, k) <= mask).all() and (mask <= dilate(mask, k)).all()
    opened, closed = open_mask(mask, k), close_mask(mask, k)
    assert (opened <= mask).all() and (mask <= closed).all()
    assert torch.equal(open_mask(opened, k), opened)
    assert torch.equal(close_mask(closed, k), closed)


def test_erode_keeps_image_border_and_removes_specks():
    full = torch.ones(1, 6, 7, dtype=torch.bool)
    assert erode(full, 5).all()
    speck = torch.zeros(9, 9, dtype=torch.bool)
    speck[4, 4] = True
    assert not open_mask(speck).any()
    assert dilate(speck, 5).sum() == 25 and dilate(speck).shape == (9, 9)
    gap = torch.ones(1, 9, 9, dtype=torch.bool)
    gap[0, 4, 4] = False
    assert close_mask(gap).all()


def test_morphology_rejects_bad_input():
    with pytest.raises(ValueError, match="bool"):
        dilate(torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match="odd"):
        erode(torch.ones(1, 4, 4, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
        dilate(torch.ones(2, 4, 4, dtype=torch.bool))


# ---- alignment ----------------------------------------------------------------------------------
def test_fit_scale_shift_recovers_known_values_on_masked_pixels():
    x = torch.rand(1, 20, 30) + 0.5
    y = 3.5 * x - 0.25
    mask = torch.rand(1, 20, 30) > 0.5
    y[~mask] = 100.0  # outliers outside the mask must not matter
    scale, shift = fit_scale_shift(x, y, mask)
    assert scale.dtype == torch.float32 and scale.ndim == 0
    assert float(scale) == pytest.approx(3.5, abs=1e-5) and float(shift) == pytest.approx(-0.25, abs=1e-5)


def test_fit_scale_shift_degenerate_cases():
    x = torch.ones(1, 4, 4)
    with pytest.raises(ValueError, match="constant"):
        fit_scale_shift(x, x, torch.ones(1, 4, 4, dtype=torch.bool))
    one = torch.zeros(1, 4, 4, dtype=torch.bool)
    one[0, 0, 0] = True
    with pytest.raises(ValueError, match="at least 2"):
        fit_scale_shift(torch.rand(1, 4, 4), x, one)
    with pytest.raises(ValueError, match="share a shape"):
        fit_scale_shift(torch.rand(1, 4, 4), torch.rand(1, 4, 5), one)


def test_align_depth_in_disparity_space_recovers_reference():
    ref_depth = torch.rand(1, 16, 16) * 4.0 + 1.0
    pred_disp = (1.0 / ref_depth - 0.1) / 2.0  # an affine distortion of the true disparity
    pred_depth = 1.0 / pred_disp
    mask = torch.ones(1, 16, 16, dtype=torch.bool)
    assert torch.allclose(align_depth(pred_depth, ref_depth, mask), ref_depth, rtol=1e-4)
    assert torch.allclose(align_disparity(pred_disp, ref_depth, mask), ref_depth, rtol=1e-4)


def test_align_depth_in_depth_space_and_positivity():
    ref_depth = torch.linspace(1.0, 5.0, 64).reshape(1, 8, 8)
    pred = 0.5 * ref_depth + 2.0
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[:, :4] = True  # fit on the top half, apply everywhere
    aligned = align_depth(pred, ref_depth, mask, space="depth")
    assert torch.allclose(aligned, ref_depth, rtol=1e-5)
    # a prediction that extrapolates past zero disparity is floored: depth stays positive and finite
    pred_disp = torch.linspace(1.0, -1.0, 64).reshape(1, 8, 8)
    ref = torch.where(mask, 1.0 / pred_disp.clamp_min(1e-3), torch.full_like(pred_disp, float("inf")))
    out = align_disparity(pred_disp, ref, mask)
    assert (out > 0).all() and torch.isfinite(out).all()
    assert float(out.max()) == pytest.approx(100.0 * float(ref[mask].max()), rel=1e-4)


def test_align_depth_keeps_empty_pixels_and_checks_space():
    ref = torch.rand(1, 6, 6) + 1.0
    pred = ref.clone()
    pred[0, 0, 0] = float("inf")
    mask = torch.ones(1, 6, 6, dtype=torch.bool)
    out = align_depth(pred, ref, mask)
    assert torch.isinf(out[0, 0, 0]) and torch.isfinite(out.flatten()[1:]).all()
    with pytest.raises(ValueError, match="space"):
        align_depth(pred, ref, mask, space="log")


# ---- mesh from RGB-D ----------------------------------------------------------------------------
def _plane_camera(H=6, W=8):
    return Camera.from_fov(60.0, W, H)


def test_grid_faces_count_and_validity():
    assert grid_faces(5, 7).shape == (2 * 4 * 6, 3)
    valid = torch.ones(5, 7, dtype=torch.bool)
    valid[2, 3] = False  # an inner vertex is used by 6 faces
    faces = grid_faces(5, 7, valid)
    assert faces.shape[0] == 2 * 4 * 6 - 6
    assert not (faces == 2 * 7 + 3).any()


def test_mesh_normals_face_camera_and_vertices_reproject_to_pixel_centres():
    H, W = 6, 8
    pose = torch.eye(4)
    pose[:3, 3] = torch.tensor([0.3, -0.2, 1.0])
    cam = Camera.from_fov(60.0, W, H, pose)
    depth = torch.full((1, H, W), 2.5)
    rgb = torch.rand(3, H, W)
    vertices, colors, faces = mesh_from_rgbd(rgb, depth, cam)
    assert vertices.shape == (H * W, 3) and faces.shape == (2 * (H - 1) * (W - 1), 3)
    normals_cam = face_normals(vertices, faces)  # pose has no rotation: world axes = camera axes
    assert torch.allclose(normals_cam, torch.tensor([0.0, 0.0, -1.0]).expand_as(normals_cam), atol=1e-6)
    uv, z = cam.project(vertices)
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    assert torch.allclose(uv, torch.stack([u, v], -1).reshape(-1, 2).float(), atol=1e-4)
    assert torch.allclose(z, torch.full_like(z, 2.5), atol=1e-5)
    assert torch.equal(colors[3 * W + 5], rgb[:, 3, 5])


def test_mesh_skips_empty_and_unmasked_pixels_and_compacts():
    H, W = 5, 5
    depth = torch.full((1, H, W), 3.0)
    depth[0, 0, :] = float("inf")
    mask = torch.ones(1, H, W, dtype=torch.bool)
    mask[0, :, 0] = False
    vertices, colors, faces = mesh_from_rgbd(torch.rand(3, H, W), depth, _plane_camera(H, W), mask)
    assert faces.shape[0] == 2 * 3 * 3 and torch.isfinite(vertices).all()
    assert torch.allclose(vertices[0], torch.zeros(3))  # empty pixel parked at the camera centre
    v2, c2, f2, old_to_new = compact_mesh(vertices, colors, faces)
    assert v2.shape == (16, 3) and c2.shape == (16, 3) and int(f2.max()) == 15
    assert torch.equal(v2[f2], vertices[faces])
    assert old_to_new[0] == -1 and old_to_new[1 * W + 1] == 0


def test_mesh_rejects_mismatched_inputs():
    cam = _plane_camera(6, 8)
    with pytest.raises(ValueError, match=r"\(1, 6, 8\)"):
        mesh_from_rgbd(torch.rand(3, 6, 8), torch.ones(6, 8), cam)
    with pytest.raises(ValueError, match="7x6"):
        mesh_from_rgbd(torch.rand(3, 6, 7), torch.ones(1, 6, 7), cam)


def _two_plane_mesh(H=16, W=16):
    cam = Camera.from_fov(60.0, W, H)
    depth = torch.full((1, H, W), 2.0)
    depth[:, :, W // 2 :] = 6.0
    vertices, _, faces = mesh_from_rgbd(torch.rand(3, H, W), depth, cam)
    step = (vertices[faces][..., 2] < 4).any(1) & (vertices[faces][..., 2] > 4).any(1)
    return cam, depth, vertices, faces, step


def test_stretched_faces_across_depth_step_are_removed():
    # at 64 px (focal 55 px) a bridging face is within ~1 degree of the viewing ray; much coarser
    # grids make the bridge less oblique than the -0.05 cosine rule expects
    cam, _, vertices, faces, step = _two_plane_mesh(64, 64)
    kept = remove_stretched_faces(vertices, faces, cam.center)
    assert step.sum() == 2 * 63  # one column of quads bridges the step
    kept_set = {tuple(f) for f in kept.tolist()}
    assert all(tuple(f) not in kept_set for f in faces[step].tolist())
    assert all(tuple(f) in kept_set for f in faces[~step].tolist())


def test_long_edge_and_depth_edge_rules_remove_the_step():
    cam, depth, vertices, faces, step = _two_plane_mesh()
    kept = remove_long_edges(vertices, faces, cam.center, max_ratio=0.2)
    assert kept.shape[0] == int((~step).sum())
    kept = remove_faces_at_edges(faces, depth_edges(depth), 16)
    assert kept.shape[0] < int((~step).sum()) and kept.shape[0] > 0
    centres_z = vertices[kept][..., 2]
    assert ((centres_z < 4).all(1) | (centres_z > 4).all(1)).all()
    with pytest.raises(ValueError, match="wide"):
        remove_faces_at_edges(faces, depth_edges(depth), 15)


def test_face_normals_of_back_facing_faces_are_removed():
    vertices = torch.tensor([[0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]])
    toward = torch.tensor([[0, 2, 1]])
    away = torch.tensor([[0, 1, 2]])
    origin = torch.zeros(3)
    assert remove_stretched_faces(vertices, toward, origin).shape[0] == 1
    assert remove_stretched_faces(vertices, away, origin).shape[0] == 0


def test_dilation_and_the_foreground_ring_accept_windows_wider_than_the_image():
    from wanderview.geometry.fill import foreground_ring
    from wanderview.geometry.masks import dilate

    mask = torch.zeros(1, 12, 20, dtype=torch.bool)
    mask[0, 3, 4] = True
    assert bool(dilate(mask, 2 * 2_000_000_000 + 1).all())
    assert torch.equal(dilate(mask, 7), torch.nn.functional.max_pool2d(mask[None].float(), 7, 1, 3)[0] > 0)
    depth = torch.full((1, 12, 20), 2.0)
    holes = mask.clone()
    hole_depth = torch.where(holes, torch.tensor(5.0), torch.tensor(float("inf")))
    huge = foreground_ring(depth, holes, hole_depth, width=2_000_000_000)
    assert torch.equal(huge, foreground_ring(depth, holes, hole_depth, width=20)) and int(huge.sum()) == 239
