"""The five kinds of model every method calls, as small ``typing.Protocol``s, plus the depth rule.

Backends are plain classes that satisfy these protocols structurally; nothing inherits from them.
Every backend also declares ``description`` (one line for ``--help`` and the run manifest) and
``is_weak_default`` (True for embedded stand-ins that are weaker than a real model, so that the
manifest can say so).

Tensor conventions: images float32 (3,H,W) in [0,1], depth (1,H,W) z-depth (inf = unknown),
inpainting masks bool (1,H,W) with True = hole to fill.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import torch

DepthOutput = Literal["depth", "disparity", "relative_disparity"]
DEPTH_OUTPUTS: tuple[str, ...] = ("depth", "disparity", "relative_disparity")

# Called once per denoising step by a VideoGenerator: (step index, timestep, latents) -> new latents or None.
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], "torch.Tensor | None"]


@runtime_checkable
class DepthModel(Protocol):
    """Predicts depth-like values for one image.

    ``output`` says what ``predict`` returns: ``"depth"`` (metric z-depth), ``"disparity"``
    (1/z-depth) or ``"relative_disparity"`` (inverse depth up to an unknown scale and shift, as
    MiDaS/DPT and Depth Anything produce). ``to_depth`` turns any of them into z-depth.
    ``module`` is the underlying ``torch.nn.Module`` for neural backends (methods finetune it),
    else None.
    """

    output: str
    module: torch.nn.Module | None
    description: str
    is_weak_default: bool

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """image: (3,H,W) float in [0,1] -> (1,H,W) float32 in the space named by ``output``."""
        ...


@runtime_checkable
class Inpainter(Protocol):
    """Fills the holes of an image; pixels outside the mask come back bit-for-bit unchanged.

    Latent-diffusion backends additionally satisfy :class:`LatentInpainter` (SceneScape finetunes
    their decoder).
    """

    description: str
    is_weak_default: bool

    def inpaint(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        prompt: str = "",
        negative_prompt: str | None = None,
        seed: int = 0,
    ) -> torch.Tensor:
        """image: (3,H,W) in [0,1]; mask: (1,H,W) bool, True = fill -> (3,H,W) in [0,1]."""
        ...


# Optional capabilities. A method asks for one with ``isinstance(backend, Capability)``; each is a
# method-only protocol, so the check looks at the class and never evaluates a lazy property (which
# would load weights on Python 3.11).


@runtime_checkable
class LatentInpainter(Protocol):
    """An inpainter built on a latent autoencoder whose decoder a method can finetune (SceneScape).

    It also does the paper's mask handling itself (opening, Telea on the thin part).
    """

    def inpaint(self, image, mask, prompt="", negative_prompt=None, seed=0) -> torch.Tensor:
        """As :meth:`Inpainter.inpaint`."""
        ...

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B,3,H,W) in [0,1], H and W multiples of 8 -> latents (B,C,H/8,W/8)."""
        ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (B,C,h,w) -> images (B,3,8h,8w) in [0,1], differentiable through the decoder."""
        ...

    def decoder_module(self) -> torch.nn.Module:
        """The decoder network that :meth:`decode` runs (the module to finetune)."""
        ...


@runtime_checkable
class FinetunableDepth(Protocol):
    """A neural depth model whose network a method can finetune at test time (SceneScape)."""

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """As :meth:`DepthModel.predict`."""
        ...

    def differentiable_predict(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B,3,H,W) in [0,1] -> (B,1,H,W) in ``output`` space, with gradients."""
        ...

    def network(self) -> torch.nn.Module:
        """The network that :meth:`differentiable_predict` runs (loads it)."""
        ...


@runtime_checkable
class Trainable(Protocol):
    """A backend trained on the run's own input before use (photo3d's self-supervised inpainter).

    ``is_trained()`` says whether :meth:`prepare` still has work to do.
    """

    def prepare(self, image: torch.Tensor, depth: torch.Tensor, camera, checkpoint_dir=None,
                prompt: str = "") -> None:
        """Train on image (3,H,W), its z-depth (1,H,W) and its Camera; checkpoints in checkpoint_dir."""
        ...

    def is_trained(self) -> bool:
        """True once no training is left (loaded from a folder, or prepared)."""
        ...


@runtime_checkable
class ImageGenerator(Protocol):
    """Text-to-image."""

    description: str
    is_weak_default: bool

    def generate(self, prompt: str, width: int, height: int, seed: int = 0) -> torch.Tensor:
        """-> (3,height,width) float32 in [0,1]."""
        ...


