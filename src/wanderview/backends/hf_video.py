"""Image-to-video with diffusers: Stable Video Diffusion and CogVideoX image-to-video.

The checkpoint's ``model_index.json`` names its pipeline class; only the two classes below are
accepted. Every denoising step calls ``step_callback(step, timestep, latents)`` through diffusers'
``callback_on_step_end``; a returned tensor replaces the latents. The hook sees only the latents
after the scheduler step, so it cannot do dreamjourney's render guidance (x0 estimates, renoising
rounds): that runs in a loop of its own over backends/video_adapters.py.

Sizes: the model runs at the first frame's size rounded to the pipeline's multiple (64 for SVD,
16 for CogVideoX), or at the only size a checkpoint with learned position embeddings supports
(CogVideoX-5b-I2V: 720x480), and frames are resized back. CogVideoX only makes 1 + k x (temporal compression)
frames, so the next such count at or above ``num_frames`` is generated and the extra frames dropped.
Stable Video Diffusion takes no text; its ``prompt`` argument is ignored (said in ``description``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    to_pil,
    transformer_video_size,
)
from wanderview.backends.protocols import StepCallback, check_image
from wanderview.errors import BackendError

DEFAULT_VIDEO_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"
ALTERNATIVE_VIDEO_MODEL = "THUDM/CogVideoX-5b-I2V"
# pipeline class -> (size multiple, whether it takes a prompt)
SUPPORTED_PIPELINES = {
    "StableVideoDiffusionPipeline": (64, False),
    "CogVideoXImageToVideoPipeline": (16, True),
}


class HFVideoGenerator:
    """A diffusers image-to-video pipeline behind the VideoGenerator protocol (lazy load)."""

    is_weak_default = False

    def __init__(
        self,
        ref: str = "",
        options: HFOptions | None = None,
        steps: int = 25,
        guidance_scale: float | None = None,
        **pipeline_kwargs,
    ):
        self.options = options or HFOptions()
        self.source = resolve_source(ref, DEFAULT_VIDEO_MODEL, "model_index.json", self.options.allow_pickle)
        self.class_name = pipeline_class_name(self.source)
        if self.class_name not in SUPPORTED_PIPELINES:
            raise BackendError(
                f"{self.source} is a {self.class_name or 'unknown'} pipeline; the hf: video backend "
                f"supports {', '.join(SUPPORTED_PIPELINES)}"
            )
        self.size_multiple, self.uses_prompt = SUPPORTED_PIPELINES[self.class_name]
        note = "" if self.uses_prompt else " (image-conditioned only: the prompt is not used)"
        self.description = f"Hugging Face {self.class_name} {self.source}{note}"
        self.steps, self.guidance_scale, self.pipeline_kwargs = int(steps), guidance_scale, pipeline_kwargs
        self.device = resolve_device(self.options.device)
        self.dtype = resolve_dtype(self.options.dtype, self.device)
        self._pipe = None

    @property
    def pipe(self):
        """The diffusers pipeline (loaded on first use)."""
        if self._pipe is None:
            self._pipe = load_diffusers_pipeline(
                self.class_name, self.source, self.dtype, self.options, self.device, "the hf: video backend"
            )
        return self._pipe

    def _frames_to_make(self, num_frames: int) -> int:
        if self.class_name != "CogVideoXImageToVideoPipeline":
            return num_frames
        return causal_video_frames(self.pipe, num_frames)

    def _model_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the model runs at: the frame size rounded, or the only size a model supports."""
        return transformer_video_size(self.pipe, height, width, self.size_multiple)

    @torch.no_grad()
    def generate(
        self,
        first_frame: torch.Tensor,
        prompt: str,
        num_frames: int,
        seed: int = 0,
        step_callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """first_frame: (3,H,W) in [0,1] -> (num_frames,3,H,W) float32 in [0,1] on first_frame's device."""
        check_image(first_frame, "first_frame")
        if num_frames < 1:
            raise BackendError(f"num_frames must be at least 1, got {num_frames}")
        height, width = first_frame.shape[1:]
        size = self._model_size(height, width)
        image = F.interpolate(
            first_frame[None].float().cpu(), size=size, mode="bilinear", align_corners=False
        )
        kwargs = dict(self.pipeline_kwargs)
        if self.uses_prompt:
            kwargs["prompt"] = prompt
            if self.guidance_scale is not None:
                kwargs["guidance_scale"] = self.guidance_scale
        if step_callback is not None:

            def on_step_end(pipe, step, timestep, tensors):
                new_latents = step_callback(step, timestep, tensors["latents"])
                return {} if new_latents is None else {"latents": new_latents}

            kwargs["callback_on_step_end"] = on_step_end
            kwargs["callback_on_step_end_tensor_inputs"] = ["latents"]
        frames = self.pipe(
            image=to_pil(image[0]),
            height=size[0],
            width=size[1],
            num_frames=self._frames_to_make(num_frames),
            num_inference_steps=self.steps,
            generator=seeded_generator(seed),
            output_type="pt",
            **kwargs,
        ).frames
        return pipeline_video(frames, num_frames, height, width).to(first_frame.device)
