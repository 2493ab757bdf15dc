"""Video score distillation for 4Real (paper §3.3 Eq. 4-6, §3.4, supplementary D.1 and E.1).

One SDS step (:func:`sds_loss`) on a (T, 3, H, W) differentiable render along a camera path or a
time ramp whose first frame is replaced by a real frame, the condition (Eq. 5):

1. shift or crop, with equal odds (D.1): a random shift of up to round(S) - 1 pixels (S: the
   downsampling scale to the model's size) or a random crop to half the size, one box for every
   frame; then bilinear downsampling with anti-aliasing to the model's size;
2. z = the adapter's ``encode_grad`` of that video (the VAE encoder, with autograd);
3. x = ``noised(z, i, state, eps)`` at step i of the sampler's schedule, where the schedule fraction
   tau (1 = its noisiest step, 0 = its last) is annealed from ``t_max`` to ``t_min`` over the SDS
   steps as tau = t_max - (t_max - t_min) * sqrt(progress) (HiFA's annealing, which the paper uses);
4. x0_hat = the adapter's ``predict`` (no gradient), conditioned on the augmented real first frame
   and the prompt (classifier-free guidance at the adapter's own ``guidance_scale``);
5. loss = weight * mean over the latent cells after the first frame of (z - sg(x0_hat))^2.

Weighting: the x0 form of SDS with one weight for every timestep (the paper's Eq. 6, in latents).
Its gradient c·(z - x0_hat)·dz/dθ (c = 2·weight / the number of latent elements in the mean)
equals Poole et al.'s ε-form SDS gradient with w(t) = c·σ_t/α_t for a VP model, since
z - x0_hat = (σ/α)(ε_hat - ε); for SVD's EDM (x = z + σε) w(t) = c·σ; for Wan's flow matching
z - x0_hat = s·(v_hat - v), the v-form gradient weighted by c·s. The first latent frame holds only
the real frame (Wan's causal VAE encodes frame 0 alone; SVD's encodes frames one by one), so it
carries no gradient and is left out of the mean.

The two stages call one method each: :class:`CanonicalSDS` (multi-view SDS through the canonical
Gaussians on paths from the canonical camera to a perturbed freeze-time camera) and
:class:`MotionSDS` (per step, with equal odds: temporal SDS on the fixed canonical reference camera
over a ramp of times from the canonical time, or multi-view SDS at a reference frame's time on a path
from its camera to a perturbed freeze-time camera). Both are seeded by their own generator, so the
fitters' view order does not depend on whether SDS runs.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wanderview.cameras.camera import Camera
from wanderview.cameras.trajectories import interpolate_poses
from wanderview.errors import ConfigError


@dataclass(frozen=True)
class SDSSettings:
    """Settings of video SDS (defaults: the paper's where it gives them).

    Attributes:
        weight: multi-view SDS weight (paper E.1: 5).  temporal_weight: temporal SDS weight (20).
        fraction: SDS runs in this last part of each stage (paper: the last 5k of 20k steps).
        every: one SDS step every this many steps of that part (paper: every step).
        frames: frames per SDS video (paper M = 16), raised to a count the model makes (Wan: 1 + 4k).
        t_max, t_min: the annealed schedule fraction at the first and at the last SDS step.
        side: longer side of the model's input (0 = the working size, rounded to the model's multiple).
        radius: freeze-time poses are perturbed within this fraction of their distance from the
            path's first camera, in their image plane (D.1's "radius of a circle"; ours: 0.25).
        prompt: the text the model is conditioned on (families that use text).
        seed: seeds paths, times, augmentation and noise.
    """

    weight: float = 5.0
    temporal_weight: float = 20.0
    fraction: float = 0.25
    every: int = 1
    frames: int = 16
    t_max: float = 0.98
    t_min: float = 0.02
    side: int = 0
    radius: float = 0.25
    prompt: str = ""
    seed: int = 0


def parse_timesteps(text: str) -> tuple[float, float]:
    """``"A..B"`` -> (t_max, t_min) = (A, B), with 1 >= A >= B >= 0 (fractions of the schedule)."""
    try:
        a, b = (float(x) for x in text.split("..", 1))
    except ValueError:
        raise ConfigError(f"--sds-timesteps must be A..B (fractions high..low), got {text!r}") from None
    if not 1.0 >= a >= b >= 0.0:
        raise ConfigError(f"--sds-timesteps A..B must have 1 >= A >= B >= 0 (high to low), got {text!r}")
    return a, b


def check_options(weight: float, temporal_weight: float, fraction: float, every: int, frames: int,
                  timesteps: str, side: int) -> None:  # fmt: skip
    """Refuse bad SDS options with one sentence (ConfigError), named as on the command line."""
    for name, value in (("sds-weight", weight), ("sds-temporal-weight", temporal_weight)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"--{name} must be a finite number >= 0, got {value}")
    if not 0 <= fraction <= 1:
        raise ConfigError(f"--sds-fraction must be in [0, 1], got {fraction}")
    if every < 1:
        raise ConfigError(f"--sds-every must be at least 1, got {every}")
    if frames < 2:
        raise ConfigError(f"--sds-frames must be at least 2 (the condition and one render), got {frames}")
    if side != 0 and side < 16:
        raise ConfigError(f"--sds-side must be 0 (the working size) or at least 16 pixels, got {side}")
    parse_timesteps(timesteps)


def annealed(progress: float, t_max: float, t_min: float) -> float:
    """Schedule fraction at ``progress`` in [0, 1] of the SDS steps: t_max -> t_min, square-root pace."""
    p = min(max(progress, 0.0), 1.0)
    return t_max - (t_max - t_min) * math.sqrt(p)


def schedule_index(fraction: float, steps: int) -> int:
    """Index into a sampler schedule of ``steps`` steps (descending noise): 1 -> 0, 0 -> steps - 1."""
    return min(max(round((1.0 - fraction) * (steps - 1)), 0), steps - 1)


def stage_window(iterations: int, warmup: int, fraction: float) -> tuple[int, int]:
    """(start, end) steps of SDS: the last ``fraction`` of the steps after ``warmup``."""
    start = iterations - round(fraction * max(iterations - warmup, 0))
    return max(start, warmup), iterations


def shift_or_crop(video: torch.Tensor, size: tuple[int, int], generator: torch.Generator
                  ) -> tuple[torch.Tensor, tuple[int, int, int, int]]:  # fmt: skip
    """Supplementary D.1's augmentation, then downsampling to the model's size.

    video: (T, 3, H, W); size: (h, w). With equal odds a shift (a crop of (H - m, W - m) at a random
    offset in 0..m, m = round(S) - 1, S = the downsampling scale) or a crop to (H // 2, W // 2) at a
    random place; the same box for every frame. Returns ((T, 3, h, w), (top, left, crop_h, crop_w)).
    """
    if video.ndim != 4:
        raise ValueError(f"video must be (T, 3, H, W), got {tuple(video.shape)}")
    H, W = video.shape[2:]
    h, w = size

    def draw(high: int) -> int:
        return int(torch.randint(0, high + 1, (), generator=generator))

    if float(torch.rand((), generator=generator)) < 0.5:
        m = max(round(max(H / h, W / w)) - 1, 0)
        m = min(m, H - 1, W - 1)
        ch, cw = H - m, W - m
        top, left = draw(m), draw(m)
    else:
        ch, cw = max(H // 2, 1), max(W // 2, 1)
        top, left = draw(H - ch), draw(W - cw)
    crop = video[:, :, top : top + ch, left : left + cw]
    if (ch, cw) != (h, w):
        crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return crop, (top, left, ch, cw)


def model_input_size(adapter, height: int, width: int, side: int = 0) -> tuple[int, int]:
    """(h, w) the model sees: the working size (longer side scaled to ``side`` when given), rounded
    to the model's multiple."""
    if side:
        s = side / max(height, width)
        height, width = max(round(height * s), 1), max(round(width * s), 1)
    return adapter.model_size(height, width)


def sds_loss(adapter, video: torch.Tensor, condition: torch.Tensor, prompt: str, fraction: float,
             generator: torch.Generator, size: tuple[int, int], weight: float = 1.0
             ) -> tuple[torch.Tensor, dict]:  # fmt: skip
    """The x0-form SDS loss of one video (see the module docstring).

    Args:
        adapter: a video adapter (backends/video_adapters.py) with encode_grad, noised, predict.
        video: (T, 3, H, W) differentiable render in [0, 1]; T must be a count the model makes
            (``adapter.frame_count(T) == T``). Frame 0 is replaced by ``condition``.
        condition: (3, H, W) the real frame at the path's first camera / time.
        fraction: schedule fraction (1 = noisiest step), see :func:`annealed`.
        size: (h, w) the model's input size (multiples the model accepts).
    Returns:
        (loss, info): the scalar loss on ``video.device``; info holds the model-size ``video``
        (T, 3, h, w, detached), the crop ``box``, the schedule ``index`` and its ``sigma``.
    """
    if video.ndim != 4 or video.shape[1] != 3 or condition.shape != video.shape[1:]:
        raise ValueError(f"need video (T, 3, H, W) and condition (3, H, W), got {tuple(video.shape)}, "
                         f"{tuple(condition.shape)}")  # fmt: skip
    T = video.shape[0]
    if adapter.frame_count(T) != T:
        raise ValueError(f"the {adapter.name} model makes {adapter.frame_count(T)} frames, not {T}")
    full = torch.cat([condition[None].to(video), video[1:]])
    small, box = shift_or_crop(full, size, generator)
    small = small.clamp(0, 1)
    state = adapter.prepare(small[0].detach(), None, prompt, T, generator)
    z = adapter.encode_grad(small)
    i = schedule_index(fraction, len(state.timesteps))
    noise = torch.randn(z.shape, generator=generator).to(z)
    with torch.no_grad():
        x0_hat, _ = adapter.predict(adapter.noised(z.detach(), i, state, noise), i, state)
    first_only = torch.zeros(T, 1, *size, device=z.device)
    first_only[0] = 1
    keep = 1.0 - adapter.latent_fraction(first_only).to(z)  # 0 on the latent cells of the real frame
    squared = (z - x0_hat.to(z)) ** 2 * keep
    loss = weight * squared.sum() / keep.expand_as(z).sum().clamp(min=1)
    info = {"video": small.detach(), "box": box, "index": i, "sigma": float(state.sigmas[i])}
    return loss.to(video.device), info


def perturbed_path(start: Camera, target: Camera, num_frames: int, radius: float,
                   generator: torch.Generator) -> Camera:  # fmt: skip
    """``num_frames`` cameras interpolated from ``start`` to ``target`` moved at random within
    ``radius`` x their distance in ``target``'s image plane (its x and y axes); start's intrinsics."""
    pose = target.cam_to_world.clone()
    distance = float((target.center - start.center).norm())
    r = radius * distance * math.sqrt(float(torch.rand((), generator=generator)))
    angle = 2 * math.pi * float(torch.rand((), generator=generator))
    pose[:3, 3] += r * (math.cos(angle) * pose[:3, 0] + math.sin(angle) * pose[:3, 1])
    poses = interpolate_poses(torch.stack([start.cam_to_world, pose]), num_frames)
    return Camera(start.K.expand(num_frames, 3, 3), poses.to(start.cam_to_world), start.width, start.height)


def render_video(scene, cameras: Camera, dx: torch.Tensor, dq: torch.Tensor) -> torch.Tensor:
    """(C, 3, H, W) renders (with autograd) of ``scene`` moved by dx (N, 3), dq (N, 4) in C cameras."""
    colors, _, _ = scene.rasterize_deformed(cameras, dx, dq)
    return colors[..., :3].permute(0, 3, 1, 2)


class _StageSDS:
    """The schedule (SDS on steps start <= s < end, every ``settings.every``) and the records."""

    def __init__(self, adapter, settings: SDSSettings, start: int, end: int):
        self.adapter, self.settings, self.start, self.end = adapter, settings, start, end
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.num_frames = adapter.frame_count(settings.frames)
        self.size: tuple[int, int] | None = None
        self.history: list[dict] = []
        self.last_info: dict = {}

    def due(self, step: int) -> bool:
        """Whether step ``step`` (0-based, before it runs) takes an SDS loss."""
        return self.start <= step < self.end and (step - self.start) % self.settings.every == 0

    def fraction(self, step: int) -> float:
        """The annealed schedule fraction at ``step``: t_max at ``start``, t_min at ``end - 1``."""
        s = self.settings
        return annealed((step - self.start) / max(self.end - 1 - self.start, 1), s.t_max, s.t_min)

    def _loss(self, video: torch.Tensor, condition: torch.Tensor, step: int, kind: str,
              weight: float) -> torch.Tensor:  # fmt: skip
        if self.size is None:
            self.size = model_input_size(self.adapter, *condition.shape[1:], self.settings.side)
        fraction = self.fraction(step)
        loss, info = sds_loss(self.adapter, video, condition, self.settings.prompt, fraction,
                              self.generator, self.size, weight)  # fmt: skip
        self.last_info = info
        self.history.append({"step": step, "kind": kind, "fraction": round(fraction, 4),
                             "index": info["index"], "loss": float(loss.detach())})  # fmt: skip
        return loss

    def summary(self) -> dict:
        """What the manifest records: steps run (by kind), window, frames, model size."""
        losses = [h["loss"] for h in self.history]
        return {"steps": len(self.history), "kinds": dict(Counter(h["kind"] for h in self.history)),
                "window": [self.start, self.end], "every": self.settings.every, "frames": self.num_frames,
                "model_size": list(self.size) if self.size else None,
                "mean_loss": round(sum(losses) / len(losses), 6) if losses else None}  # fmt: skip


class CanonicalSDS(_StageSDS):
    """Multi-view SDS of the canonical stage (§3.3): renders through the canonical Gaussians along a
    path from the canonical camera to a perturbed freeze-time camera, the real canonical frame first.

    Args:
        cameras: batch (F,) of freeze-time cameras; images: (F, 3, H, W); match: the canonical frame.
        start, end: the steps SDS runs on (see :func:`stage_window`).
    """

    def __init__(self, adapter, settings: SDSSettings, cameras: Camera, images: torch.Tensor, match: int,
                 start: int, end: int):  # fmt: skip
        super().__init__(adapter, settings, start, end)
        self.cameras, self.images, self.match = cameras, images, match

    def loss(self, scene, step: int) -> torch.Tensor | None:
        """The weighted SDS loss at ``step``, or None when the step takes none."""
        if not self.due(step):
            return None
        others = [k for k in range(len(self.cameras)) if k != self.match] or [self.match]
        k = others[int(torch.randint(len(others), (), generator=self.generator))]
        path = perturbed_path(self.cameras[self.match], self.cameras[k], self.num_frames,
                              self.settings.radius, self.generator)  # fmt: skip
        zeros = scene.means.new_zeros(len(scene), 3), scene.means.new_zeros(len(scene), 4)
        renders = render_video(scene, path[1:], *zeros)
        condition = self.images[self.match]
        video = torch.cat([condition[None].to(renders), renders])
        return self._loss(video, condition, step, "multiview", self.settings.weight)


class MotionSDS(_StageSDS):
    """Joint temporal and multi-view SDS of the motion stage (§3.4, D.1), one of the two per step.

    Args:
        reference_cameras: batch (R,); reference: (R, 3, H, W); times: R values; canonical: the
            canonical reference frame; freeze_cameras: batch (F,); match: its canonical frame.
    """

    def __init__(self, adapter, settings: SDSSettings, reference_cameras: Camera, reference: torch.Tensor,
                 times: list[float], canonical: int, freeze_cameras: Camera, match: int, start: int,
                 end: int):  # fmt: skip
        super().__init__(adapter, settings, start, end)
        self.ref_cams, self.reference, self.times = reference_cameras, reference, list(times)
        self.canonical, self.freeze_cameras, self.match = canonical, freeze_cameras, match
        self.moving = [i for i, t in enumerate(self.times) if t != self.times[canonical]]

    def _kind(self) -> str:
        s = self.settings
        if not self.moving or s.weight == 0:
            return "temporal"
        if s.temporal_weight == 0:
            return "multiview"
        return "temporal" if float(torch.rand((), generator=self.generator)) < 0.5 else "multiview"

    def _time_ramp(self) -> list[float]:
        """num_frames times from the canonical time toward a random end on a side with room."""
        t_c = self.times[self.canonical]
        ends = [t for t in (min(self.times), max(self.times)) if t != t_c] or [t_c]
        end = ends[int(torch.randint(len(ends), (), generator=self.generator))]
        u = 0.5 + 0.5 * float(torch.rand((), generator=self.generator))  # at least half way there
        far = t_c + u * (end - t_c)
        n = self.num_frames
        return [t_c + (far - t_c) * j / (n - 1) for j in range(n)]

    def loss(self, scene, means: torch.Tensor, step: int) -> torch.Tensor | None:
        """The weighted SDS loss at ``step`` (gradient reaches ``scene.temporal``), or None."""
        if not self.due(step):
            return None
        field = scene.temporal
        if self._kind() == "temporal":
            camera = self.ref_cams[self.canonical]
            frames = []
            for t in self._time_ramp()[1:]:
                dx, dq = field(means, t)
                frames.append(render_video(scene, Camera.stack([camera]), dx, dq)[0])
            renders = torch.stack(frames)
            condition, kind = self.reference[self.canonical], "temporal"
            weight = self.settings.temporal_weight
        else:
            k = self.moving[int(torch.randint(len(self.moving), (), generator=self.generator))]
            others = [j for j in range(len(self.freeze_cameras)) if j != self.match] or [self.match]
            j = others[int(torch.randint(len(others), (), generator=self.generator))]
            path = perturbed_path(self.ref_cams[k], self.freeze_cameras[j], self.num_frames,
                                  self.settings.radius, self.generator)  # fmt: skip
            dx, dq = field(means, self.times[k])
            renders = render_video(scene, path[1:], dx, dq)
            condition, kind, weight = self.reference[k], "multiview", self.settings.weight
        video = torch.cat([condition[None].to(renders), renders])
        return self._loss(video, condition, step, kind, weight)
