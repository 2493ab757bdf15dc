"""fourreal's SfM initialisation (duplicate observations merged, capped) and the motion curriculum."""

from __future__ import annotations

import torch

from wanderview.cameras.camera import Camera
from wanderview.methods.fourreal_inputs import thin_points
from wanderview.optim.deformation import TemporalDeformation
from wanderview.optim.fourreal_fit import MotionConfig, TemporalFitter
from wanderview.scenes.deformable import DeformableGaussianScene
from wanderview.scenes.gaussians import GaussianScene


def test_thin_points_merges_repeated_observations_and_caps_the_count():
    g = torch.Generator().manual_seed(0)
    unique = torch.rand(50, 3, generator=g) * 4
    colors = torch.rand(50, 3, generator=g)
    # each point observed 4 times, with a tiny unprojection jitter, as SfM observations are
    points = unique.repeat(4, 1) + torch.randn(200, 3, generator=g) * 1e-6
    merged, merged_colors = thin_points(points, colors.repeat(4, 1), 1000, seed=0)
    assert 45 <= len(merged) <= 60  # a jittered copy may straddle a voxel edge, never 4 copies of all
    nearest = (merged[:, None] - unique[None]).norm(dim=-1).min(dim=1).values
    assert float(nearest.max()) < 1e-3
    capped, capped_colors = thin_points(points, colors.repeat(4, 1), 20, seed=0)
    assert capped.shape == (20, 3) and capped_colors.shape == (20, 3)
    assert torch.equal(capped, thin_points(points, colors.repeat(4, 1), 20, seed=0)[0])  # seeded


def test_motion_curriculum_adds_frames_nearest_the_canonical_time_first():
    pts = torch.rand(30, 3) + torch.tensor([0.0, 0.0, 3.0])
    scene = DeformableGaussianScene.wrap(GaussianScene.from_points(pts, torch.rand(30, 3), max_sh_degree=0))
    scene.temporal = TemporalDeformation(0.5, torch.zeros(3), 1.0, depth=2, width=8, skip=1)
    K = Camera.intrinsics_from_fov(60.0, 16, 12)
    times = [0.0, 0.25, 0.5, 0.75, 1.0]
    cams = Camera(K.expand(5, 3, 3), torch.eye(4).expand(5, 4, 4), 16, 12)
    fitter = TemporalFitter(scene, cams, torch.rand(5, 3, 12, 16), times,
                            MotionConfig(iterations=40, curriculum=0.5, anchors=0))  # fmt: skip
    seen = []
    for _ in range(40):
        seen.append(fitter._next())
        fitter.step_index += 1
    assert 2 not in seen  # the canonical frame is never a sample
    first_far = min(k for k, i in enumerate(seen) if i in (0, 4))
    assert all(i in (1, 3) for i in seen[:first_far]) and first_far >= 5
    assert {0, 1, 3, 4} <= set(seen[20:])  # after the ramp every frame is drawn