@runtime_checkable
class VideoGenerator(Protocol):
    """Image-to-video whose sampling a method can steer step by step.

    ``step_callback(step, timestep, latents)`` is called after every denoising step; returning a
    tensor replaces the latents, returning None keeps them. (dreamjourney's render-guided sampling
    needs more than this hook: it uses backends/video_adapters.py.)
    """

    description: str
    is_weak_default: bool

    def generate(
        self,
        first_frame: torch.Tensor,
        prompt: str,
        num_frames: int,
        seed: int = 0,
        step_callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """first_frame: (3,H,W) in [0,1] -> (T,3,H,W) in [0,1], frame 0 resembling ``first_frame``."""
        ...


@runtime_checkable
class VisionLanguage(Protocol):
    """Answers a question about one or more images."""

    description: str
    is_weak_default: bool

    def ask(self, images: list[torch.Tensor], text: str) -> str:
        """images: list of (3,H,W) in [0,1]; returns the model's answer as plain text."""
        ...


def check_image(image: torch.Tensor, name: str = "image") -> None:
    """Raise ValueError unless ``image`` is a (3,H,W) tensor."""
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{name} must be a (3,H,W) tensor, got {shape}")


def check_mask(mask: torch.Tensor, image: torch.Tensor) -> None:
    """Raise ValueError unless ``mask`` is a bool (1,H,W) tensor matching ``image`` (3,H,W)."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (1, *image.shape[1:]):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        dtype = getattr(mask, "dtype", None)
        raise ValueError(f"mask must be bool (1,{image.shape[1]},{image.shape[2]}), got {shape} of {dtype}")


def to_depth(
    pred: torch.Tensor,
    output: str,
    reference_depth: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    near: float = 1.0,
    far: float = 20.0,
) -> torch.Tensor:
    """Turn a depth model's prediction into z-depth.

    The rule, per declared ``output``:
      - ``"depth"``: returned as is; values that are not finite and positive become inf.
      - ``"disparity"``: depth = 1/disparity; non-positive disparity becomes inf.
      - ``"relative_disparity"``: with ``reference_depth``, a scale and shift are fitted by least
        squares so that ``scale * pred + shift`` matches ``1 / reference_depth`` on the pixels where
        ``mask`` is True and the reference is finite and positive (at least 2 such pixels), then
        depth = 1 / that disparity (``wanderview.geometry.align.align_disparity``, which keeps every
        pixel within 100x the farthest reference depth, because the fit can extrapolate to zero or
        negative disparity far from the reference). Without a
        reference, the prediction is mapped linearly in disparity so that its minimum lands at
        ``far`` and its maximum at ``near``.

    pred: (1,H,W); reference_depth: (1,H,W) or None; mask: (1,H,W) bool or None (all pixels).
    Returns (1,H,W) z-depth on pred's device and dtype.
    """
    if pred.ndim != 3 or pred.shape[0] != 1:
        raise ValueError(f"pred must be (1,H,W), got {tuple(pred.shape)}")
    if output not in DEPTH_OUTPUTS:
        raise ValueError(f"output must be one of {DEPTH_OUTPUTS}, got {output!r}")
    if not 0 < near < far:
        raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
    inf = torch.full_like(pred, float("inf"))
    if output == "depth":
        return torch.where(torch.isfinite(pred) & (pred > 0), pred, inf)
    if output == "disparity":
        return torch.where(torch.isfinite(pred) & (pred > 0), 1.0 / pred.clamp_min(1e-12), inf)

    if mask is None:
        mask = torch.ones_like(pred, dtype=torch.bool)
    elif mask.shape != pred.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool {tuple(pred.shape)}, got {tuple(mask.shape)} of {mask.dtype}")
    usable = mask & torch.isfinite(pred)
    if reference_depth is not None:
        if reference_depth.shape != pred.shape:
            raise ValueError(
                f"reference_depth must be {tuple(pred.shape)}, got {tuple(reference_depth.shape)}"
            )
        ref = reference_depth.to(pred)
        fit_pixels = usable & torch.isfinite(ref) & (ref > 0)
        if int(fit_pixels.sum()) >= 2:
            return _fit_to_reference(pred, ref, fit_pixels)
    # No usable reference: map the observed disparity range onto [1/far, 1/near].
    values = pred[usable] if bool(usable.any()) else pred[torch.isfinite(pred)]
    if values.numel() == 0:
        return inf
    lo, hi = values.min(), values.max()
    unit = ((pred - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    disp = 1.0 / far + unit * (1.0 / near - 1.0 / far)
    return torch.where(torch.isfinite(pred), 1.0 / disp, inf)


def _fit_to_reference(pred: torch.Tensor, ref: torch.Tensor, fit_pixels: torch.Tensor) -> torch.Tensor:
    """Least-squares scale/shift from relative disparity to the reference's disparity, then invert."""
    from wanderview.geometry.align import align_disparity

    depth = align_disparity(pred, ref, fit_pixels)
    return torch.where(torch.isfinite(pred), depth.to(pred), torch.full_like(pred, float("inf")))
