"""The Wan adapters of guided sampling: ``wan`` (WanImageToVideoPipeline) and ``vace`` (WanVACEPipeline).

See backends/video_adapters.py for what an adapter provides and optim/guided_video.py for the loop.
"""

from __future__ import annotations

import torch

from wanderview.backends.video_adapters import SamplingState, _Adapter
from wanderview.errors import BackendError


class WanAdapter(_Adapter):
    """Wan image-to-video (flow matching); see the module docstring."""

    name = "wan"

    @property
    def supports_last_frame(self) -> bool:
        """Wan FLF2V (image position embeddings for two images) and Wan 2.2 (no image encoder)."""
        config = (self.pipe.transformer or self.pipe.transformer_2).config
        return config.image_dim is None or config.pos_embed_seq_len is not None

    def default_cuda_dtype(self) -> str | None:
        """bfloat16, the dtype Wan's weights are released in (the diffusers examples load it so)."""
        return "bfloat16"

    def after_load(self, pipe) -> None:
        """The VAE and the CLIP image encoder in float32, as the diffusers Wan examples load them: the
        pipeline's ``encode_image`` feeds float32 pixels to the encoder without casting them."""
        pipe.vae.to(dtype=torch.float32)
        if getattr(pipe, "image_encoder", None) is not None:
            pipe.image_encoder.to(dtype=torch.float32)

    def __init__(self, source, class_name, options, steps=50, guidance_scale=5.0, negative_prompt=""):
        super().__init__(source, class_name, options, steps, guidance_scale)
        self.negative_prompt = negative_prompt
        self._text_cache: dict[tuple[str, int], torch.Tensor] = {}

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
        # with the padding positions zeroed as Wan's pipeline does. Cached: score distillation calls
        # prepare() on every step with the same prompt, and T5-XXL is the slowest part of it.
        key = (text, max_length)
        if key not in self._text_cache:
            self._text_cache[key] = self._run_text_encoder(text, max_length)
        return self._text_cache[key]

    def _run_text_encoder(self, text: str, max_length: int) -> torch.Tensor:
        pipe = self.pipe
        tokens = pipe.tokenizer(
            [text],
            padding="max_length",
            max_length=max_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        mask = tokens.attention_mask.to(self.device)
        hidden = pipe.text_encoder(tokens.input_ids.to(self.device), mask).last_hidden_state
        return (hidden * mask[..., None]).to(self.dtype)

    @torch.no_grad()
    def prepare(self, first, last, prompt, num_frames, generator, **unused) -> SamplingState:
        """first/last: (3, h, w) in [0, 1] at the model size (last may be None); the prior is not
        conditioning for this family (it guides only)."""
        pipe = self.pipe
        if pipe.config.expand_timesteps:
            raise BackendError(
                f"{self.source} is a Wan 2.2 TI2V model, which the wan adapter does not support"
            )
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
        noise = self._initial_noise(num_frames, h, w, generator)
        latents, condition = pipe.prepare_latents(
            image,
            1,
            pipe.vae.config.z_dim,
            h,
            w,
            num_frames,
            torch.float32,
            self.device,
            None,
            noise,
            last_image,
        )
        extra["condition"] = condition
        return self._state(latents, extra)

    def _initial_noise(self, num_frames: int, h: int, w: int, generator) -> torch.Tensor:
        """x_T: (1, z_dim, 1 + (num_frames - 1) / 4, h / 8, w / 8) standard normal, drawn on the CPU."""
        pipe = self.pipe
        shape = (
            1,
            pipe.vae.config.z_dim,
            (num_frames - 1) // pipe.vae_scale_factor_temporal + 1,
            h // pipe.vae_scale_factor_spatial,
            w // pipe.vae_scale_factor_spatial,
        )
        return torch.randn(shape, generator=generator).to(self.device)

    def _state(self, latents: torch.Tensor, extra: dict) -> SamplingState:
        """The scheduler's schedule for ``steps`` steps, and Wan 2.2's expert boundary (a timestep)."""
        pipe = self.pipe
        scheduler = pipe.scheduler
        scheduler.set_timesteps(self.steps, device=self.device)
        boundary = pipe.config.boundary_ratio
        extra["boundary"] = None if boundary is None else boundary * scheduler.config.num_train_timesteps
        return SamplingState(latents, scheduler.sigmas.float().clone(), scheduler.timesteps.clone(), extra)

    def _model_inputs(self, x: torch.Tensor, extra: dict) -> dict:
        """The denoiser's inputs besides timestep and text: latents with the image condition."""
        return {
            "hidden_states": torch.cat([x, extra["condition"]], dim=1).to(self.dtype),
            "encoder_hidden_states_image": extra["image_embeds"],
        }

    @torch.no_grad()
    def predict(self, x, i, state):
        """-> (x0_hat, velocity) at step i; classifier-free guidance with ``guidance_scale``."""
        pipe, extra, t = self.pipe, state.extra, state.timesteps[i]
        model = pipe.transformer
        if extra["boundary"] is not None and (t < extra["boundary"] or model is None):
            model = pipe.transformer_2  # Wan 2.2: the low-noise expert below the boundary
        inputs = self._model_inputs(x, extra)

        def velocity(text):
            step = t.expand(x.shape[0])
            return model(timestep=step, encoder_hidden_states=text, return_dict=False, **inputs)[0].float()

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

    def noised(self, x0: torch.Tensor, i: int, state: SamplingState, noise: torch.Tensor) -> torch.Tensor:
        """The flow's forward process at step i: x_s = (1 - s) x0 + s * noise, s = sigmas[i]."""
        s = float(state.sigmas[i])
        return (1.0 - s) * x0 + s * noise

    def encode_grad(self, video: torch.Tensor) -> torch.Tensor:
        """(T, 3, h, w) in [0, 1] -> normalised latents (1, C, T', h/8, w/8), differentiable in
        ``video`` (the VAE's posterior mode; the VAE runs in float32, see ``after_load``)."""
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
        cells = cell_fraction(
            visibility, pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial, causal=True
        )
        return cells.permute(1, 0, 2, 3)[None]


class VACEAdapter(WanAdapter):
    """Wan VACE (flow matching, per-frame video + mask conditioning: 'render + holes').

    Stage I conditions on the prior video itself (its rendered pixels kept, its holes marked to
    generate) and guides toward it as well; Stage II conditions on the first frame alone. The 1.3B VACE
    model is the Wan that fits a 24 GB GPU.
    """

    name = "vace"
    supports_last_frame = False  # the last frame is part of the conditioning video already

    def __init__(
        self,
        source,
        class_name,
        options,
        steps=50,
        guidance_scale=5.0,
        negative_prompt="",
        conditioning_scale=1.0,
    ):
        super().__init__(source, class_name, options, steps, guidance_scale, negative_prompt)
        self.conditioning_scale = float(conditioning_scale)

    @torch.no_grad()
    def prepare(
        self, first, last, prompt, num_frames, generator, prior=None, visibility=None
    ) -> SamplingState:
        """first: (3, h, w) in [0, 1]; prior: (num_frames, 3, h, w) and visibility (num_frames, 1, h, w),
        or None (then every frame after the first is to be generated)."""
        pipe = self.pipe
        h, w = first.shape[1:]
        if prior is None:
            # frames to generate are grey, 128/255 as in the VACE examples
            prior = torch.cat([first[None], first.new_full((num_frames - 1, 3, h, w), 128 / 255)])
            visibility = torch.cat([first.new_ones(1, 1, h, w), first.new_zeros(num_frames - 1, 1, h, w)])
        video = (prior.permute(1, 0, 2, 3)[None] * 2 - 1).to(self.device, torch.float32)
        mask = (visibility < 0.5).float().permute(1, 0, 2, 3)[None].expand(-1, 3, -1, -1, -1).to(self.device)
        cond = pipe.prepare_video_latents(video, mask, [[]], None, self.device)  # no reference images
        cond = torch.cat([cond, pipe.prepare_masks(mask, [[]], None)], dim=1).to(self.dtype)
        model = pipe.transformer or pipe.transformer_2
        scale = torch.full(
            (len(model.config.vace_layers),), self.conditioning_scale, device=self.device, dtype=self.dtype
        )
        noise = self._initial_noise(num_frames, h, w, generator)
        extra = {
            "text": self._encode_text(prompt),
            "negative": self._encode_text(self.negative_prompt),
            "control": cond,
            "scale": scale,
        }
        return self._state(noise, extra)

    def _model_inputs(self, x: torch.Tensor, extra: dict) -> dict:
        """The latents alone, with the VACE control (video + mask) latents beside them."""
        return {
            "hidden_states": x.to(self.dtype),
            "control_hidden_states": extra["control"],
            "control_hidden_states_scale": extra["scale"],
        }
