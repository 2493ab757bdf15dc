"""Text-to-image with diffusers ``AutoPipelineForText2Image`` (any Stable Diffusion family checkpoint)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wanderview.backends.hf_common import (
    HFOptions,
    load_diffusers_pipeline,
    resolve_device,
    resolve_dtype,
    resolve_source,
    round_to_multiple,
    seeded_generator,
)
from wanderview.errors import BackendError

DEFAULT_IMAGE_MODEL = "stabilityai/stable-diffusion-2-1-base"


class HFImageGenerator:
    """A diffusers text-to-image pipeline behind the ImageGenerator protocol (lazy load)."""

    is_weak_default = False

    def __init__(
        self,
        ref: str = "",
        options: HFOptions | None = None,
        steps: int = 50,
        guidance_scale: float = 7.5,
        negative_prompt: str | None = None,
    ):
        self.options = options or HFOptions()
        self.source = resolve_source(ref, DEFAULT_IMAGE_MODEL, "model_index.json", self.options.allow_pickle)
        self.description = f"Hugging Face text-to-image pipeline {self.source}"
        self.steps, self.guidance_scale, self.negative_prompt = (
            int(steps),
            float(guidance_scale),
            negative_prompt,
        )
        self.device = resolve_device(self.options.device)
        self.dtype = resolve_dtype(self.options.dtype, self.device)
        self._pipe = None

    @property
    def pipe(self):
        """The diffusers pipeline (loaded on first use)."""
        if self._pipe is None:
            self._pipe = load_diffusers_pipeline(
                "AutoPipelineForText2Image", self.source, self.dtype, self.options, self.device,
                "the hf: text-to-image backend"
            )
        return self._pipe

    @torch.no_grad()
    def generate(self, prompt: str, width: int, height: int, seed: int = 0) -> torch.Tensor:
        """-> (3,height,width) float32 in [0,1]; the model runs at the nearest multiples of 8."""
        if width < 1 or height < 1:
            raise BackendError(f"image size must be positive, got {width}x{height}")
        size = (round_to_multiple(height), round_to_multiple(width))
        out = (
            self.pipe(
                prompt=prompt,
                negative_prompt=self.negative_prompt,
                height=size[0],
                width=size[1],
                num_inference_steps=self.steps,
                guidance_scale=self.guidance_scale,
                generator=seeded_generator(seed),
                output_type="pt",
            )
            .images.float()
            .cpu()
        )
        if tuple(out.shape[-2:]) != (height, width):
            out = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=False)
        return out[0].clamp(0, 1)
