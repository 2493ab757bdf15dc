"""Stable Diffusion inpainting (diffusers ``AutoPipelineForInpainting``) with SceneScape's mask handling.

How a hole is filled:
1. The hole mask is *opened* with a 3x3 kernel. Thin slivers and single pixels (cracks between
   re-projected mesh triangles) vanish from the opened mask; they are filled by OpenCV Telea from
   their immediate neighbours, because diffusion at 1/8 latent resolution would smear them.
2. What remains (the opened mask) is filled by the diffusion model. Optionally the image is first
   padded by ``outpaint_margin`` pixels of hole on every side, so that holes touching the border
   are continued outwards consistently; the padding is cropped off afterwards.
3. Sizes are rounded to multiples of 8 for the model and resized back.
4. Known pixels are pasted back, so everything outside the hole mask is returned bit-for-bit.

``encode``/``decode`` expose the autoencoder (``vae``) so that SceneScape can finetune the decoder.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from wanderview.backends.classical import OpenCVInpainter, paste_known
from wanderview.backends.hf_common import (
    HFOptions,
    load_diffusers_pipeline,
    resolve_device,
    resolve_dtype,
    resolve_source,
    round_to_multiple,
    seeded_generator,
)
from wanderview.backends.protocols import check_image, check_mask

DEFAULT_INPAINT_MODEL = "stabilityai/stable-diffusion-2-inpainting"


def open_hole_mask(mask: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """Morphological opening of a hole mask (1,H,W) bool: removes holes thinner than the kernel."""
    kernel = np.ones((kernel_size, kernel_size), np.uint8)
    opened = cv2.morphologyEx(mask[0].cpu().numpy().astype(np.uint8), cv2.MORPH_OPEN, kernel)
    return torch.from_numpy(opened.astype(bool))[None].to(mask.device)


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (1,H,W) bool hole mask conservatively: any overlap with a hole stays a hole."""
    if tuple(mask.shape[1:]) == tuple(size):
        return mask
    soft = F.interpolate(mask[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return soft > 1e-3


class HFInpainter:
    """A diffusers inpainting pipeline behind the Inpainter protocol (lazy load)."""

    is_weak_default = False

    def __init__(
        self,
        ref: str = "",
        options: HFOptions | None = None,
        steps: int = 50,
        guidance_scale: float = 7.5,
        outpaint_margin: int = 0,
    ):
        self.options = options or HFOptions()
        self.source = resolve_source(
            ref, DEFAULT_INPAINT_MODEL, "model_index.json", self.options.allow_pickle
        )
        self.description = f"Hugging Face inpainting pipeline {self.source}"
        self.steps, self.guidance_scale, self.outpaint_margin = (
            int(steps),
            float(guidance_scale),
            int(outpaint_margin),
        )
        self.device = resolve_device(self.options.device)
        self.dtype = resolve_dtype(self.options.dtype, self.device)
        self._pipe = None
        self._telea = OpenCVInpainter("telea", radius=3)

    @property
    def pipe(self):
        """The diffusers pipeline (loaded on first use)."""
        if self._pipe is None:
            self._pipe = load_diffusers_pipeline(
                "AutoPipelineForInpainting", self.source, self.dtype, self.options, self.device,
                "the hf: inpainting backend"
            )
        return self._pipe

    @property
    def vae(self) -> torch.nn.Module:
        """The pipeline's autoencoder (``AutoencoderKL``), e.g. for decoder finetuning."""
        return self.pipe.vae

    def decoder_module(self) -> torch.nn.Module:
        """The autoencoder's decoder (LatentInpainter: the module SceneScape finetunes; loads it)."""
        return self.vae.decoder

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B,3,H,W) in [0,1], H and W multiples of 8 -> latents (B,C,H/8,W/8), posterior mean."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B,3,H,W), got {tuple(images.shape)}")
        vae = self.vae
        x = (images * 2 - 1).to(device=vae.device, dtype=vae.dtype)
        return vae.encode(x).latent_dist.mean * vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (B,C,h,w) as ``encode`` gives them -> images (B,3,8h,8w) in [0,1], differentiable."""
        vae = self.vae
        x = vae.decode(latents.to(device=vae.device, dtype=vae.dtype) / vae.config.scaling_factor).sample
        return ((x.float() + 1) / 2).clamp(0, 1)

    def inpaint(self, image, mask, prompt="", negative_prompt=None, seed=0) -> torch.Tensor:
        """image: (3,H,W) in [0,1]; mask: (1,H,W) bool, True = fill -> (3,H,W); known pixels exact, seeded."""
        check_image(image)
        check_mask(mask, image)
        if not bool(mask.any()):
            return image.clone()
        opened = open_hole_mask(mask)
        # Thin holes: Telea from the neighbours, knowing that the big holes are unknown too.
        result = (
            paste_known(self._telea.inpaint(image, mask), image, mask & ~opened)
            if bool((mask & ~opened).any())
            else image.clone()
        )
        if bool(opened.any()):
            filled = self._diffuse(result, opened, prompt, negative_prompt, seed)
            result = paste_known(filled, result, opened)
        return paste_known(result, image, mask)

    @torch.no_grad()
    def _diffuse(self, image: torch.Tensor, holes: torch.Tensor, prompt: str, negative_prompt, seed: int):
        """Run the pipeline on (3,H,W) with (1,H,W) holes; returns its (3,H,W) output."""
        margin = self.outpaint_margin
        height, width = image.shape[1:]
        if margin > 0:
            image = F.pad(image[None], (margin,) * 4, mode="replicate")[0]
            holes = F.pad(holes[None].float(), (margin,) * 4, value=1.0)[0] > 0.5
        size = (round_to_multiple(image.shape[1]), round_to_multiple(image.shape[2]))
        model_image = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)
        model_holes = resize_mask(holes, size)
        out = self.pipe(
            prompt=prompt,
            negative_prompt=negative_prompt,
            image=model_image.clamp(0, 1),
            mask_image=model_holes[None].float(),
            height=size[0],
            width=size[1],
            strength=1.0,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            generator=seeded_generator(seed),
            output_type="pt",
        ).images
        out = out.float().to(image.device)
        if tuple(out.shape[-2:]) != tuple(image.shape[1:]):
            out = F.interpolate(out, size=image.shape[1:], mode="bilinear", align_corners=False)
        out = out[0].clamp(0, 1)
        if margin > 0:
            out = out[:, margin : margin + height, margin : margin + width]
        return out.to(image.dtype)
