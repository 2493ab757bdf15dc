"""Render-guided video sampling (DreamJourney, Stage I): a denoising loop of our own over an adapter.

The loop, per denoising step i with noise level sigma_i (``guided_sample``):

1. the adapter's model predicts the clean latents x0_hat from x_t (flow matching: x_t - sigma * v;
   Euler/EDM: the scheduler's ``pred_original_sample``);
2. on the first ``(1 - early_stop)`` of the steps, x_t takes a gradient step that pulls x0_hat toward
   the prior video's latents z on the *known* latent cells (more than ``visible_threshold`` of their
   pixels visible in the point-cloud renders)::

       g   = known * (x0_hat - z)     # d/dx_t of 0.5 ||known (x0_hat - z)||^2, model output fixed
       x_t = x_t - lr * sqrt(sigma_i) * g / std(g)

   The model output is held fixed, as the authors' released code does (its model input is built before
   the latents require gradients), so no backward pass through the video model is needed; the scale of
   d x0_hat / d x_t is a positive number per step and vanishes in the normalisation by std(g);
3. the scheduler's own step gives x_{t-1};
4. renoising (RePaint): while rounds remain, x_{t-1} is diffused back to x_t by the forward process of
   the adapter's scheduler with fresh noise, and 1-3 repeat (``renoise_rounds`` model calls per step).

Early stopping: the last ``early_stop`` of the steps run unguided, once each. View padding: the first
and last prior views are repeated ``pad_views`` times at each end (plus extra last views to reach a frame
count the model makes) and those frames are cut from the result.

An adapter (``backends/video_adapters.py``) supplies: ``frame_count(n)``, ``model_size(h, w)``,
``prepare(first, last, prompt, num_frames, generator, prior=, visibility=) -> state``
(``state.latents`` = x_T,
``state.sigmas``), ``predict(x, i, state) -> (x0_hat, model_output)``, ``step(output, i, x, state)``,
``renoise(x_prev, i, state, generator)``, ``encode(video) -> latents``, ``decode(latents) -> video`` and
``latent_fraction(visibility) -> fraction`` (shaped to broadcast against the latents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class GuidanceSettings:
    """How Stage I steers the video model; defaults are the paper's."""

    lr: float = 0.025
    """Guidance weight: the normalised gradient step is lr * sqrt(sigma_t)."""
    renoise_rounds: int = 15
    """Model calls per guided step; all but the last are followed by renoising x_{t-1} -> x_t."""
    early_stop: float = 0.2
    """Fraction of the last denoising steps that run without the prior (and without renoising)."""
    pad_views: int = 4
    """Copies of the first and of the last prior view added at each end and cut after sampling."""
    visible_threshold: float = 0.8
    """A latent cell is known when more than this fraction of its pixels is visible."""
    use_last_frame: bool = False
    """Also condition the model on the last prior view (adapters that support it: Wan first+last frame)."""

    def __post_init__(self):
        if self.lr < 0 or self.renoise_rounds < 1 or not 0.0 <= self.early_stop <= 1.0 or self.pad_views < 0:
            raise ValueError(
                "need lr >= 0, renoise_rounds >= 1, 0 <= early_stop <= 1 and pad_views >= 0, got "
                f"{self.lr}, {self.renoise_rounds}, {self.early_stop}, {self.pad_views}"
            )
        if not 0.0 <= self.visible_threshold < 1.0:
            raise ValueError(f"visible_threshold must be in [0, 1), got {self.visible_threshold}")


@dataclass
class GuidedVideo:
    """What ``guided_sample`` returns: the frames and counts that say what the loop did."""

    frames: torch.Tensor
    """(num_frames, 3, H, W) float32 in [0, 1], padding removed."""
    latents: torch.Tensor
    """The final clean latents (adapter layout), padding included."""
    steps: int = 0
    """Denoising steps run."""
    guided_steps: int = 0
    """Steps that used the prior (the first ``(1 - early_stop)`` of them)."""
    model_calls: int = 0
    renoises: int = 0
    model_frames: int = 0
    """Frames the model made (num_frames + padding)."""
    known_fraction: float = 0.0
    """Fraction of latent cells that were known (guided)."""
    prior_distance: list[float] = field(default_factory=list)
    """Mean |x0_hat - z| over known cells as the model predicted it at each step's first call, then
    of the final latents (steps + 1 values; empty without a prior)."""


