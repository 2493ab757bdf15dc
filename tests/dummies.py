"""Tiny random Hugging Face models, built in code and saved like real checkpoints.

Each ``*_dir()`` builds its model once per test session (cached), saves it with
``save_pretrained`` (safetensors) into a temporary folder and returns that folder, which the tests
load through ``hf:<folder>`` exactly as a user would. Nothing is downloaded: tokenizers are built
from in-code vocabularies. The weights are random, so outputs are meaningless but their shapes,
ranges and determinism are real.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import torch

_ROOT = Path(tempfile.mkdtemp(prefix="wanderview-dummies-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


def _folder(name: str) -> Path:
    path = _ROOT / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values (the byte-level BPE base alphabet)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    )
    extra = [b for b in range(256) if b not in printable]
    codes = {b: b for b in printable} | {b: 256 + i for i, b in enumerate(extra)}
    return [chr(codes[b]) for b in range(256)]


def clip_tokenizer():
    """A byte-level CLIP BPE tokenizer with no merges: 256 symbols, their '</w>' forms, 2 specials."""
    from transformers import CLIPTokenizer

    symbols = byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _clip_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=514,
        max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513,
    )
    return CLIPTextModel(config)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=16,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=32,
    )


def _unet(in_channels: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=in_channels,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
        norm_num_groups=16,
    )


def _sd_components(in_channels: int) -> dict:
    from diffusers import DDIMScheduler

    torch.manual_seed(0)
    return {
        "unet": _unet(in_channels),
        "vae": _vae(),
        "text_encoder": _clip_text_encoder(),
        "tokenizer": clip_tokenizer(),
        "scheduler": DDIMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
            set_alpha_to_one=False, steps_offset=1,
        ),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


@functools.cache
def sd_inpaint_dir() -> str:
    """A tiny Stable Diffusion inpainting pipeline (9-channel UNet)."""
    from diffusers import StableDiffusionInpaintPipeline

    folder = _folder("sd-inpaint")
    StableDiffusionInpaintPipeline(**_sd_components(9)).save_pretrained(folder)
    return str(folder)


@functools.cache
def sd_text2image_dir() -> str:
    """A tiny Stable Diffusion text-to-image pipeline."""
    from diffusers import StableDiffusionPipeline

    folder = _folder("sd-t2i")
    StableDiffusionPipeline(**_sd_components(4)).save_pretrained(folder)
    return str(folder)


def _write_preprocessor(folder: Path, size: int, multiple: int, keep_aspect: bool, mean, std) -> None:
    config = {
        "image_processor_type": "DPTImageProcessor",
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": mean,
        "image_std": std,
        "size": {"height": size, "width": size},
        "keep_aspect_ratio": keep_aspect,
        "ensure_multiple_of": multiple,
        "resample": 3,
        "do_pad": False,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2))


@functools.cache
def dpt_dir() -> str:
    """A tiny DPT (MiDaS-style ViT) depth model with a square 32x32 processor, like Intel/dpt-large."""
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(0)
    config = DPTConfig(
        hidden_size=32, num_hidden_layers=4, backbone_out_indices=[0, 1, 2, 3], num_attention_heads=4,
        intermediate_size=37, image_size=32, patch_size=8, neck_hidden_sizes=[16, 16, 32, 32],
        fusion_hidden_size=16, head_in_index=-1,
    )
    folder = _folder("dpt")
    DPTForDepthEstimation(config).save_pretrained(folder)
    _write_preprocessor(folder, 32, 1, False, [0.5] * 3, [0.5] * 3)
    return str(folder)


@functools.cache
def depth_anything_dir() -> str:
    """A tiny Depth Anything model (Dinov2 backbone, patch 14), aspect-keeping processor like V2-Small."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(0)
    backbone = Dinov2Config(
        image_size=28, patch_size=14, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=37, out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, patch_size=14,
        neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=16,
    )
    folder = _folder("depth-anything")
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    _write_preprocessor(folder, 42, 14, True, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    return str(folder)


@functools.cache
def zoedepth_dir() -> str:
    """A tiny ZoeDepth (metric depth, BEiT backbone, patch 8) with an aspect-keeping processor."""
    from transformers import BeitConfig, ZoeDepthConfig, ZoeDepthForDepthEstimation

    torch.manual_seed(0)
    backbone = BeitConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=37, out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = ZoeDepthConfig(
        backbone_config=backbone, hidden_size=32, patch_size=8, reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=16, bottleneck_features=16,
        num_relative_features=8, bin_embedding_dim=16, num_attractors=[4, 2, 2, 2],
    )
    folder = _folder("zoedepth")
    ZoeDepthForDepthEstimation(config).save_pretrained(folder)
    _write_preprocessor(folder, 32, 8, True, [0.5] * 3, [0.5] * 3)
    return str(folder)


def pickle_only_copy(folder: str, name: str) -> str:
    """A copy of a saved model whose .safetensors files are replaced by torch pickles (.bin)."""
    from safetensors.torch import load_file

    target = _folder(f"pickle-{name}")
    shutil.copytree(folder, target, dirs_exist_ok=True)
    for weights in list(target.rglob("*.safetensors")):
        # The names transformers/diffusers look for when safetensors are absent.
        stem = "pytorch_model" if weights.stem == "model" else weights.stem
        torch.save(load_file(weights), weights.with_name(stem + ".bin"))
        weights.unlink()
    return str(target)


@functools.cache
def svd_dir() -> str:
    """A tiny Stable Video Diffusion pipeline (the CLIP vision encoder sees 224x224, as SVD resizes to it)."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=8, out_channels=4,
        # Attention only at the coarser level keeps the CPU tests fast.
        down_block_types=("DownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal"),
        up_block_types=("CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=8, projection_class_embeddings_input_dim=96, addition_time_embed_dim=32,
    )
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, interpolation_type="linear",
        prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
        timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
    )
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=224,
            intermediate_size=37, patch_size=32,
        )
    )
    from transformers import CLIPImageProcessor

    extractor = CLIPImageProcessor(crop_size=224, size=224)
    folder = _folder("svd")
    StableVideoDiffusionPipeline(
        vae=vae, image_encoder=encoder, unet=unet, scheduler=scheduler, feature_extractor=extractor
    ).save_pretrained(folder)
    return str(folder)


def t5_tokenizer():
    """A T5 (Unigram) tokenizer from an in-code vocabulary: specials, '▁'-prefixed and bare characters."""
    from transformers import T5Tokenizer

    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,!?'-")
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + c, -3.0) for c in chars] + [(c, -4.0) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=226)


def _tiny_cogvideox_parts(in_channels: int) -> dict:
    """Tokenizer, T5 encoder, VAE and transformer (``in_channels``: 4 noisy latent channels, + 4 of the
    image latent for image-to-video) of the tiny CogVideoX pipelines; call after seeding."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=in_channels, out_channels=4,
        time_embed_dim=2, text_embed_dim=32, num_layers=1, sample_width=8, sample_height=8, sample_frames=9,
        patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
        use_rotary_positional_embeddings=True,
    )  # fmt: skip
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
    )  # fmt: skip
    tokenizer = t5_tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                 relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1)  # fmt: skip
    )
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "transformer": transformer}


