"""Render-guided video sampling (optim/guided_video.py) over a tiny model of each adapter family."""

from __future__ import annotations

import pytest
import torch

from dummies import sd_inpaint_dir, svd_dir, wan_i2v_dir, wan_vace_dir
from wanderview.backends.video_adapters import make_video_adapter
from wanderview.errors import BackendError
from wanderview.optim.guided_video import GuidanceSettings, cell_fraction, guided_sample, pad_views

FOLDERS = {"wan": wan_i2v_dir, "vace": wan_vace_dir, "svd": svd_dir}
T, H, W = 6, 48, 64


@pytest.fixture(scope="module", params=sorted(FOLDERS))
def adapter(request):
    # no classifier-free guidance here (half the model calls); the CLI tests run with it
    return make_video_adapter(f"hf:{FOLDERS[request.param]()}", device="cpu", steps=4, guidance_scale=1.0)


def _prior():
    g = torch.Generator().manual_seed(0)
    prior = torch.rand(T, 3, H, W, generator=g)
    visibility = torch.ones(T, 1, H, W)
    visibility[1:-1, :, :, W // 2 :] = 0  # the right half of the intermediate renders is a hole
    return prior, visibility


def test_guided_x0_is_closer_to_the_prior_on_known_cells(adapter):
    prior, visibility = _prior()
    settings = GuidanceSettings(renoise_rounds=2, pad_views=1, early_stop=0.0, lr=0.5)
    guided = guided_sample(
        adapter, prior[0], "a flyover", T, prior=prior, visibility=visibility, settings=settings, seed=3
    )
    # the same seed and the same renoising draws, with a zero guidance weight
    unguided = guided_sample(
        adapter,
        prior[0],
        "a flyover",
        T,
        prior=prior,
        visibility=visibility,
        settings=GuidanceSettings(renoise_rounds=2, pad_views=1, early_stop=0.0, lr=0.0),
        seed=3,
    )
    assert guided.prior_distance[0] == pytest.approx(unguided.prior_distance[0])  # same start
    assert guided.prior_distance[-1] < unguided.prior_distance[-1]
    assert guided.frames.shape == (T, 3, H, W) and 0 <= guided.frames.min() and guided.frames.max() <= 1
    assert not torch.equal(guided.frames, unguided.frames)


def test_early_stopping_renoising_and_padding_counts(adapter):
    prior, visibility = _prior()
    settings = GuidanceSettings(renoise_rounds=3, pad_views=2, early_stop=0.25)
    result = guided_sample(adapter, prior[0], "x", T, prior=prior, visibility=visibility, settings=settings)
    assert result.steps == 4 and result.guided_steps == 3  # the last 25 % of 4 steps run unguided
    assert result.model_calls == 3 * 3 + 1 and result.renoises == 3 * 2
    assert len(result.prior_distance) == result.steps + 1
    # padding: 2 copies at each end (+ extra last copies up to a frame count the model makes), all cut
    assert result.model_frames == adapter.frame_count(T + 4) >= T + 4
    assert result.frames.shape == (T, 3, H, W)
    assert 0 < result.known_fraction < 1


def test_without_a_prior_it_is_plain_image_to_video(adapter):
    prior, _ = _prior()
    result = guided_sample(adapter, prior[0], "waves", 3, seed=1)
    again = guided_sample(adapter, prior[0], "waves", 3, seed=1)
    assert result.guided_steps == 0 and result.renoises == 0 and result.model_calls == result.steps == 4
    assert result.frames.shape == (3, 3, H, W) and torch.equal(result.frames, again.frames)
    assert result.model_frames == adapter.frame_count(3)


def test_wan_last_frame_conditioning_needs_a_flf2v_model():
    adapter = make_video_adapter(f"hf:{wan_i2v_dir()}", adapter="wan", steps=1)
    assert adapter.name == "wan" and adapter.frame_count(10) == 13 and adapter.frame_count(9) == 9
    assert not adapter.supports_last_frame  # Wan 2.1 I2V with one CLIP image: first frame only


def test_cell_fraction_and_padding_helpers():
    vis = torch.zeros(5, 1, 16, 16)
    vis[0] = 1
    vis[1:, :, :, :8] = 1
    cells = cell_fraction(vis, 4, 8, causal=True)
    assert cells.shape == (2, 1, 2, 2)
    assert torch.equal(cells[0], torch.ones(1, 2, 2)) and torch.equal(
        cells[1, 0], torch.tensor([[1.0, 0], [1, 0]])
    )
    with pytest.raises(ValueError, match="1 \\+ k"):
        cell_fraction(vis[:4], 4, 8, causal=True)
    video = torch.arange(3.0).view(3, 1, 1, 1)
    assert pad_views(video, 2, 1).flatten().tolist() == [0, 0, 0, 1, 2, 2]
    with pytest.raises(ValueError, match="renoise_rounds"):
        GuidanceSettings(renoise_rounds=0)


def test_adapter_choice_errors():
    with pytest.raises(BackendError, match="unknown video adapter 'cog'"):
        make_video_adapter(f"hf:{svd_dir()}", adapter="cog")
    with pytest.raises(BackendError, match="StableDiffusionInpaintPipeline, not an image-to-video"):
        make_video_adapter(f"hf:{sd_inpaint_dir()}")
    with pytest.raises(BackendError, match="wan adapter cannot run"):
        make_video_adapter(f"hf:{svd_dir()}", adapter="wan")
    with pytest.raises(BackendError, match="unknown video model"):
        make_video_adapter("wan:foo")


def test_vace_is_conditioned_on_the_prior_video_itself():
    """With no guidance at all (lr 0), VACE still follows the prior's frames: they are its conditioning.
    Wan I2V sees only the first frame, so changing the intermediate prior frames changes nothing."""
    prior, visibility = _prior()
    other = prior.clone()
    other[1:-1] = 1 - other[1:-1]
    settings = GuidanceSettings(renoise_rounds=1, pad_views=1, lr=0.0)
    for name, follows in (("vace", True), ("wan", False)):
        adapter = make_video_adapter(f"hf:{FOLDERS[name]()}", device="cpu", steps=2)
        a = guided_sample(
            adapter, prior[0], "x", T, prior=prior, visibility=visibility, settings=settings, seed=0
        )
        b = guided_sample(
            adapter, prior[0], "x", T, prior=other, visibility=visibility, settings=settings, seed=0
        )
        assert torch.equal(a.frames, b.frames) is not follows, name


@pytest.mark.parametrize("name", ["wan", "vace"])
def test_wan_in_bfloat16_keeps_its_vae_and_image_encoder_in_float32(name):
    """The dtype path a CUDA user gets by default (bfloat16 for Wan), run on the CPU."""
    adapter = make_video_adapter(f"hf:{FOLDERS[name]()}", device="cpu", dtype="bfloat16", steps=2)
    prior, visibility = _prior()
    result = guided_sample(adapter, prior[0], "x", T, prior=prior, visibility=visibility,
                           settings=GuidanceSettings(renoise_rounds=2, pad_views=1))  # fmt: skip
    assert adapter.dtype == torch.bfloat16 and adapter.pipe.vae.dtype == torch.float32
    assert (
        getattr(adapter.pipe, "image_encoder", None) is None
        or adapter.pipe.image_encoder.dtype == torch.float32
    )
    assert torch.isfinite(result.frames).all() and result.frames.dtype == torch.float32


@pytest.mark.parametrize("name", ["wan", "vace", "svd"])
def test_the_unguided_loop_is_the_diffusers_pipeline(name):
    """Our loop without a prior reproduces the stock diffusers pipeline's latents for the same seed:
    the adapters assemble the same conditioning, schedule, guidance and steps."""
    from wanderview.backends.hf_common import to_pil

    adapter = make_video_adapter(f"hf:{FOLDERS[name]()}", device="cpu", steps=3)
    h, w = (64, 64) if name == "svd" else (32, 48)
    g = torch.Generator().manual_seed(1)
    first = (torch.rand(3, h, w, generator=g) * 255).round() / 255  # exactly what an 8-bit image holds
    frames = adapter.frame_count(5)
    ours = guided_sample(adapter, first, "a boat", frames, seed=7).latents
    common = {"image": to_pil(first), "height": h, "width": w, "num_frames": frames, "num_inference_steps": 3,
              "generator": torch.Generator().manual_seed(7), "output_type": "latent"}  # fmt: skip
    if name in ("wan", "vace"):  # Wan's own prompt cleaning needs ftfy: the same embeddings are passed in
        embeds = {"prompt_embeds": adapter._encode_text("a boat"), "guidance_scale": 5.0,
                  "negative_prompt_embeds": adapter._encode_text("")}  # fmt: skip
        if name == "vace":  # the first frame kept, the others grey and marked to generate
            from PIL import Image

            image = common.pop("image")
            grey, black, white = (Image.new("RGB", (w, h), (v,) * 3) for v in (128, 0, 255))
            embeds |= {"video": [image] + [grey] * (frames - 1), "mask": [black] + [white] * (frames - 1)}
        theirs = adapter.pipe(**embeds, **common).frames
    else:
        theirs = adapter.pipe(min_guidance_scale=1.0, max_guidance_scale=3.0, fps=7, motion_bucket_id=127,
                              noise_aug_strength=0.02, **common).frames  # fmt: skip
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs.float(), atol=1e-5, rtol=1e-4)
