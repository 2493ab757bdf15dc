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

The families live in ``video_wan.py`` (wan, vace) and ``video_svd.py`` (svd); this module holds what
they share and ``make_video_adapter``. Every adapter pins the scheduler's step index before each
call, so that renoising rounds can repeat a step (diffusers' schedulers otherwise advance their index
on every ``step``). Score distillation (``optim/sds.py``) uses two more pieces of every family:
``encode_grad`` (the VAE encoder with autograd, so a loss on latents reaches the pixels) and
``noised(x0, i, state, noise)`` (the family's forward process at step i of the schedule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from wanderview.backends.hf_common import (
    HFOptions,
    load_diffusers_pipeline,
    pipeline_class_name,
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
        cuda_default = self.default_cuda_dtype() if self.device.type == "cuda" else None
        self.dtype = resolve_dtype(options.dtype or cuda_default, self.device)
        note = "" if self.uses_prompt else " (image-conditioned only: the prompt is not used)"
        self.description = f"{self.name} adapter over Hugging Face {class_name} {source}{note}"
        self._pipe = None

    def default_cuda_dtype(self) -> str | None:
        """The weights dtype when none is given (None: the hf: policy, float16 on CUDA)."""
        return None

    def after_load(self, pipe) -> None:
        """Family-specific fixes right after loading (none by default)."""

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
                "dreamjourney's guided sampling",
            )
            self.after_load(self._pipe)
            # nothing here trains the model: score distillation needs gradients of the inputs only,
            # and weights without requires_grad keep backward from storing a gradient per weight
            for module in self._pipe.components.values():
                if isinstance(module, torch.nn.Module):
                    module.requires_grad_(False)
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

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(T, 3, h, w) in [0, 1] -> latents in the family's layout (see ``encode_grad``), no autograd."""
        return self.encode_grad(video)


def _adapter_class(name: str):
    """The adapter class of ``name`` (imported on use: each family lives in its own module)."""
    if name == "svd":
        from wanderview.backends.video_svd import SVDAdapter

        return SVDAdapter
    from wanderview.backends.video_wan import VACEAdapter, WanAdapter

    return {"wan": WanAdapter, "vace": VACEAdapter}[name]


def make_video_adapter(
    spec: str, adapter: str = "auto", steps: int | None = None, guidance_scale: float | None = None, **options
):
    """A guided-sampling adapter for ``spec`` (hf:<id-or-folder> of an image-to-video pipeline).

    adapter: ``auto`` (chosen by the checkpoint's pipeline class), ``wan``, ``vace`` or ``svd``.
    options: the shared loading options (device, dtype, allow_pickle, cpu_offload, attention_slicing).
    """
    if adapter != "auto" and adapter not in ADAPTER_PIPELINES:
        raise BackendError(f"unknown video adapter {adapter!r}; valid: auto, {', '.join(ADAPTER_PIPELINES)}")
    name, _, rest = (spec or "").strip().partition(":")
    if name != "hf":
        raise BackendError(f"unknown video model {spec!r}; valid: none, hf:<hub-id-or-path>")
    hf = HFOptions(**{k: v for k, v in options.items() if v is not None})
    default = DEFAULT_ADAPTER_MODELS["wan" if adapter == "auto" else adapter]
    source = resolve_source(rest, default, "model_index.json", hf.allow_pickle)
    class_name = pipeline_class_name(source)
    found = next((a for a, c in ADAPTER_PIPELINES.items() if c == class_name), None)
    if found is None:
        raise BackendError(
            f"{source} is a {class_name or 'an unknown pipeline'}, not an image-to-video model the guided "
            f"sampler supports ({', '.join(ADAPTER_PIPELINES.values())})"
        )
    if adapter not in ("auto", found):
        raise BackendError(
            f"{source} is a {class_name}, which the {adapter} adapter cannot run (use {found})"
        )
    kwargs = {k: v for k, v in (("steps", steps), ("guidance_scale", guidance_scale)) if v is not None}
    return _adapter_class(found)(source, class_name, hf, **kwargs)
