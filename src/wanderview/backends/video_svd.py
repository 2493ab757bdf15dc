"""The Stable Video Diffusion adapter of guided sampling (``svd``: StableVideoDiffusionPipeline).

See backends/video_adapters.py for what an adapter provides and optim/guided_video.py for the loop.
"""

from __future__ import annotations

import torch

from wanderview.backends.video_adapters import SamplingState, _Adapter


class SVDAdapter(_Adapter):
    """Stable Video Diffusion (EDM Euler, v-prediction); see the module docstring."""

    name = "svd"
    size_multiple = 64
    uses_prompt = False

    def __init__(
        self,
        source,
        class_name,
        options,
        steps=25,
        guidance_scale=3.0,
        min_guidance_scale=1.0,
        fps=7,
        motion_bucket_id=127,
        noise_aug_strength=0.02,
    ):
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
        image_latents = pipe._encode_vae_image(image.to(pipe.vae.dtype), self.device, 1, cfg).to(
            embeddings.dtype
        )
        time_ids = pipe._get_add_time_ids(
            self.fps - 1, self.motion_bucket_id, self.noise_aug_strength, embeddings.dtype, 1, 1, cfg
        ).to(self.device)
        scheduler = pipe.scheduler
        scheduler.set_timesteps(self.steps, device=self.device)
        h, w = first.shape[1:]
        shape = (
            1,
            num_frames,
            pipe.unet.config.in_channels // 2,
            h // pipe.vae_scale_factor,
            w // pipe.vae_scale_factor,
        )
        latents = torch.randn(shape, generator=generator).to(self.device) * scheduler.init_noise_sigma
        scale = torch.linspace(self.min_guidance_scale, self.guidance_scale, num_frames).to(self.device)
        extra = {
            "embeddings": embeddings,
            "image_latents": image_latents[:, None].repeat(1, num_frames, 1, 1, 1),
            "time_ids": time_ids,
            "scale": scale.view(1, -1, 1, 1, 1),
            "cfg": cfg,
        }
        return SamplingState(
            latents.float(), scheduler.sigmas.float().clone(), scheduler.timesteps.clone(), extra
        )

    @torch.no_grad()
    def predict(self, x, i, state):
        """-> (x0_hat, model output) at step i; the scheduler's pred_original_sample is x0_hat."""
        pipe, extra, t = self.pipe, state.extra, state.timesteps[i]
        inputs = torch.cat([x] * 2) if extra["cfg"] else x
        inputs = self._pin(i).scale_model_input(inputs, t)
        inputs = torch.cat([inputs, extra["image_latents"]], dim=2).to(self.dtype)
        out = pipe.unet(
            inputs,
            t,
            encoder_hidden_states=extra["embeddings"],
            added_time_ids=extra["time_ids"],
            return_dict=False,
        )[0].float()
        if extra["cfg"]:
            uncond, cond = out.chunk(2)
            out = uncond + extra["scale"] * (cond - uncond)
        x0 = self._pin(i).step(out, t, x).pred_original_sample
        return x0.float(), out

    def renoise(self, x_prev, i, state, generator):
        """x at sigma_{i+1} -> x at sigma_i: x_s = x0 + s * noise, so add sqrt(s_i^2 - s_{i+1}^2) noise."""
        s, s_prev = float(state.sigmas[i]), float(state.sigmas[i + 1])
        return x_prev + max(s * s - s_prev * s_prev, 0.0) ** 0.5 * self._noise(x_prev, generator)

    def noised(self, x0: torch.Tensor, i: int, state: SamplingState, noise: torch.Tensor) -> torch.Tensor:
        """EDM's forward process at step i: x_s = x0 + s * noise, s = sigmas[i] (what ``predict`` takes)."""
        return x0 + float(state.sigmas[i]) * noise

    def encode_grad(self, video: torch.Tensor) -> torch.Tensor:
        """(T, 3, h, w) in [0, 1] -> scaled latents (1, T, 4, h/8, w/8), differentiable in ``video``."""
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
