"""makeit4d pieces: layered depth, motion fields, Euler integration, symmetric splatting, autocruise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wanderview.cameras.autocruise import autocruise, skyline_targets
from wanderview.cameras.camera import Camera
from wanderview.errors import InputError
from wanderview.geometry.flow import (
    constant_flow,
    euler_positions,
    flow_to_color,
    hints_flow,
    median_flow,
    parse_vector,
    read_hints,
)
from wanderview.geometry.ldi import (
    assign_layers,
    layer_edges,
    merge_connected_layers,
    remap_layer_depth,
    ward_clusters_1d,
)
from wanderview.scenes.layered_points import EulerianAnimation, LayeredPointCloud, animate_image


def three_planes(H=60, W=80):
    """Fronto-parallel planes at z = 1 (bottom), 3 (middle band) and 9 (top), with a little texture."""
    depth = torch.full((1, H, W), 9.0)
    depth[:, H // 3 :] = 3.0
    depth[:, 2 * H // 3 :] = 1.0
    return depth * (1 + 0.01 * torch.rand(1, H, W, generator=torch.Generator().manual_seed(0)))


def test_ward_matches_scipy():
    from scipy.cluster.hierarchy import fcluster, linkage

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.05, 200), rng.normal(0.6, 0.1, 150), rng.normal(1.0, 0.02, 80)])
    for k in (2, 3, 4):
        ours = ward_clusters_1d(x, num_clusters=k)
        theirs = fcluster(linkage(x[:, None], "ward"), k, "maxclust")
        assert ours.max() + 1 == k
        assert all(len(set(theirs[ours == c])) == 1 for c in range(k)), "the same partition as scipy"
    threshold = ward_clusters_1d(x, distance_threshold=1.0)
    assert threshold.max() + 1 == len(set(fcluster(linkage(x[:, None], "ward"), 1.0, "distance")))
    with pytest.raises(ValueError):
        ward_clusters_1d(x)


def test_three_planes_give_three_layers_with_the_right_edges():
    depth = three_planes()
    edges = layer_edges(depth, num_layers=3)
    assert len(edges) == 4
    # each inner edge lies in the depth gap between two planes, midway in disparity
    sampled = depth[0, ::10, ::10]
    assert edges[0] < float(depth.min()) and edges[3] > float(depth.max())
    near, mid, far = sampled[sampled < 2], sampled[(sampled > 2) & (sampled < 5)], sampled[sampled > 5]
    assert 1 / edges[1] == pytest.approx(0.5 / float(near.max()) + 0.5 / float(mid.min()), rel=1e-5)
    assert 1 / edges[2] == pytest.approx(0.5 / float(mid.max()) + 0.5 / float(far.min()), rel=1e-5)
    labels = assign_layers(depth, edges)
    assert torch.equal(labels[0, -1], torch.zeros(80, dtype=torch.long))
    assert torch.equal(labels[0, 30], torch.ones(80, dtype=torch.long))
    assert torch.equal(labels[0, 0], torch.full((80,), 2))
    merged, merged_edges = merge_connected_layers(labels, depth, edges)
    assert merged_edges == edges and torch.equal(merged, labels), "depth jumps keep the planes apart"


def test_a_tilted_plane_stays_one_layer():
    H, W = 60, 80
    disp = torch.linspace(0.05, 1.0, H)[:, None].expand(H, W)  # a ground plane: disparity grows downward
    depth = (1.0 / disp)[None].contiguous()
    edges = layer_edges(depth, num_layers=3)
    assert len(edges) == 4, "clustering alone cuts the plane"
    labels, merged = merge_connected_layers(assign_layers(depth, edges), depth, edges)
    assert len(merged) == 2 and int(labels.max()) == 0


def test_remap_keeps_layer_order():
    edges = [1.0, 2.0, 5.0, 20.0]
    mask = torch.ones(1, 8, 8, dtype=torch.bool)
    remapped = [
        remap_layer_depth(torch.rand(1, 8, 8) * 100 + 1, mask, edges[i], edges[i + 1]) for i in range(3)
    ]
    for i in range(3):
        assert float(remapped[i].min()) == pytest.approx(edges[i]) and float(
            remapped[i].max()
        ) == pytest.approx(edges[i + 1])
    assert float(remapped[0].max()) <= float(remapped[1].min()) and float(remapped[1].max()) <= float(
        remapped[2].min()
    )


def test_euler_moves_by_t_times_f_and_restarts_leavers():
    H, W = 4, 20
    flow = constant_flow(torch.ones(1, H, W, dtype=torch.bool), (1.5, 0.0))
    origins = torch.tensor([[0.5, 19.5], [1.5, 1.5]])
    positions = list(euler_positions(flow, 3, origins))
    assert len(positions) == 4
    torch.testing.assert_close(positions[3][:, 0], torch.tensor([0.5 + 4.5, 1.5]))
    # 19.5 + 1.5 = 21 leaves the 20-px image: back to its origin, then on again
    torch.testing.assert_close(positions[1][:, 1], torch.tensor([19.5, 1.5]))
    torch.testing.assert_close(positions[2][:, 1], torch.tensor([19.5, 1.5]))


def _moving_scene(H=40, W=48):
    cam = Camera.from_fov(60.0, W, H)
    rgb = torch.rand(3, H, W, generator=torch.Generator().manual_seed(3))
    depth = torch.full((1, H, W), 4.0)
    depth[:, :, : W // 3] = 2.0
    mask = torch.zeros(1, H, W, dtype=torch.bool)
    mask[:, : H // 2, W // 2 :] = True
    cloud = LayeredPointCloud(cam)
    cloud.add_layer(rgb, depth < 3, depth, 0)
    cloud.add_layer(rgb, depth >= 3, depth, 1)
    return cam, rgb, cloud, constant_flow(mask, (0.7, 0.4)), mask


def test_symmetric_blend_is_a_seamless_loop_and_moves_inside_the_mask_only():
    cam, rgb, cloud, flow, mask = _moving_scene()
    animation = EulerianAnimation(cloud, flow, loop_frames=8)
    assert animation.num_moving == int(mask.sum())
    first, last = animation.render(cam, 0), animation.render(cam, 8)
    torch.testing.assert_close(first.rgb, last.rgb)
    torch.testing.assert_close(first.rgb, rgb, atol=1e-5, rtol=0)
    middle = animation.render(cam, 4)
    static = cloud.render(cam)
    far_from_mask = torch.ones_like(mask)
    far_from_mask[:, : mask.shape[1] // 2 + 4, mask.shape[2] // 2 - 4 :] = False
    torch.testing.assert_close(middle.rgb * far_from_mask, static.rgb * far_from_mask, atol=1e-5, rtol=0)
    assert float((middle.rgb - static.rgb)[:, mask[0]].abs().mean()) > 0.05, "the masked region moves"
    assert bool((middle.alpha[0, 2:-2, 2:-2] > 0.5).all()), "no holes open behind moving content"


def test_animate_image_moves_only_the_far_layer():
    cam, rgb, _, flow, _ = _moving_scene()
    depth = torch.full((1, 40, 48), 4.0)
    depth[:, 20:] = 1.5
    flow = constant_flow(torch.ones(1, 40, 48, dtype=torch.bool), (1.0, 0.0))
    frames = animate_image(rgb, depth, cam, flow, 6)
    assert len(frames) == 6
    torch.testing.assert_close(frames[3].rgb[:, 24:], rgb[:, 24:], atol=1e-5, rtol=0)
    assert float((frames[3].rgb[:, :16] - rgb[:, :16]).abs().mean()) > 0.05


def _sky_disp(side: str, H=48, W=64):
    disp = torch.linspace(0.2, 1.0, H)[:, None].expand(H, W).clone()[None]
    cols = slice(W // 2, W) if side == "right" else slice(0, W // 2)
    disp[:, : H // 2, cols] = 0.0
    return disp


@pytest.mark.parametrize("side", ["right", "left"])
def test_autocruise_turns_toward_the_sky_side(side):
    cam = Camera.from_fov(60.0, 64, 48)
    targets = skyline_targets(_sky_disp(side))
    assert (targets["look_x"] > 0.5) == (side == "right")
    path = autocruise(cam, _sky_disp(side), 30, speed=0.05)
    assert len(path) == 30
    torch.testing.assert_close(path.cam_to_world[0], torch.eye(4))
    forward = path.cam_to_world[-1, :3, 2]
    assert (float(forward[0]) > 0) == (side == "right")
    assert float(path.cam_to_world[-1, 2, 3]) > 0.5, "the camera flies into the image"
    back = autocruise(cam, _sky_disp(side), 30, speed=0.05, fly_out=True)
    assert float(back.cam_to_world[-1, 2, 3]) < -0.5


def test_hints_flow_follows_the_arrows_inside_the_mask(tmp_path):
    hints = {
        "imageWidth": 80,
        "imageHeight": 40,
        "shapes": [
            {"shape_type": "polygon", "points": [[0, 0], [40, 0], [40, 40], [0, 40]]},
            {"shape_type": "line", "points": [[10, 20], [60, 20]]},
        ],
    }
    path = tmp_path / "hints.json"
    path.write_text(json.dumps(hints))
    mask, arrows = read_hints(path, 20, 40)  # half size: the arrow is 25 px long there
    assert mask.shape == (1, 20, 40) and bool(mask[0, 10, 5]) and not bool(mask[0, 10, 35])
    flow = hints_flow(mask, arrows, blur_px=1)
    assert float(flow[0, 10, 5]) == pytest.approx(25 / 50, rel=1e-4) and abs(float(flow[1, 10, 5])) < 1e-6
    assert float(flow[:, 10, 35].abs().max()) == 0.0
    assert flow_to_color(flow).shape == (3, 20, 40)


@pytest.mark.parametrize(
    "text", ["{not json", json.dumps({"shapes": [{"points": "x"}]}), json.dumps({"shapes": []})]
)
def test_malformed_hints_are_one_sentence(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError):
        read_hints(path, 20, 40)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_median_flow_of_a_shifted_texture(method):
    import cv2

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.random((80, 120)).astype(np.float32), (7, 7), 2)
    base = (base - base.min()) / (base.max() - base.min())
    frames = [torch.from_numpy(np.roll(base, 2 * i, axis=1)).expand(3, -1, -1).clone() for i in range(4)]
    flow = median_flow(frames, method)
    centre = flow[:, 20:-20, 20:-20]
    assert float(centre[0].median()) == pytest.approx(2.0, abs=0.3) and abs(float(centre[1].median())) < 0.3
    with pytest.raises(InputError):
        median_flow(frames[:1], method)


def test_parse_vector():
    assert parse_vector("1.5,-2") == (1.5, -2.0)
    for bad in ("1", "1,x", "1,2,3", "nan,1"):
        with pytest.raises(InputError):
            parse_vector(bad)


def test_euler_states_track_the_area_growth_of_a_spreading_flow():
    from wanderview.geometry.flow import divergence, euler_states

    H, W = 20, 200
    xs = torch.arange(W, dtype=torch.float32) + 0.5
    flow = torch.zeros(2, H, W)
    flow[0] = 0.01 * (xs - 100)  # spreads sideways from x = 100: divergence 0.01 everywhere inside
    assert float(divergence(flow)[5, 50]) == pytest.approx(0.01, rel=1e-4)
    origins = torch.tensor([[90.5], [10.5]])
    states = list(euler_states(flow, 10, origins))
    assert float(states[10][1][0]) == pytest.approx(0.1, rel=1e-3)


def test_discontinuities_are_the_plane_boundaries_not_a_ramp():
    from wanderview.geometry.ldi import discontinuity_mask

    edges = discontinuity_mask(three_planes())
    assert bool(edges[0, 19:21].all()) and bool(edges[0, 39:41].all())
    assert not bool(edges[0, :18].any()) and not bool(edges[0, 22:38].any())
    ramp = (1.0 / torch.linspace(0.05, 1.0, 60)[:, None].expand(60, 80))[None].contiguous()
    assert not bool(discontinuity_mask(ramp).any())