@functools.cache
def cogvideox_dir() -> str:
    """A tiny CogVideoX image-to-video pipeline (rotary positions, so any size works)."""
    from diffusers import CogVideoXDDIMScheduler, CogVideoXImageToVideoPipeline

    torch.manual_seed(0)
    folder = _folder("cogvideox")
    pipe = CogVideoXImageToVideoPipeline(**_tiny_cogvideox_parts(8), scheduler=CogVideoXDDIMScheduler())
    pipe.save_pretrained(folder)
    return str(folder)


LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() }}: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def byte_level_tokenizer(specials: list[str]):
    """A ``tokenizers`` byte-level BPE with no merges (one token per byte) plus special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(specials + byte_symbols())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=512,
    )


@functools.cache
def llava_dir() -> str:
    """A tiny LLaVA (CLIP vision tower + Llama) with its processor and chat template."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = byte_level_tokenizer(["<pad>", "<s>", "</s>", "<unk>", "<image>"])
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=30,
            patch_size=15, projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, bos_token_id=1,
            eos_token_id=2, pad_token_id=0,
        ),
        image_token_index=image_token, vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}),
        tokenizer=tokenizer, patch_size=15, vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE, num_additional_image_tokens=1, image_token="<image>",
    )
    folder = _folder("llava")
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ part['text'] }}"
    "{% endif %}{% endfor %}\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@functools.cache
