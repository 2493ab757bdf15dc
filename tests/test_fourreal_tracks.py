"""Optical-flow tracks of the reference video and the motion stage's track loss, on the sliding box."""

import torch

from wanderview.data.synthetic import camera_rays, cast_rays
from wanderview.data.synthetic_dynamic import box_offset, dynamic_dataset, scene_at
from wanderview.geometry.flow import chained_tracks
from wanderview.geometry.triangulate import project, projection_matrix
from wanderview.optim.fourreal_fit import MotionConfig, TemporalFitter, new_temporal_field
from wanderview.scenes.deformable import DeformableGaussianScene
from wanderview.scenes.gaussians import GaussianScene


def _surface(d):
    """The canonical view's visible points (P, 3), colours, and which of them are on the box."""
    cam = d.reference_cameras[0]
    origins, dirs = camera_rays(cam)
    t, rgb, prim = cast_rays(scene_at(0.0), origins, dirs)
    hit = torch.isfinite(t)
    points = (origins.double() + t[:, None] * dirs.double())[hit]
    return points, rgb[hit], (prim == 2)[hit], hit


def test_tracks_follow_the_moving_box():
    d = dynamic_dataset(96, 72, 6, 2)
    disp, valid = chained_tracks(d.reference, 0)
    assert disp.shape == (6, 2, 72, 96) and valid.shape == (6, 72, 96) and valid[0].all()
    points, _, on_box, hit = _surface(d)
    cam = d.reference_cameras[0]
    P = projection_matrix(cam.K, cam.cam_to_world)
    uv0, _ = project(points, P)
    box_px = torch.zeros(72 * 96, dtype=torch.bool)
    box_px[hit.nonzero()[:, 0][on_box]] = True
    for i, time in enumerate(d.reference_times[1:], 1):
        moved = points + on_box[:, None] * torch.tensor(box_offset(time), dtype=torch.float64)
        true = torch.zeros(2, 72 * 96, dtype=torch.float64)
        true[:, hit] = (project(moved, P)[0] - uv0).T
        err = (disp[i].reshape(2, -1) - true).norm(dim=0)
        ok = valid[i].reshape(-1)
        assert ok[box_px].float().mean() > 0.5  # most of the box is tracked to the last frame
        assert err[box_px & ok].median() < 1.0 and true[:, box_px].norm(dim=0).mean() > 4 * i
        assert err[~box_px & ok].median() < 0.1  # the static room does not move


def test_track_loss_prefers_the_true_motion():
    d = dynamic_dataset(
        96, 72, 6, 2
    )  # ~8 px per frame: DIS tracks it (at ~13 px, 4 frames, it loses the box)
    points, colors, on_box, _ = _surface(d)
    keep = on_box.nonzero()[:, 0]  # the box alone: the static room's tracks would dilute the mean
    scene = DeformableGaussianScene.wrap(
        GaussianScene.from_points(points[keep].float(), colors[keep].float(), max_sh_degree=0, opacity=0.9)
    )
    scene.temporal = new_temporal_field(scene, 0.0, 2, 16, 1, 2, 1)
    fitter = TemporalFitter(
        scene,
        d.reference_cameras,
        d.reference,
        d.reference_times,
        MotionConfig(iterations=1, track_weight=0.01, anchors=256),
        tracks=chained_tracks(d.reference, 0),
    )
    box = on_box[keep]
    for i, time in enumerate(d.reference_times[1:], 1):
        true = box[:, None] * torch.tensor(box_offset(time)).float()
        still, moved = fitter._track_loss(i, torch.zeros_like(true)), fitter._track_loss(i, true)
        assert moved < 2.0 and still > 3 * moved  # L1 over (u, v), a few tracks lost at the edges
    without = TemporalFitter(
        scene, d.reference_cameras, d.reference, d.reference_times, MotionConfig(iterations=1)
    )
    assert without.track_targets is None and without.step()["track"] == 0.0
