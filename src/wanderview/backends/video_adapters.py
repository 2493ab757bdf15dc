"""Image-to-video models opened up for guided sampling: one small adapter per model family.

``optim/guided_video.py`` runs the denoising loop; an adapter gives it one model's pieces, built from
the diffusers pipeline's own components (encoders, VAE, denoiser, scheduler):

- ``wan`` (``WanImageToVideoPipeline``: Wan 2.1 I2V / FLF2V, Wan 2.2 A14B I2V with two experts).
  Flow matching: x0_hat = x_t - sigma * v; forward process x_s = (1 - s) x0 + s * noise. Latents
  (B, 16, 1 + (T-1)/4, H/8, W/8), normalised by the VAE's per-channel mean and std. Conditions on the
  first frame, and on the last one too when asked.
- ``vace`` (``WanVACEPipeline``: Wan 2.1 VACE 1.3B / 14B). The same flow matching and latents as
  ``wan``; conditioned per frame on a video and a mask, so Stage I gives it the prior video with its
  holes marked (and also guides toward the prior), Stage II the first frame with the rest to generate.
- ``svd`` (``StableVideoDiffusionPipeline``). EDM/Euler with v-prediction: x0_hat is the scheduler's
  ``pred_original_sample``; forward process x_s = x0 + s * noise. Latents (B, T, 4, H/8, W/8) scaled by
  the VAE's scaling factor. First frame only; takes no text.

Every adapter pins the scheduler's step index before each call, so that renoising rounds can repeat a
step (diffusers' schedulers otherwise advance their index on every ``step``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from wanderview.backends.hf_common import (
    HFOptions,
    load_diffusers_pipeline,
    load_error,
    resolve_device,
    resolve_dtype,
    resolve_source,
    round_to_multiple,
)
from wanderview.errors import BackendError

# adapter name -> the diffusers pipeline class it opens
ADAPTER_PIPELINES = {
    "wan": "WanImageToVideoPipeline",
    "vace": "WanVACEPipeline",
    "svd": "StableVideoDiffusionPipeline",
}
DEFAULT_ADAPTER_MODELS = {
    "wan": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
    "vace": "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
    "svd": "stabilityai/stable-video-diffusion-img2vid-xt",
}


@dataclass
class SamplingState:
    """One sampling run's conditioning and schedule."""

    latents: torch.Tensor
    """x_T, the starting noise in the adapter's latent layout."""
    sigmas: torch.Tensor
    """(steps + 1,) noise levels, the last 0."""
    timesteps: torch.Tensor
    """(steps,) the model's timestep inputs."""
    extra: dict = field(default_factory=dict)


def _class_name(source: str) -> str:
    path = Path(source) / "model_index.json"
    if not path.is_file():
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, "model_index.json"))
        except Exception as err:
            raise load_error(source, err) from err
    return json.loads(path.read_text()).get("_class_name", "")


class _Adapter:
    """What both families share: loading, sizes, and the scheduler calls with a pinned step index."""

    name = ""
    size_multiple = 16
    supports_last_frame = False
    uses_prompt = True
    is_weak_default = False

    def __init__(self, source: str, class_name: str, options: HFOptions, steps: int, guidance_scale: float):
        self.source, self.class_name, self.options = source, class_name, options
        self.steps, self.guidance_scale = int(steps), float(guidance_scale)
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(options.dtype, self.device)
        note = "" if self.uses_prompt else " (image-conditioned only: the prompt is not used)"
        self.description = f"{self.name} adapter over Hugging Face {class_name} {source}{note}"
        self._pipe = None

    @property
    def pipe(self):
        """The diffusers pipeline (loaded on first use)."""
        if self._pipe is None:
            self._pipe = load_diffusers_pipeline(self.class_name, self.source, self.dtype, self.options,
                                                 self.device, "dreamjourney's guided sampling")  # fmt: skip
        return self._pipe

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the model runs at: the frame size rounded to the model's multiple."""
        return round_to_multiple(height, self.size_multiple), round_to_multiple(width, self.size_multiple)

    def _pin(self, i: int):
        scheduler = self.pipe.scheduler
        scheduler._step_index = i
        return scheduler

    def step(self, output: torch.Tensor, i: int, x: torch.Tensor, state: SamplingState) -> torch.Tensor:
        """The scheduler's own step from x_t (step i) to x_{t-1}."""
        return self._pin(i).step(output, state.timesteps[i], x, return_dict=False)[0]

    def _noise(self, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like)


