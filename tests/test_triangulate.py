"""Two-view triangulation against exact projections, and flow triangulation on the procedural orbit."""

import torch

from wanderview.data.synthetic import cast_rays
from wanderview.data.synthetic_dynamic import dynamic_dataset, scene_at
from wanderview.geometry.triangulate import (
    project,
    projection_matrix,
    triangulate_linear,
    triangulation_angle,
)
from wanderview.methods.fourreal_inputs import triangulated_points


def test_linear_triangulation_is_exact_on_noiseless_projections():
    d = dynamic_dataset(64, 48, 2, 3)
    cams = d.freeze_cameras
    P_a, P_b = (
        projection_matrix(cams.K[0], cams.cam_to_world[0]),
        projection_matrix(cams.K[2], cams.cam_to_world[2]),
    )
    g = torch.Generator().manual_seed(0)
    X = torch.rand(50, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0, 2.0]) + torch.tensor(
        [-1, 0, 2.0]
    )
    (uv_a, z_a), (uv_b, z_b) = project(X, P_a), project(X, P_b)
    assert (z_a > 0).all() and (z_b > 0).all()
    assert torch.allclose(triangulate_linear(uv_a, uv_b, P_a, P_b), X, atol=1e-8)
    angle = triangulation_angle(X, cams.cam_to_world[0, :3, 3], cams.cam_to_world[2, :3, 3])
    assert (angle > 0).all() and (angle < 90).all()


def test_flow_points_lie_on_the_true_surfaces():
    d = dynamic_dataset(128, 96, 2, 8)
    points, colors, summary = triangulated_points(d.freeze, d.freeze_cameras)
    assert summary["points"] == len(points) > 5000 and colors.shape == points.shape
    assert colors.min() >= 0 and colors.max() <= 1
    # distance of each point to the true surface along the ray from the first camera
    origin = d.freeze_cameras.cam_to_world[0, :3, 3].double()
    rays = torch.nn.functional.normalize(points.double() - origin, dim=-1)
    t, _, hit = cast_rays(scene_at(0.0), origin.expand_as(rays), rays)
    seen = hit >= 0
    error = ((points.double() - origin).norm(dim=-1) - t).abs() / t
    assert seen.float().mean() > 0.95
    assert error[seen].median() < 0.02 and error[seen].quantile(0.9) < 0.1
