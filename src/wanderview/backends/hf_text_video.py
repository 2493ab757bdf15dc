"""Text-to-video with diffusers: Wan 2.1/2.2 text-to-video (``WanPipeline``) and ``CogVideoXPipeline``.

fourreal's reference video (4Real §3.2, step 1) when no ``--reference-video`` is given and the
image-to-video model cannot make one from text. A plain pipeline call: the checkpoint's
``model_index.json`` names its class, and only the two classes below are accepted.

Sizes: the model runs at the asked size rounded to its multiple (16: an 8x VAE and 2x2 patches), or
at the only size a CogVideoX checkpoint with learned position embeddings supports, and the frames
are resized back. Both make 1 + 4k frames (a causal VAE that compresses 4 frames per latent after
the first); the next such count at or above the asked one is generated and the extra frames dropped.
"""

from __future__ import annotations

import torch

from wanderview.backends.hf_common import (
    HFOptions,
    causal_video_frames,
    load_diffusers_pipeline,
    pipeline_class_name,
    pipeline_video,
    resolve_device,
    resolve_dtype,
    resolve_source,
    seeded_generator,
    transformer_video_size,
)
from wanderview.errors import BackendError

DEFAULT_TEXT_VIDEO_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
SUPPORTED_PIPELINES = ("WanPipeline", "CogVideoXPipeline")


class HFTextVideoGenerator:
    """A diffusers text-to-video pipeline (lazy load); ``generate(prompt, ...)`` -> frames."""

    is_weak_default = False

    def __init__(
        self,
        ref: str = "",
        options: HFOptions | None = None,
        steps: int = 50,
        guidance_scale: float | None = None,
        negative_prompt: str = "",
    ):
        self.options = options or HFOptions()
        self.source = resolve_source(
            ref, DEFAULT_TEXT_VIDEO_MODEL, "model_index.json", self.options.allow_pickle
        )
        self.class_name = pipeline_class_name(self.source)
        if self.class_name not in SUPPORTED_PIPELINES:
            raise BackendError(
                f"{self.source} is a {self.class_name or 'unknown'} pipeline; the hf: text-to-video backend "
                f"supports {', '.join(SUPPORTED_PIPELINES)}"
            )
        self.description = f"Hugging Face {self.class_name} {self.source} (text to video)"
        self.steps, self.guidance_scale, self.negative_prompt = int(steps), guidance_scale, negative_prompt
        self.device = resolve_device(self.options.device)
        # Wan's weights are released in bfloat16 (float16 overflows in its T5); CogVideoX: the hf: policy
        wan_default = "bfloat16" if self.class_name == "WanPipeline" and self.device.type == "cuda" else None
        self.dtype = resolve_dtype(self.options.dtype or wan_default, self.device)
        self._pipe = None

    @property
    def pipe(self):
        """The diffusers pipeline (loaded on first use)."""
        if self._pipe is None:
            self._pipe = load_diffusers_pipeline(
                self.class_name,
                self.source,
                self.dtype,
                self.options,
                self.device,
                "the hf: text-to-video backend",
            )
            if self.class_name == "WanPipeline" and self.dtype != torch.float32:
                self._pipe.vae.to(dtype=torch.float32)  # as the diffusers Wan examples load it
        return self._pipe

    def frame_count(self, num_frames: int) -> int:
        """The next 1 + r*k >= num_frames, r the VAE's temporal compression (4)."""
        return causal_video_frames(self.pipe, num_frames)

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the model runs at: the asked size rounded to 16, or the only size it supports."""
        return transformer_video_size(self.pipe, height, width, 16)

    @torch.no_grad()
    def generate(self, prompt: str, num_frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
        """-> (num_frames, 3, height, width) float32 in [0, 1] on the CPU."""
        if num_frames < 1 or height < 8 or width < 8:
            raise BackendError(f"need at least 1 frame of 8x8 pixels, got {num_frames} of {width}x{height}")
        size = self.model_size(height, width)
        kwargs = {} if self.guidance_scale is None else {"guidance_scale": self.guidance_scale}
        frames = self.pipe(
            prompt=prompt,
            negative_prompt=self.negative_prompt or None,
            height=size[0],
            width=size[1],
            num_frames=self.frame_count(num_frames),
            num_inference_steps=self.steps,
            generator=seeded_generator(seed),
            output_type="pt",
            **kwargs,
        ).frames
        return pipeline_video(frames, num_frames, height, width)
