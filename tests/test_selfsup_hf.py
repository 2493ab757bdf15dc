"""``selfsup:hf:<path>``: a tiny random SD-inpainting checkpoint built in code, MEBs inserted."""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")


def build_tiny_sd_inpainting(folder) -> str:
    """Save a tiny random Stable Diffusion inpainting pipeline (9-channel UNet) to ``folder``."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=9,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=1000,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    symbols = [chr(i) for i in range(33, 127)] + [chr(i) for i in range(161, 256)]
    symbols += [chr(256 + i) for i in range(256 - len(symbols))]
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(vocab) + i for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    pipe = StableDiffusionInpaintPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return str(folder)


def test_selfsup_hf_loads_is_identity_at_start_and_finetunes(tmp_path):
    from wanderview.backends.selfsup import make_selfsup_inpainter
    from wanderview.cameras.camera import Camera

    source = build_tiny_sd_inpainting(tmp_path / "tiny-sd")
    inpainter = make_selfsup_inpainter(
        f"hf:{source}", device="cpu", quiet=True, steps=2, sample_steps=2, pairs=2
    )
    sd = inpainter.diffusion
    assert len(sd.mebs) == 2 and not inpainter.is_weak_default

    # zero-initialised MEBs: the M-UNet predicts exactly what the pretrained UNet does
    x = torch.randn(1, 4, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    masked = torch.randn(1, 4, 8, 8)
    text = sd._encode_text([""])
    t = torch.tensor([500])
    with torch.no_grad():
        with_meb = sd._eps(x, t, mask, masked, text)
        plain = sd.unet(torch.cat([x, mask, masked], 1), t, encoder_hidden_states=text).sample
    assert torch.equal(with_meb, plain)

    image = torch.rand(3, 64, 64)
    depth = torch.full((1, 64, 64), 4.0)
    depth[:, 16:48, 24:40] = 2.0
    inpainter.prepare(image, depth, Camera.from_fov(60.0, 64, 64))
    assert len(inpainter.losses) == 2 and all(torch.isfinite(torch.tensor(inpainter.losses)))
    holes = torch.zeros(1, 64, 64, dtype=torch.bool)
    holes[:, 10:30, 10:20] = True
    out = inpainter.inpaint(image, holes, prompt="a wall", seed=0)
    assert out.shape == (3, 64, 64)
    assert torch.equal(out[:, ~holes[0]], image[:, ~holes[0]])
    assert torch.equal(out, inpainter.inpaint(image, holes, prompt="a wall", seed=0))