def pad_views(video: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """(T, C, H, W) -> (before + T + after, C, H, W): first frame repeated before, last after."""
    if video.ndim != 4:
        raise ValueError(f"video must be (T, C, H, W), got {tuple(video.shape)}")
    return torch.cat([video[:1].expand(before, -1, -1, -1), video, video[-1:].expand(after, -1, -1, -1)])


def cell_fraction(visibility: torch.Tensor, temporal: int, spatial: int, causal: bool) -> torch.Tensor:
    """Visible fraction of every latent cell.

    visibility: (T, 1, H, W) float in [0, 1]; temporal/spatial: the autoencoder's compression; causal:
    the first latent frame holds frame 0 alone (Wan, CogVideoX), the others ``temporal`` frames each.
    Returns (T_latent, 1, H // spatial, W // spatial).
    """
    if visibility.ndim != 4 or visibility.shape[1] != 1:
        raise ValueError(f"visibility must be (T, 1, H, W), got {tuple(visibility.shape)}")
    vis = visibility.float()
    if causal and temporal > 1:
        rest = vis[1:]
        if rest.shape[0] % temporal:
            raise ValueError(f"a causal video needs 1 + k*{temporal} frames, got {vis.shape[0]}")
        rest = rest.reshape(-1, temporal, *rest.shape[1:]).mean(dim=1)
        vis = torch.cat([vis[:1], rest])
    elif temporal > 1:
        vis = vis.reshape(-1, temporal, *vis.shape[1:]).mean(dim=1)
    h, w = vis.shape[-2] // spatial, vis.shape[-1] // spatial
    return F.adaptive_avg_pool2d(vis, (h, w))


def _resize(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(video.shape[-2:]) == tuple(size):
        return video
    return F.interpolate(video.float(), size=size, mode="bilinear", align_corners=False)


def _known_distance(x0: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> float:
    return float((known * (x0 - target).abs()).sum() / known.sum().clamp_min(1))


def guided_sample(
    adapter,
    first_frame: torch.Tensor,
    prompt: str,
    num_frames: int,
    *,
    prior: torch.Tensor | None = None,
    visibility: torch.Tensor | None = None,
    settings: GuidanceSettings | None = None,
    seed: int = 0,
    progress=None,
) -> GuidedVideo:
    """Sample a video from ``first_frame``, guided by ``prior`` on its visible cells when given.

    first_frame: (3, H, W) in [0, 1]; prior: (num_frames, 3, H, W) in [0, 1] (frame 0 = the first view,
    the last = the inpainted end view, between them point-cloud renders pre-filled in their holes);
    visibility: (num_frames, 1, H, W) in [0, 1] (1 = rendered from the cloud). Without a prior this is
    plain image-to-video sampling through the same loop (Stage II). ``progress``: a callable(step, total).
    Returns a GuidedVideo whose frames are (num_frames, 3, H, W) in [0, 1].
    """
    settings = settings or GuidanceSettings()
    if first_frame.ndim != 3 or first_frame.shape[0] != 3:
        raise ValueError(f"first_frame must be (3, H, W), got {tuple(first_frame.shape)}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    H, W = first_frame.shape[1:]
    if prior is not None:
        if prior.shape != (num_frames, 3, H, W):
            raise ValueError(f"prior must be ({num_frames}, 3, {H}, {W}), got {tuple(prior.shape)}")
        if visibility is None or visibility.shape != (num_frames, 1, H, W):
            got = None if visibility is None else tuple(visibility.shape)
            raise ValueError(f"visibility must be ({num_frames}, 1, {H}, {W}), got {got}")
    generator = torch.Generator("cpu").manual_seed(int(seed))
    pad = settings.pad_views if prior is not None else 0
    model_frames = adapter.frame_count(num_frames + 2 * pad)
    size = adapter.model_size(H, W)
    first = _resize(first_frame[None], size)[0]
    last = None
    if prior is not None and settings.use_last_frame and getattr(adapter, "supports_last_frame", False):
        last = _resize(prior[-1:], size)[0]
    padded = padded_visible = None
    if prior is not None:
        after = model_frames - num_frames - pad
        padded = _resize(pad_views(prior, pad, after), size)
        padded_visible = _resize(pad_views(visibility, pad, after), size)
    # a per-frame-conditioned model (VACE) also takes the prior video and its holes as conditioning
    state = adapter.prepare(
        first, last, prompt, model_frames, generator, prior=padded, visibility=padded_visible
    )
    x = state.latents
    target = known = None
    result = GuidedVideo(frames=torch.empty(0), latents=x, model_frames=model_frames)
    if prior is not None:
        target = adapter.encode(padded).to(x)
        known = adapter.latent_fraction(padded_visible) > settings.visible_threshold
        known = known.to(x.device).expand_as(x).to(x.dtype)
        result.known_fraction = float(known.mean())
    steps = len(state.sigmas) - 1
    guided_steps = 0 if prior is None else int(math.floor(steps * (1.0 - settings.early_stop) + 1e-9))
    for i in range(steps):
        guide = i < guided_steps and result.known_fraction > 0
        rounds = settings.renoise_rounds if guide else 1
        for r in range(rounds):
            x0, output = adapter.predict(x, i, state)
            result.model_calls += 1
            if r == 0 and known is not None:
                result.prior_distance.append(_known_distance(x0, target, known))
            if guide:
                grad = known * (x0 - target)
                grad = grad / grad.std().clamp_min(1e-12)
                x = x - settings.lr * math.sqrt(float(state.sigmas[i])) * grad
            x_prev = adapter.step(output, i, x, state)
            if r + 1 < rounds:
                x = adapter.renoise(x_prev, i, state, generator)
                result.renoises += 1
        x = x_prev
        if progress is not None:
            progress(i + 1, steps)
    result.steps, result.guided_steps, result.latents = steps, guided_steps, x
    if known is not None:  # the final latents are the clean video
        result.prior_distance.append(_known_distance(x, target, known))
    frames = adapter.decode(x)[pad : pad + num_frames]
    result.frames = _resize(frames, (H, W)).clamp(0, 1).to(first_frame.device)
    return result
