"""Consistency metrics on an exact render: ~0 when consistent, clearly positive when broken."""

from __future__ import annotations

import math

import pytest
import torch

from test_metrics_support import render_room, room_cameras
from wanderview.metrics.consistency import density, depth_consistency, photometric_consistency


@pytest.fixture(scope="module")
def room():
    cameras = room_cameras(5, 96, 72)
    views = [render_room(c) for c in cameras]
    frames = torch.stack([v[0] for v in views])
    depths = torch.stack([v[1] for v in views])
    return cameras, frames, depths


def test_consistent_video_scores_near_zero(room):
    cameras, frames, depths = room
    # bilinear resampling of a noise texture leaves a small residual, nothing like a real error
    assert photometric_consistency(frames, depths, cameras) < 3.0
    assert depth_consistency(depths, cameras) < 1e-3
    assert density(depths, cameras) > 0.9


def test_broken_video_scores_worse(room):
    cameras, frames, depths = room
    shuffled = frames[torch.tensor([0, 3, 1, 4, 2])]
    baseline = photometric_consistency(frames, depths, cameras)
    assert photometric_consistency(shuffled, depths, cameras) > 3 * baseline
    wobbly = depths * torch.tensor([1.0, 1.2, 0.9, 1.15, 1.0]).view(-1, 1, 1, 1)
    assert depth_consistency(wobbly, cameras) > 0.05
    assert density(wobbly, cameras) < 0.5


def test_unknown_depth_never_counts(room):
    cameras, _, depths = room
    empty = torch.full_like(depths, math.inf)
    assert density(empty, cameras) == 0.0
    assert math.isnan(depth_consistency(empty, cameras))


def test_shape_errors(room):
    cameras, frames, depths = room
    with pytest.raises(ValueError, match=r"\(5, 72, 96\)"):
        depth_consistency(depths[:, 0], cameras)
    with pytest.raises(ValueError, match="frames must be"):
        photometric_consistency(frames[:, :1], depths, cameras)
