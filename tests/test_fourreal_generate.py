"""fourreal's generative inputs: prompt template, coverage estimate, autoregressive freeze-time clips,
text-to-video backends (tiny random models from tests/dummies.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dummies import cogvideox_t2v_dir, svd_dir, wan_i2v_dir, wan_t2v_dir, wan_vace_dir
from wanderview.backends.registry import make_text_video_generator
from wanderview.backends.video_adapters import make_video_adapter
from wanderview.cameras.camera import Camera
from wanderview.data.synthetic_dynamic import dynamic_dataset
from wanderview.errors import BackendError
from wanderview.methods import fourreal_generate as generate
from wanderview.methods.fourreal_prompts import ACTION_VERBS, freeze_time_prompt, strip_action_verbs
from wanderview.metrics.coverage import Coverage, view_coverage
from wanderview.optim.guided_video import guided_sample

H, W = 24, 32


@pytest.mark.parametrize(
    ("prompt", "scene"),
    [
        ("A dog running on the beach.", "a dog on the beach"),
        ("a dog is running on the beach", "a dog on the beach"),
        ("a cat chasing a mouse", "a cat and a mouse"),
        ("A girl playing the violin in a garden", "a girl with the violin in a garden"),
        ("A panda eating bamboo quickly, in a forest", "a panda with bamboo, in a forest"),
        ("waves crashing on rocks at sunset", "waves on rocks at sunset"),  # a noun first stays
        ("a corgi dancing and spinning in a living room", "a corgi in a living room"),
        ("the running water of a river", "the running water of a river"),  # an adjective stays
        ("a kitchen with a table", "a kitchen with a table"),
    ],
)
def test_freeze_time_prompt_template_drops_action_verbs(prompt, scene):
    text = freeze_time_prompt(prompt)
    assert text == f"Camera circulating around {scene}, time elapse."
    kept = strip_action_verbs(prompt).lower().replace(",", "").split()
    assert not set(kept[1:]) & ACTION_VERBS or "running water" in prompt


def test_freeze_time_prompt_of_nothing_is_the_scene():
    assert freeze_time_prompt("") == "Camera circulating around the scene, time elapse."
    assert {"running", "runs", "ran", "dancing", "chased", "hopping", "flies"} <= ACTION_VERBS


def _true_coverage(cameras: Camera) -> float:
    axes = cameras.cam_to_world[:, :3, 2].double()
    return math.degrees(math.acos(float((axes @ axes.T).clamp(-1, 1).min())))


def test_coverage_of_the_procedural_orbit_is_about_its_angle():
    d = dynamic_dataset(width=128, height=96, num_reference=2, num_freeze=12, orbit_deg=30.0)
    truth = _true_coverage(d.freeze_cameras)  # ~59 degrees: the +-30 degree orbit
    got = view_coverage(d.freeze, d.freeze_cameras.K[0])
    # measured here: 56.2 (two-view geometry on smooth textured planes errs low, never high)
    assert 0.85 * truth <= got.degrees <= 1.05 * truth, (got.degrees, truth)
    assert got.failed_pairs == 0 and len(got.steps_deg) == 11
    assert all(0 < s < 12 for s in got.steps_deg)  # the true step is 5.5 degrees
    # the chained rotations turn about the vertical axis, as the orbit does
    yaw_axis = np.array([0.0, 1.0, 0.0])
    R = got.rotations[-1]
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    assert abs(axis @ yaw_axis) / np.linalg.norm(axis) > 0.9


def test_orbit_cameras_from_rotations_rebuild_the_procedural_orbit():
    from wanderview.data.synthetic_dynamic import PIVOT
    from wanderview.methods.fourreal_inputs import anchored

    d = dynamic_dataset(width=32, height=24, num_reference=2, num_freeze=5, orbit_deg=30.0)
    true = anchored(d.freeze_cameras, d.canonical_index)  # the canonical camera looks at the pivot
    distance = math.dist((0.0, 0.0, 0.0), PIVOT)  # from the canonical camera (at the origin)
    cams = generate.orbit_cameras(true.cam_to_world[:, :3, :3], true.K[0], 32, 24, distance)
    assert torch.allclose(cams.cam_to_world, true.cam_to_world, atol=1e-4)


def test_coverage_of_a_still_or_featureless_video_is_zero():
    d = dynamic_dataset(width=64, height=48, num_reference=2, num_freeze=2)
    still = view_coverage(d.freeze[:1].repeat(4, 1, 1, 1), d.freeze_cameras.K[0])
    assert still.degrees == 0.0 and still.failed_pairs == 3
    flat = view_coverage(torch.full((3, 3, 48, 64), 0.5), d.freeze_cameras.K[0])
    assert flat.degrees == 0.0 and flat.failed_pairs == 2
    with pytest.raises(ValueError, match="N, 3, H, W"):
        view_coverage(torch.zeros(3, 48, 64), d.freeze_cameras.K[0])


@pytest.fixture(scope="module")
def wan():
    return make_video_adapter(f"hf:{wan_i2v_dir()}", device="cpu", steps=2, guidance_scale=1.0)


@pytest.fixture(scope="module")
def vace():
    return make_video_adapter(f"hf:{wan_vace_dir()}", device="cpu", steps=2, guidance_scale=1.0)


def _canonical():
    return torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))


def _extend(adapter, clips, **kw):
    K = Camera.intrinsics_from_fov(60.0, W, H)
    kw = {"coverage": 360.0, "max_clips": clips, "clip_frames": 5, "context_frames": 2, "seed": 7, **kw}
    return generate.extend_freeze_video(adapter, _canonical(), "Camera circulating around x", K, **kw)


def test_first_frame_model_extends_forward_then_mirrored_backward(wan):
    canonical = _canonical()
    video = _extend(wan, 3)
    n = wan.frame_count(5)  # 5 = 1 + 4
    assert n == 5 and [c["direction"] for c in video.clips] == ["forward", "backward", "forward"]
    assert [c["new_frames"] for c in video.clips] == [4, 4, 4]  # a first-frame model: 1 context frame
    assert video.frames.shape == (13, 3, H, W) and video.match == 4
    assert torch.equal(video.frames[video.match], canonical)  # the real frame, not the model's copy
    assert video.coverage_deg == video.clips[-1]["coverage_deg"]
    prompt = "Camera circulating around x"
    # forward: clip 0 from the canonical frame (seed 7), its new frames appended after the match
    forward = guided_sample(wan, canonical, prompt, n, seed=7).frames
    assert torch.allclose(video.frames[5:9], forward[1:], atol=1e-6)
    # backward: clip 1 (seed 8) from the mirrored canonical frame, mirrored back and reversed
    backward = guided_sample(wan, canonical.flip(-1), prompt, n, seed=8).frames.flip(-1)
    assert torch.allclose(video.frames[:4], backward[1:].flip(0), atol=1e-6)
    # forward again (seed 9) from the last frame of the video so far
    again = guided_sample(wan, forward[-1], prompt, n, seed=9).frames
    assert torch.allclose(video.frames[9:], again[1:], atol=1e-6)


def test_vace_extends_with_context_frames_at_either_end(vace):
    canonical = _canonical()
    video = _extend(vace, 3)
    # clip 0: 1 known frame (the canonical) -> 4 new; then 2 context frames -> 3 new per clip
    assert [c["new_frames"] for c in video.clips] == [4, 3, 3]
    assert video.frames.shape == (11, 3, H, W) and video.match == 3
    assert torch.equal(video.frames[video.match], canonical)
    assert torch.equal(_extend(vace, 3).frames, video.frames)  # seeded
    assert video.rotations.shape == (11, 3, 3) and torch.allclose(video.rotations[3], torch.eye(3))


def test_extension_stops_at_the_coverage(wan, monkeypatch):
    # a stand-in estimate: 25 degrees per 4 frames, so 60 degrees are reached after the third clip
    def estimate(frames, K):
        return Coverage(25.0 * (len(frames) - 1) / 4, np.eye(3)[None].repeat(len(frames), 0), [], 0)

    monkeypatch.setattr(generate, "view_coverage", estimate)
    video = _extend(wan, 6, coverage=60.0)
    assert len(video.clips) == 3 and [c["coverage_deg"] for c in video.clips] == [25.0, 50.0, 75.0]
    assert video.coverage_deg == 75.0


def test_vace_text_to_video_and_text_video_backends(vace):
    video = generate.vace_text_to_video(vace, "a beach", 6, H, W, seed=1)
    assert video.shape == (6, 3, H, W) and 0 <= video.min() and video.max() <= 1
    assert torch.equal(video, generate.vace_text_to_video(vace, "a beach", 6, H, W, seed=1))
    for folder in (wan_t2v_dir, cogvideox_t2v_dir):
        model = make_text_video_generator(f"hf:{folder()}", device="cpu", steps=2)
        frames = model.generate("a beach", 6, H, W, seed=3)
        assert frames.shape == (6, 3, H, W) and model.frame_count(6) == 9
        assert torch.equal(frames, model.generate("a beach", 6, H, W, seed=3))
        assert not torch.equal(frames, model.generate("a beach", 6, H, W, seed=4))
    with pytest.raises(BackendError, match="text-to-video backend supports"):
        make_text_video_generator(f"hf:{svd_dir()}", device="cpu")
