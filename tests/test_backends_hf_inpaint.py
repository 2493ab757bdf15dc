"""hf: inpainting and text-to-image with tiny Stable Diffusion pipelines loaded from folders."""

from __future__ import annotations

import pytest
import torch

from dummies import pickle_only_copy, sd_inpaint_dir, sd_text2image_dir
from wanderview.backends.classical import OpenCVInpainter
from wanderview.backends.hf_inpaint import HFInpainter, open_hole_mask, resize_mask
from wanderview.backends.protocols import Inpainter
from wanderview.backends.registry import make_image_generator, make_inpainter
from wanderview.errors import BackendError


@pytest.fixture(scope="module")
def inpainter() -> HFInpainter:
    return make_inpainter(f"hf:{sd_inpaint_dir()}", device="cpu", steps=2)


def _image(h: int, w: int) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * w))


def _block_hole(h: int, w: int) -> torch.Tensor:
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[:, h // 4 : h // 2, w // 4 : 3 * w // 4] = True
    return mask


def test_known_pixels_exact_and_holes_filled_by_diffusion(inpainter):
    assert isinstance(inpainter, Inpainter) and not inpainter.is_weak_default
    image, mask = _image(50, 70), _block_hole(50, 70)  # not multiples of 8: resized for the model
    holes_black = torch.where(mask, torch.zeros_like(image), image)
    out = inpainter.inpaint(holes_black, mask, prompt="a stone wall", seed=0)
    assert out.shape == (3, 50, 70) and out.dtype == torch.float32
    assert torch.equal(out[:, ~mask[0]], holes_black[:, ~mask[0]])
    assert 0 <= out.min() and out.max() <= 1
    assert out[:, mask[0]].std() > 0.01, "the hole must be filled with something, not left flat"


def test_seeded_determinism(inpainter):
    image, mask = _image(32, 32), _block_hole(32, 32)
    first = inpainter.inpaint(image, mask, "x", seed=4)
    assert torch.equal(first, inpainter.inpaint(image, mask, "x", seed=4))
    assert not torch.equal(first, inpainter.inpaint(image, mask, "x", seed=5))


def test_thin_holes_go_to_telea_not_diffusion(inpainter, monkeypatch):
    image = _image(32, 32)
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[:, 10, :] = True  # a one-pixel crack: opening removes it entirely
    assert not open_hole_mask(mask).any()

    def no_diffusion(*args, **kwargs):
        raise AssertionError("a thin crack must not reach the diffusion model")

    monkeypatch.setattr(inpainter, "_diffuse", no_diffusion)
    out = inpainter.inpaint(image, mask, seed=0)
    expected = OpenCVInpainter("telea", radius=3).inpaint(image, mask)
    assert torch.equal(out, expected)


def test_outpaint_margin_keeps_the_frame_size():
    backend = make_inpainter(f"hf:{sd_inpaint_dir()}", steps=2, outpaint_margin=8)
    image = _image(32, 40)
    mask = torch.zeros(1, 32, 40, dtype=torch.bool)
    mask[:, :, :12] = True  # a hole on the left border
    out = backend.inpaint(image, mask, seed=0)
    assert out.shape == image.shape and torch.equal(out[:, ~mask[0]], image[:, ~mask[0]])


def test_mask_resizing_is_conservative():
    mask = torch.zeros(1, 50, 70, dtype=torch.bool)
    mask[0, 20, 33] = True
    small = resize_mask(mask, (24, 32))
    assert small.shape == (1, 24, 32) and small.any()


def test_encode_decode_for_decoder_finetuning(inpainter):
    images = torch.rand(2, 3, 32, 32)
    latents = inpainter.encode(images)
    assert latents.shape == (2, 4, 16, 16)  # the tiny VAE downsamples by 2
    decoded = inpainter.decode(latents)
    assert decoded.shape == (2, 3, 32, 32) and 0 <= decoded.min() and decoded.max() <= 1
    decoded.mean().backward()
    assert any(p.grad is not None for p in inpainter.vae.decoder.parameters())
    inpainter.vae.zero_grad(set_to_none=True)


def test_inpainter_checks_shapes(inpainter):
    with pytest.raises(ValueError, match="mask"):
        inpainter.inpaint(_image(16, 16), torch.zeros(1, 8, 8, dtype=torch.bool))


def test_pickle_only_pipeline_is_refused():
    folder = pickle_only_copy(sd_inpaint_dir(), "sd-inpaint")
    with pytest.raises(BackendError, match="unet") as info:
        make_inpainter(f"hf:{folder}")
    assert "--allow-pickle" in str(info.value)


def test_missing_hub_pipeline_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError, match="huggingface-cli download nobody-here/no-inpainter"):
        make_inpainter("hf:nobody-here/no-inpainter")


def test_text_to_image_shapes_range_and_seed():
    generator = make_image_generator(f"hf:{sd_text2image_dir()}", device="cpu", steps=2)
    image = generator.generate("a lighthouse", width=40, height=30, seed=1)
    assert image.shape == (3, 30, 40) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.01
    assert torch.equal(image, generator.generate("a lighthouse", width=40, height=30, seed=1))
    assert not torch.equal(image, generator.generate("a lighthouse", width=40, height=30, seed=2))


def test_attention_slicing_and_cpu_offload_options(inpainter):
    image, mask = _image(32, 32), _block_hole(32, 32)
    sliced = make_inpainter(f"hf:{sd_inpaint_dir()}", steps=2, attention_slicing=True, cpu_offload=True)
    # Offload is a CUDA feature: on a CPU-only machine the pipeline simply stays on the CPU.
    assert sliced.pipe.device.type == "cpu"
    slice_sizes = {getattr(p, "slice_size", None) for p in sliced.pipe.unet.attn_processors.values()}
    assert slice_sizes - {None}, "attention slicing must be switched on"
    expected = inpainter.inpaint(image, mask, seed=0)
    assert torch.allclose(sliced.inpaint(image, mask, seed=0), expected, atol=1e-4)