def qwen2_vl_dir() -> str:
    """A tiny Qwen2-VL (2-layer ViT with 2x2 patch merging + 2-layer Qwen2 with M-RoPE).

    Its processor is written as files (tokenizer, image processor, chat template) rather than built:
    transformers builds Qwen2-VL's video processor from them, which needs torchvision.
    """
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                "<|video_pad|>"]  # fmt: skip
    tokenizer = byte_level_tokenizer(specials)
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in specials}
    torch.manual_seed(0)
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}, bos_token_id=1, eos_token_id=2,
            pad_token_id=0,
        ),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),  # fmt: skip
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    folder = _folder("qwen2-vl")
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    image_processor.save_pretrained(folder)
    settings = json.loads((folder / "preprocessor_config.json").read_text())
    settings["processor_class"] = "Qwen2VLProcessor"
    (folder / "preprocessor_config.json").write_text(json.dumps(settings, indent=2))
    (folder / "chat_template.jinja").write_text(QWEN2_VL_CHAT_TEMPLATE)
    return str(folder)


def _tiny_wan_vae_and_text():
    """The tiny Wan VAE, T5 tokenizer and UMT5 encoder every tiny Wan pipeline here shares."""
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])  # fmt: skip
    tokenizer = t5_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                   relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1)  # fmt: skip
    )
    return vae, tokenizer, text_encoder


@functools.cache
def wan_i2v_dir() -> str:
    """A tiny Wan 2.1 image-to-video pipeline (flow matching; CLIP image embeddings; 16-channel VAE)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    vae, tokenizer, text_encoder = _tiny_wan_vae_and_text()
    # in_channels: 16 noisy latent + 4 frame-mask + 16 condition latent channels
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
        text_dim=32, freq_dim=32, ffn_dim=32, num_layers=1, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=32,
    )
    encoder = CLIPVisionModel(
        CLIPVisionConfig(hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
                         image_size=32, intermediate_size=37, patch_size=16)  # fmt: skip
    )
    processor = CLIPImageProcessor(crop_size=32, size=32)
    folder = _folder("wan-i2v")
    WanImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), image_processor=processor,
        image_encoder=encoder,
    ).save_pretrained(folder)
    return str(folder)


@functools.cache
def wan_vace_dir() -> str:
    """A tiny Wan VACE pipeline (per-frame video + mask conditioning through 2 VACE layers)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanVACEPipeline, WanVACETransformer3DModel

    torch.manual_seed(0)
    vae, tokenizer, text_encoder = _tiny_wan_vae_and_text()
    # vace_in_channels: 32 latent channels of the kept and the regenerated video + 64 of the 8x8 mask
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, vace_layers=[0, 1], vace_in_channels=96,
    )
    folder = _folder("wan-vace")
    WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                    scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0)).save_pretrained(folder)  # fmt: skip
    return str(folder)


@functools.cache
def wan_t2v_dir() -> str:
    """A tiny Wan text-to-video pipeline (``WanPipeline``: flow matching, no image condition)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    torch.manual_seed(0)
    vae, tokenizer, text_encoder = _tiny_wan_vae_and_text()
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=32, ffn_dim=32, num_layers=1, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )  # fmt: skip
    folder = _folder("wan-t2v")
    WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0)).save_pretrained(folder)  # fmt: skip
    return str(folder)


@functools.cache
def cogvideox_t2v_dir() -> str:
    """A tiny CogVideoX text-to-video pipeline (``CogVideoXPipeline``, rotary positions)."""
    from diffusers import CogVideoXDDIMScheduler, CogVideoXPipeline

    torch.manual_seed(0)
    folder = _folder("cogvideox-t2v")
    CogVideoXPipeline(**_tiny_cogvideox_parts(4), scheduler=CogVideoXDDIMScheduler()).save_pretrained(folder)
    return str(folder)
