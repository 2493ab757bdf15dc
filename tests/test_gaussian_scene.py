"""GaussianScene, the 3DGS PLY round trip, and fitting with density control."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wanderview.cameras.camera import Camera
from wanderview.data.synthetic import default_camera, make_scene, render_view
from wanderview.errors import InputError
from wanderview.io.gaussian_ply import is_gaussian_ply, read_gaussian_ply, write_gaussian_ply
from wanderview.metrics.image import psnr
from wanderview.optim.gaussian_fit import FitConfig, GaussianFitter
from wanderview.scenes.gaussians import GaussianScene


def _random_scene(n=50, k=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GaussianScene(
        torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g) - 3, torch.randn(n, 4, generator=g),
        torch.randn(n, generator=g), torch.randn(n, k, 3, generator=g),
    )  # fmt: skip


@pytest.mark.parametrize("k", [1, 4, 16])
def test_ply_round_trip_is_bit_exact(tmp_path, k):
    scene = _random_scene(k=k)
    scene.save(tmp_path / "g.ply")
    back = GaussianScene.load(tmp_path / "g.ply")
    for name, value in scene.params().items():
        assert torch.equal(getattr(back, name), value), name
    assert back.max_sh_degree == math.isqrt(k) - 1


def test_ply_layout_is_the_3dgs_one(tmp_path):
    scene = _random_scene(n=3, k=4)
    write_gaussian_ply(tmp_path / "g.ply", *scene.params().values())
    raw = (tmp_path / "g.ply").read_bytes()
    header = raw[: raw.index(b"end_header")].decode().splitlines()
    props = [line.split()[-1] for line in header if line.startswith("property")]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [
        f"f_rest_{i}" for i in range(9)
    ]
    assert props == expected + [
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    body = np.frombuffer(raw[raw.index(b"end_header\n") + 11 :], dtype="<f4").reshape(3, -1)
    # f_rest is channel-major: the first three entries are coefficients 1..3 of red
    assert np.array_equal(body[:, 9:12], scene.sh[:, 1:4, 0].numpy())
    assert np.array_equal(body[:, -4:], scene.quats.numpy())


def test_bad_ply_files_raise_one_sentence(tmp_path):
    (tmp_path / "junk.ply").write_bytes(b"not a ply")
    with pytest.raises(InputError, match="not a PLY"):
        read_gaussian_ply(tmp_path / "junk.ply")
    from wanderview.io.mesh import save_points

    save_points(tmp_path / "pts.ply", torch.rand(5, 3), torch.rand(5, 3))
    assert not is_gaussian_ply(tmp_path / "pts.ply")
    with pytest.raises(InputError, match="not a 3DGS PLY"):
        read_gaussian_ply(tmp_path / "pts.ply")
    scene = _random_scene(n=10)
    scene.save(tmp_path / "g.ply")
    data = (tmp_path / "g.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[:-20])
    with pytest.raises(InputError, match="truncated"):
        read_gaussian_ply(tmp_path / "cut.ply")


def test_rgbd_init_reproduces_the_frame_it_came_from():
    cam = default_camera("two_planes", 64, 48)
    view = render_view(make_scene("two_planes"), cam)
    scene = GaussianScene.from_rgbd([(view.rgb, view.depth, cam)], stride=1, opacity=0.99)
    assert len(scene) == 64 * 48
    out = scene.render(cam)
    assert out.alpha.min() > 0.9
    assert psnr(out.rgb, view.rgb) > 20  # blurred by the 0.7-px footprint + eps2d, not wrong
    near = torch.isfinite(out.depth) & (view.depth < 3)
    assert torch.allclose(out.depth[near], view.depth[near], rtol=0.05)


def test_render_ignores_time_for_a_static_scene():
    scene = _random_scene(n=30, k=1)
    cam = Camera.from_fov(
        60, 32, 24, torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, -4.0], [0, 0, 0, 1]])
    )
    a, b = scene.render(cam), scene.render(cam, time=0.7)
    assert torch.equal(a.rgb, b.rgb) and not scene.is_dynamic
    assert torch.isinf(a.depth[a.alpha < 0.5]).all()


def _views(n=8, w=64, h=48):
    name = "two_planes"
    scene, cam0 = make_scene(name), default_camera(name, w, h)
    cams = []
    for i in range(n):
        pose = cam0.cam_to_world.clone()
        pose[0, 3] = 0.4 * (i / (n - 1) - 0.5)
        pose[1, 3] = 0.1 * math.sin(i)
        cams.append(cam0.with_pose(pose))
    views = [render_view(scene, c) for c in cams]
    return cams, torch.stack([v.rgb for v in views]), torch.stack([v.depth for v in views])


def test_fitting_improves_held_out_views_and_densifies():
    cams, images, depths = _views(w=48, h=36)
    train, test = [0, 1, 2, 4, 5, 7], [3, 6]
    frames = [(images[i], depths[i], cams[i]) for i in (0, 7)]
    scene = GaussianScene.from_rgbd(frames, stride=3, max_sh_degree=1)
    before = np.mean([psnr(scene.render(cams[i]).rgb, images[i]) for i in test])
    n0 = len(scene)
    config = FitConfig(
        iterations=60, scale_schedule=False, densify_from=15, densify_until=50, densify_interval=10,
        opacity_reset_interval=1000, sh_interval=30, densify_grad_threshold=1e-4,
    )  # fmt: skip
    fitter = GaussianFitter(scene, Camera.stack([cams[i] for i in train]), images[train], config=config)
    history = fitter.fit(progress=False)
    after = np.mean([psnr(scene.render(cams[i]).rgb, images[i]) for i in test])
    assert after > before + 3, (before, after)
    assert history[-1]["loss"] < history[0]["loss"]
    assert len(scene) != n0  # density control changed the set
    assert scene.sh_degree == 1


def test_resuming_from_a_checkpoint_gives_the_same_fit():
    cams, images, _ = _views(n=4, w=40, h=30)
    cams = Camera.stack(cams)

    def fresh():
        scene = GaussianScene.random(300, torch.tensor([-1.0, -1, 1.5]), torch.tensor([1.0, 1, 3]), seed=1)
        config = FitConfig(
            iterations=24, scale_schedule=False, densify_from=5, densify_until=20, densify_interval=8,
            opacity_reset_interval=1000, sh_interval=10, densify_grad_threshold=1e-6, checkpoint_every=12,
        )  # densifies at 8 (before the checkpoint) and 16 (after)  # fmt: skip
        return GaussianFitter(scene, cams, images, config=config)

    straight = fresh()
    saved = []
    straight.fit(progress=False, checkpoint=lambda state: saved.append(state))
    assert [s["step"] for s in saved] == [12, 24]
    resumed = fresh()
    resumed.load_state_dict(saved[0])
    resumed.fit(progress=False)
    assert len(resumed.scene) == len(straight.scene)
    for name, value in straight.scene.params().items():
        assert torch.equal(getattr(resumed.scene, name), value), name


def test_densify_clones_small_splits_large_and_prunes_transparent():
    scene = GaussianScene.from_points(
        torch.rand(4, 3), torch.rand(4, 3), torch.tensor([0.001, 0.001, 0.5, 0.001])
    )
    scene.opacity_logits = torch.tensor([2.0, 2.0, 2.0, -9.0])  # the last is nearly transparent
    cams = Camera.stack([Camera.from_fov(60, 16, 16)])
    fitter = GaussianFitter(scene, cams, torch.zeros(1, 3, 16, 16), config=FitConfig(), extent=1.0)
    fitter.grad_accum = torch.tensor([1.0, 0.0, 1.0, 0.0])
    fitter.grad_count = torch.ones(4)
    fitter.densify_and_prune(prune_big=False)
    # 0 cloned (2 copies), 1 kept, 2 split into 2 (original removed), 3 pruned
    assert len(scene) == 5
    assert torch.isclose(scene.scales.amax(1), torch.tensor(0.5 / 1.6)).sum() == 2
    assert fitter.adam.m["means"].shape == (5, 3)


@pytest.mark.parametrize("max_world_size, kept", [(0.1, 2), (0.0, 3)])
def test_world_size_pruning_follows_max_world_size(max_world_size, kept):
    # scales 0.01, 0.05 and 0.5 of an extent of 1: only the last exceeds 0.1 of it
    scene = GaussianScene.from_points(torch.rand(3, 3), torch.rand(3, 3), torch.tensor([0.01, 0.05, 0.5]))
    scene.opacity_logits = torch.full((3,), 2.0)
    cams = Camera.stack([Camera.from_fov(60, 16, 16)])
    config = FitConfig(max_world_size=max_world_size, max_screen_size=1e9)
    fitter = GaussianFitter(scene, cams, torch.zeros(1, 3, 16, 16), config=config, extent=1.0)
    fitter.densify_and_prune(prune_big=True)  # no gradients: nothing densifies
    assert len(scene) == kept


def test_schedule_is_scaled_to_the_iterations_with_floors():
    config = FitConfig(iterations=3000)
    assert [config.schedule(n) for n in ("densify_from", "densify_until", "densify_interval")] == [
        100,
        1500,
        100,  # the interval is never scaled below the paper's 100 (clones need time to move apart)
    ]
    assert config.schedule("opacity_reset_interval") == 300 and config.schedule("sh_interval") == 100
    assert FitConfig(iterations=30000).schedule("densify_from") == 500
    assert FitConfig(iterations=300, scale_schedule=False).schedule("densify_interval") == 100
    # a capped fit (fourreal's CPU schedule) may densify more often: 100 * 2400 / 30000 = 8 -> floor 10
    assert FitConfig(iterations=2400, min_densify_interval=10).schedule("densify_interval") == 10
    assert FitConfig(iterations=30000, min_densify_interval=10).schedule("densify_interval") == 100
