"""hf: video backends (tiny SVD and CogVideoX image-to-video) and the per-step steering hook."""

from __future__ import annotations

import pytest
import torch

from dummies import cogvideox_dir, sd_inpaint_dir, svd_dir
from wanderview.backends.protocols import VideoGenerator
from wanderview.backends.registry import make_video_generator
from wanderview.errors import BackendError

FOLDERS = {"svd": svd_dir, "cogvideox": cogvideox_dir}


@pytest.fixture(scope="module", params=sorted(FOLDERS))
def video_model(request):
    return make_video_generator(f"hf:{FOLDERS[request.param]()}", device="cpu", steps=2)


def _frame() -> torch.Tensor:
    return torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0))


def test_video_shapes_range_and_seed(video_model):
    assert isinstance(video_model, VideoGenerator) and not video_model.is_weak_default
    video = video_model.generate(_frame(), "waves rolling in", num_frames=6, seed=0)
    assert video.shape == (6, 3, 40, 56) and video.dtype == torch.float32
    assert 0 <= video.min() and video.max() <= 1
    # Same seed, same video. SVD takes no text, so even another prompt gives the same video (and
    # its description says so).
    prompt = "waves rolling in" if video_model.uses_prompt else "a different prompt"
    assert torch.equal(video, video_model.generate(_frame(), prompt, num_frames=6, seed=0))
    assert video_model.uses_prompt or "prompt is not used" in video_model.description


def test_step_callback_sees_every_step_and_can_steer(video_model):
    seen = []

    def record(step, timestep, latents):
        seen.append((step, latents.shape))
        return None

    plain = video_model.generate(_frame(), "clouds", num_frames=3, seed=1, step_callback=record)
    assert [s for s, _ in seen] == [0, 1]
    assert all(len(shape) == 5 for _, shape in seen)  # (batch, frames, channels, h, w) latents

    def flatten(step, timestep, latents):
        return torch.zeros_like(latents)  # steer: replace the latents at every step

    steered = video_model.generate(_frame(), "clouds", num_frames=3, seed=1, step_callback=flatten)
    assert steered.shape == plain.shape and not torch.allclose(steered, plain)


def test_cogvideox_makes_valid_frame_counts_and_trims():
    model = make_video_generator(f"hf:{cogvideox_dir()}", steps=2)
    assert model._frames_to_make(6) == 9 and model._frames_to_make(5) == 5 and model._frames_to_make(1) == 5
    assert model.generate(_frame(), "a boat", num_frames=2, seed=0).shape == (2, 3, 40, 56)


def test_video_rejects_other_pipelines_and_bad_input():
    with pytest.raises(BackendError, match="StableDiffusionInpaintPipeline"):
        make_video_generator(f"hf:{sd_inpaint_dir()}")
    model = make_video_generator(f"hf:{svd_dir()}", steps=1)
    with pytest.raises(ValueError, match=r"\(40, 56\)"):
        model.generate(_frame()[0], "x", num_frames=3)
    with pytest.raises(BackendError, match="num_frames"):
        model.generate(_frame(), "x", num_frames=0)