class WanAdapter(_Adapter):
    """Wan image-to-video (flow matching); see the module docstring."""

    name = "wan"

    @property
    def supports_last_frame(self) -> bool:
        """Wan FLF2V (image position embeddings for two images) and Wan 2.2 (no image encoder)."""
        config = (self.pipe.transformer or self.pipe.transformer_2).config
        return config.image_dim is None or config.pos_embed_seq_len is not None

    def __init__(self, source, class_name, options, steps=50, guidance_scale=5.0, negative_prompt=""):
        super().__init__(source, class_name, options, steps, guidance_scale)
        self.negative_prompt = negative_prompt

    def frame_count(self, n: int) -> int:
        """The next 1 + 4k >= n (Wan's causal VAE compresses 4 frames per latent after the first)."""
        ratio = int(self.pipe.vae_scale_factor_temporal)
        return 1 + ratio * max(1, -(-(n - 1) // ratio))

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        pipe = self.pipe
        patch = (pipe.transformer or pipe.transformer_2).config.patch_size
        self.size_multiple = int(pipe.vae_scale_factor_spatial) * int(patch[1])
        return super().model_size(height, width)

    def _encode_text(self, text: str, max_length: int = 512) -> torch.Tensor:
        # Wan's own encode_prompt needs ftfy to clean the text; the tokeniser and T5 are used directly,
        # with the padding positions zeroed as Wan's pipeline does.
        pipe = self.pipe
        tokens = pipe.tokenizer([text], padding="max_length", max_length=max_length, truncation=True,
                                add_special_tokens=True, return_attention_mask=True, return_tensors="pt")  # fmt: skip
        mask = tokens.attention_mask.to(self.device)
        hidden = pipe.text_encoder(tokens.input_ids.to(self.device), mask).last_hidden_state
        return (hidden * mask[..., None]).to(self.dtype)

    @torch.no_grad()
    def prepare(self, first, last, prompt, num_frames, generator, **unused) -> SamplingState:
        """first/last: (3, h, w) in [0, 1] at the model size (last may be None); the prior is not
        conditioning for this family (it guides only)."""
        pipe = self.pipe
        if pipe.config.expand_timesteps:
            raise BackendError(f"{self.source} is a Wan 2.2 TI2V model, which the wan adapter does not support")
        h, w = first.shape[1:]
        image = first[None].to(self.device, torch.float32) * 2 - 1
        last_image = None if last is None else last[None].to(self.device, torch.float32) * 2 - 1
        extra = {"text": self._encode_text(prompt), "negative": self._encode_text(self.negative_prompt)}
        model = pipe.transformer or pipe.transformer_2
        extra["image_embeds"] = None
        if model.config.image_dim is not None:
            from wanderview.backends.hf_common import to_pil

            # first+last (FLF2V): two embeddings, which the transformer joins into one sequence itself
            images = [to_pil(first)] + ([] if last is None else [to_pil(last)])
            extra["image_embeds"] = pipe.encode_image(images, self.device).to(self.dtype)
        noise = torch.randn((1, pipe.vae.config.z_dim, (num_frames - 1) // pipe.vae_scale_factor_temporal + 1,
                             h // pipe.vae_scale_factor_spatial, w // pipe.vae_scale_factor_spatial),
                            generator=generator).to(self.device)  # fmt: skip
        latents, condition = pipe.prepare_latents(image, 1, pipe.vae.config.z_dim, h, w, num_frames, torch.float32,
                                                  self.device, None, noise, last_image)  # fmt: skip
        extra["condition"] = condition
        scheduler = pipe.scheduler
        scheduler.set_timesteps(self.steps, device=self.device)
        boundary = pipe.config.boundary_ratio
        extra["boundary"] = None if boundary is None else boundary * scheduler.config.num_train_timesteps
        return SamplingState(latents, scheduler.sigmas.float().clone(), scheduler.timesteps.clone(), extra)

    @torch.no_grad()
    def predict(self, x, i, state):
        """-> (x0_hat, velocity) at step i; classifier-free guidance with ``guidance_scale``."""
        pipe, extra, t = self.pipe, state.extra, state.timesteps[i]
        model = pipe.transformer
        if extra["boundary"] is not None and (t < extra["boundary"] or model is None):
            model = pipe.transformer_2
        inputs = torch.cat([x, extra["condition"]], dim=1).to(self.dtype)

        def velocity(text):
            return model(hidden_states=inputs, timestep=t.expand(x.shape[0]), encoder_hidden_states=text,
                         encoder_hidden_states_image=extra["image_embeds"], return_dict=False)[0].float()  # fmt: skip

        v = velocity(extra["text"])
        if self.guidance_scale > 1:
            uncond = velocity(extra["negative"])
            v = uncond + self.guidance_scale * (v - uncond)
        return x - float(state.sigmas[i]) * v, v

    def renoise(self, x_prev, i, state, generator):
        """x at sigma_{i+1} -> x at sigma_i by the flow's forward process (exact marginals)."""
        s, s_prev = float(state.sigmas[i]), float(state.sigmas[i + 1])
        a = (1.0 - s) / (1.0 - s_prev)
        b = max(s * s - (a * s_prev) ** 2, 0.0) ** 0.5
        return a * x_prev + b * self._noise(x_prev, generator)

    def _norm(self):
        vae = self.pipe.vae
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(self.device)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(self.device)
        return mean, std

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(T, 3, h, w) in [0, 1] -> normalised latents (1, C, T', h/8, w/8)."""
        vae = self.pipe.vae
        frames = (video.permute(1, 0, 2, 3)[None] * 2 - 1).to(self.device, vae.dtype)
        latents = vae.encode(frames).latent_dist.mode().float()
        mean, std = self._norm()
        return (latents - mean) / std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (1, C, T', h', w') -> (T, 3, h, w) in [0, 1]."""
        vae = self.pipe.vae
        mean, std = self._norm()
        video = vae.decode((latents * std + mean).to(vae.dtype), return_dict=False)[0]
        return ((video[0].permute(1, 0, 2, 3).float() + 1) / 2).clamp(0, 1).cpu()

    def latent_fraction(self, visibility: torch.Tensor) -> torch.Tensor:
        """(T, 1, h, w) -> (1, 1, T', h/8, w/8) visible fraction per latent cell."""
        from wanderview.optim.guided_video import cell_fraction

        pipe = self.pipe
        cells = cell_fraction(visibility, pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial, causal=True)
        return cells.permute(1, 0, 2, 3)[None]


class VACEAdapter(WanAdapter):
    """Wan VACE (flow matching, per-frame video + mask conditioning: 'render + holes').

    Stage I conditions on the prior video itself (its rendered pixels kept, its holes marked to
    generate) and guides toward it as well; Stage II conditions on the first frame alone. The 1.3B VACE
    model is the Wan that fits a 24 GB GPU.
    """

    name = "vace"
    supports_last_frame = False  # the last frame is part of the conditioning video already

    def __init__(self, source, class_name, options, steps=50, guidance_scale=5.0, negative_prompt="",
                 conditioning_scale=1.0):  # fmt: skip
        super().__init__(source, class_name, options, steps, guidance_scale, negative_prompt)
        self.conditioning_scale = float(conditioning_scale)

    @torch.no_grad()
    def prepare(self, first, last, prompt, num_frames, generator, prior=None, visibility=None) -> SamplingState:
        """first: (3, h, w) in [0, 1]; prior: (num_frames, 3, h, w) and visibility (num_frames, 1, h, w),
        or None (then every frame after the first is to be generated)."""
        pipe = self.pipe
        h, w = first.shape[1:]
        if prior is None:
            prior = torch.cat([first[None], torch.full((num_frames - 1, 3, h, w), 0.5)])
            visibility = torch.cat([torch.ones(1, 1, h, w), torch.zeros(num_frames - 1, 1, h, w)])
        video = (prior.permute(1, 0, 2, 3)[None] * 2 - 1).to(self.device, torch.float32)
        mask = (visibility < 0.5).float().permute(1, 0, 2, 3)[None].expand(-1, 3, -1, -1, -1).to(self.device)
        cond = pipe.prepare_video_latents(video, mask, [[]], None, self.device)  # no reference images
        cond = torch.cat([cond, pipe.prepare_masks(mask, [[]], None)], dim=1).to(self.dtype)
        model = pipe.transformer or pipe.transformer_2
        scale = torch.full((len(model.config.vace_layers),), self.conditioning_scale, device=self.device,
                           dtype=self.dtype)  # fmt: skip
        noise = torch.randn((1, pipe.vae.config.z_dim, (num_frames - 1) // pipe.vae_scale_factor_temporal + 1,
                             h // pipe.vae_scale_factor_spatial, w // pipe.vae_scale_factor_spatial),
                            generator=generator).to(self.device)  # fmt: skip
        extra = {"text": self._encode_text(prompt), "negative": self._encode_text(self.negative_prompt),
                 "control": cond, "scale": scale}  # fmt: skip
        scheduler = pipe.scheduler
        scheduler.set_timesteps(self.steps, device=self.device)
        boundary = pipe.config.boundary_ratio
        extra["boundary"] = None if boundary is None else boundary * scheduler.config.num_train_timesteps
        return SamplingState(noise, scheduler.sigmas.float().clone(), scheduler.timesteps.clone(), extra)

    @torch.no_grad()
    def predict(self, x, i, state):
        """-> (x0_hat, velocity) at step i; classifier-free guidance with ``guidance_scale``."""
        pipe, extra, t = self.pipe, state.extra, state.timesteps[i]
        model = pipe.transformer
        if extra["boundary"] is not None and (t < extra["boundary"] or model is None):
            model = pipe.transformer_2

        def velocity(text):
            return model(hidden_states=x.to(self.dtype), timestep=t.expand(x.shape[0]), encoder_hidden_states=text,
                         control_hidden_states=extra["control"], control_hidden_states_scale=extra["scale"],
                         return_dict=False)[0].float()  # fmt: skip

        v = velocity(extra["text"])
        if self.guidance_scale > 1:
            uncond = velocity(extra["negative"])
            v = uncond + self.guidance_scale * (v - uncond)
        return x - float(state.sigmas[i]) * v, v


class SVDAdapter(_Adapter):
    """Stable Video Diffusion (EDM Euler, v-prediction); see the module docstring."""

    name = "svd"
    size_multiple = 64
    uses_prompt = False

    def __init__(self, source, class_name, options, steps=25, guidance_scale=3.0, min_guidance_scale=1.0,
                 fps=7, motion_bucket_id=127, noise_aug_strength=0.02):  # fmt: skip
        super().__init__(source, class_name, options, steps, guidance_scale)
        self.min_guidance_scale, self.fps = float(min_guidance_scale), int(fps)
        self.motion_bucket_id, self.noise_aug_strength = int(motion_bucket_id), float(noise_aug_strength)

    def frame_count(self, n: int) -> int:
        """SVD makes any number of frames."""
        return max(1, n)

    @torch.no_grad()
    def prepare(self, first, last, prompt, num_frames, generator, **unused) -> SamplingState:
        """first: (3, h, w) in [0, 1] at the model size; ``last``, ``prompt`` and the prior are not used."""
        from wanderview.backends.hf_common import to_pil

        pipe = self.pipe
        cfg = self.guidance_scale > 1
        embeddings = pipe._encode_image(to_pil(first), self.device, 1, cfg)
        image = first[None].to(self.device, torch.float32) * 2 - 1
        image = image + self.noise_aug_strength * self._noise(image, generator)
        image_latents = pipe._encode_vae_image(image.to(pipe.vae.dtype), self.device, 1, cfg).to(embeddings.dtype)
        time_ids = pipe._get_add_time_ids(self.fps - 1, self.motion_bucket_id, self.noise_aug_strength,
                                          embeddings.dtype, 1, 1, cfg).to(self.device)  # fmt: skip
        scheduler = pipe.scheduler
        scheduler.set_timesteps(self.steps, device=self.device)
        h, w = first.shape[1:]
        shape = (1, num_frames, pipe.unet.config.in_channels // 2, h // pipe.vae_scale_factor,
                 w // pipe.vae_scale_factor)  # fmt: skip
        latents = torch.randn(shape, generator=generator).to(self.device) * scheduler.init_noise_sigma
        scale = torch.linspace(self.min_guidance_scale, self.guidance_scale, num_frames).to(self.device)
        extra = {"embeddings": embeddings, "image_latents": image_latents[:, None].repeat(1, num_frames, 1, 1, 1),
                 "time_ids": time_ids, "scale": scale.view(1, -1, 1, 1, 1), "cfg": cfg}  # fmt: skip
        return SamplingState(latents.float(), scheduler.sigmas.float().clone(), scheduler.timesteps.clone(), extra)

    @torch.no_grad()
    def predict(self, x, i, state):
        """-> (x0_hat, model output) at step i; the scheduler's pred_original_sample is x0_hat."""
        pipe, extra, t = self.pipe, state.extra, state.timesteps[i]
        inputs = torch.cat([x] * 2) if extra["cfg"] else x
        inputs = self._pin(i).scale_model_input(inputs, t)
        inputs = torch.cat([inputs, extra["image_latents"]], dim=2).to(self.dtype)
        out = pipe.unet(inputs, t, encoder_hidden_states=extra["embeddings"], added_time_ids=extra["time_ids"],
                        return_dict=False)[0].float()  # fmt: skip
        if extra["cfg"]:
            uncond, cond = out.chunk(2)
            out = uncond + extra["scale"] * (cond - uncond)
        x0 = self._pin(i).step(out, t, x).pred_original_sample
        return x0.float(), out

    def renoise(self, x_prev, i, state, generator):
        """x at sigma_{i+1} -> x at sigma_i: x_s = x0 + s * noise, so add sqrt(s_i^2 - s_{i+1}^2) noise."""
        s, s_prev = float(state.sigmas[i]), float(state.sigmas[i + 1])
        return x_prev + max(s * s - s_prev * s_prev, 0.0) ** 0.5 * self._noise(x_prev, generator)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(T, 3, h, w) in [0, 1] -> scaled latents (1, T, 4, h/8, w/8)."""
        vae = self.pipe.vae
        frames = (video * 2 - 1).to(self.device, vae.dtype)
        latents = vae.encode(frames).latent_dist.mode().float()
        return (latents * vae.config.scaling_factor)[None]

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(1, T, 4, h', w') -> (T, 3, h, w) in [0, 1]."""
        frames = self.pipe.decode_latents(latents.to(self.pipe.vae.dtype), latents.shape[1], 8)
        return ((frames[0].permute(1, 0, 2, 3).float() + 1) / 2).clamp(0, 1).cpu()

    def latent_fraction(self, visibility: torch.Tensor) -> torch.Tensor:
        """(T, 1, h, w) -> (1, T, 1, h/8, w/8): SVD's VAE encodes every frame on its own."""
        from wanderview.optim.guided_video import cell_fraction

        return cell_fraction(visibility, 1, self.pipe.vae_scale_factor, causal=False)[None]


ADAPTERS = {"wan": WanAdapter, "vace": VACEAdapter, "svd": SVDAdapter}


def make_video_adapter(spec: str, adapter: str = "auto", steps: int | None = None,
                       guidance_scale: float | None = None, **options):  # fmt: skip
    """A guided-sampling adapter for ``spec`` (hf:<id-or-folder> of an image-to-video pipeline).

    adapter: ``auto`` (chosen by the checkpoint's pipeline class), ``wan``, ``vace`` or ``svd``.
    options: the shared loading options (device, dtype, allow_pickle, cpu_offload, attention_slicing).
    """
    if adapter != "auto" and adapter not in ADAPTERS:
        raise BackendError(f"unknown video adapter {adapter!r}; valid: auto, {', '.join(ADAPTERS)}")
    name, _, rest = (spec or "").strip().partition(":")
    if name != "hf":
        raise BackendError(f"unknown video model {spec!r}; valid: none, hf:<hub-id-or-path>")
    hf = HFOptions(**{k: v for k, v in options.items() if v is not None})
    default = DEFAULT_ADAPTER_MODELS["wan" if adapter == "auto" else adapter]
    source = resolve_source(rest, default, "model_index.json", hf.allow_pickle)
    class_name = _class_name(source)
    found = next((a for a, c in ADAPTER_PIPELINES.items() if c == class_name), None)
    if found is None:
        raise BackendError(
            f"{source} is a {class_name or 'an unknown pipeline'}, not an image-to-video model the guided "
            f"sampler supports ({', '.join(ADAPTER_PIPELINES.values())})"
        )
    if adapter not in ("auto", found):
        raise BackendError(f"{source} is a {class_name}, which the {adapter} adapter cannot run (use {found})")
    kwargs = {k: v for k, v in (("steps", steps), ("guidance_scale", guidance_scale)) if v is not None}
    return ADAPTERS[found](source, class_name, hf, **kwargs)
