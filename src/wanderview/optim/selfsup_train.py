"""Training and sampling of the self-supervised inpainting diffusion model (photo3d, Wang et al.).

- :class:`NoiseSchedule` — the DDPM forward process (linear β, 1000 steps).
- :func:`sample_inpaint` — DDIM or DDPM sampling with the known region replaced, at every step,
  by the noised original (so the fill agrees with its surroundings), and classifier-free guidance
  done inside the ``eps_fn`` the caller passes.
- :class:`PixelInpaintDiffusion` — the pixel-space M-UNet trained from scratch: ε-prediction MSE,
  tiled inpainting of only the tiles that contain holes, save/load of a model folder.
- :func:`train` — a seeded training loop with a progress bar and a resumable checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from wanderview.errors import InputError
from wanderview.optim.munet import MUNet, MUNetConfig
from wanderview.optim.selfsup_pairs import PairPool

MODEL_FILE = "munet.pt"
META_FILE = "selfsup.json"


class NoiseSchedule:
    """DDPM forward process q(x_t | x_0); by default a linear β schedule from 1e-4 to 0.02."""

    def __init__(
        self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, kind: str = "linear"
    ):
        self.num_steps = num_steps
        if kind == "scaled_linear":  # Stable Diffusion's schedule: linear in √β
            self.betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2
        elif kind == "linear":
            self.betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        else:
            raise ValueError(f"unknown beta schedule {kind!r}; use 'linear' or 'scaled_linear'")
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)

    def abar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t broadcast to ``like`` (B, ...); t = -1 means ᾱ = 1 (clean)."""
        t = torch.as_tensor(t).reshape(-1)
        values = torch.where(t >= 0, self.alphas_cumprod[t.clamp_min(0).cpu()], torch.ones(()).double())
        return values.to(like).reshape(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε. x0, noise: (B, ...); t: (B,) or int."""
        abar = self.abar(t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def sample_inpaint(
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    known: torch.Tensor,
    holes: torch.Tensor,
    schedule: NoiseSchedule,
    steps: int = 20,
    sampler: str = "ddim",
    generator: torch.Generator | None = None,
    clip: float | None = 1.0,
    init: torch.Tensor | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Denoise from pure noise (or, SDEdit-style, from a noised initial fill), keeping the known
    region equal to the (noised) original.

    Args:
        eps_fn: (x_t (B,C,h,w), t (B,) long) -> predicted noise (B,C,h,w); guidance goes in here.
        known: (B, C, h, w) clean data (diffusion space, e.g. [-1, 1] pixels or latents).
        holes: (B, 1, h, w) float in [0, 1] (1 = to fill).
        steps: number of denoising steps (evenly spaced over the schedule).
        sampler: "ddim" (deterministic, η = 0) or "ddpm" (ancestral).
        clip: clamp the x_0 estimate to [-clip, clip] (1 for [-1, 1] pixels; None for latents).
        init: (B, C, h, w) an initial fill (e.g. Telea's), or None to start from pure noise.
        strength: with ``init``, the fraction of the schedule run (1 = pure noise, 0.3 = start at
            t = 0.3·T from the noised init); the ``steps`` are spread over that part.
    Returns:
        (B, C, h, w) the denoised x_0 with the known region pasted back.
    """
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
    if known.ndim != 4 or holes.shape != (known.shape[0], 1, *known.shape[-2:]):
        raise ValueError(
            f"known (B,C,h,w) and holes (B,1,h,w) expected, got {tuple(known.shape)}, {tuple(holes.shape)}"
        )
    holes = holes.to(known.dtype)
    if init is not None and init.shape != known.shape:
        raise ValueError(f"init must be shaped like known {tuple(known.shape)}, got {tuple(init.shape)}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    start = schedule.num_steps - 1 if init is None else max(0, round(strength * (schedule.num_steps - 1)))
    steps = max(1, min(steps, start + 1))
    timesteps = torch.linspace(start, 0, steps).round().long().tolist()

    def randn() -> torch.Tensor:
        return torch.randn(known.shape, generator=generator, dtype=known.dtype).to(known.device)

    # Why an init: a metric-scored fill wants the conditional mean; starting from a classical fill
    # at a moderate noise level keeps its smooth structure and lets the model fix colours/edges.
    x = randn() if init is None else schedule.add_noise(init.to(known), randn(), start)
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        # Why: the model sees a consistent x_t only if the known part carries the same noise level.
        x = holes * x + (1 - holes) * schedule.add_noise(known, randn(), t)
        eps = eps_fn(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
        abar_t, abar_prev = schedule.abar(t, x), schedule.abar(t_prev, x)
        x0 = (x - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()
        if clip is not None:  # keeps early, very noisy estimates from overshooting the data range
            x0 = x0.clamp(-clip, clip)
        if sampler == "ddim" or t_prev < 0:
            x = abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps
        else:
            beta = 1 - abar_t / abar_prev
            mean = (abar_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - abar_prev) * x) / (1 - abar_t)
            var = beta * (1 - abar_prev) / (1 - abar_t)
            x = mean + var.sqrt() * randn()
    return holes * x + (1 - holes) * known


def guided_eps(
    model: Callable[..., torch.Tensor], cond: torch.Tensor | None, uncond: torch.Tensor | None, scale: float
) -> Callable[..., torch.Tensor]:
    """Wrap ``model(x_t, t, text)`` with classifier-free guidance ε̂ = ε(c) + s·(ε(c) − ε(∅)).
    Without text states (or with s = 0) it is the plain conditional prediction."""

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if cond is None or uncond is None or scale == 0:
            return model(x_t, t, cond)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, uncond]))
        e_c, e_u = both.chunk(2)
        return e_c + scale * (e_c - e_u)

    return eps


@dataclass(frozen=True)
class SampleConfig:
    """Inference settings. tile: side of the square tiles denoised; margin: context around the
    core of each tile; steps/sampler/guidance/strength as in :func:`sample_inpaint`; init: the
    classical fill the sampling starts from ("none" = pure noise, "telea", "patchmatch"; the
    backend computes it, see ``backends/selfsup.py``); samples: fills averaged per tile (an
    estimate of the conditional mean, which is what PSNR rewards; 1 = a single sample)."""

    steps: int = 8
    sampler: str = "ddim"
    guidance: float = 0.0
    tile: int = 64
    margin: int = 12
    init: str = "none"
    strength: float = 1.0
    samples: int = 1


class PixelInpaintDiffusion:
    """The from-scratch M-UNet in pixel space, with its noise schedule.

    ``loss(...)`` trains it; ``inpaint(image (3,H,W), holes (1,H,W) bool, ...) -> (3,H,W)`` fills
    holes tile by tile (raster order; a later tile sees earlier fills as known context, so there
    are no seams), and returns the input unchanged outside the holes.
    """

    kind = "pixel"

    def __init__(
        self, config: MUNetConfig = MUNetConfig(), device: str | torch.device = "cpu", seed: int | None = None
    ):
        """``seed`` fixes the initial weights (drawn on the CPU, so every device starts the same);
        None draws them from torch's global generator, as before."""
        if seed is None:
            self.model = MUNet(config).to(device)
        else:
            with torch.random.fork_rng(devices=[]):  # the caller's global generator is left as it was
                torch.manual_seed(seed)
                self.model = MUNet(config)
            self.model = self.model.to(device)
        self.schedule = NoiseSchedule()
        self.device = torch.device(device)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def _text(self, prompts: list[str]) -> torch.Tensor | None:
        return self.model.encode_text(prompts, self.device)

    def loss(
        self,
        targets: torch.Tensor,
        masked: torch.Tensor,
        holes: torch.Tensor,
        prompts: list[str],
        generator: torch.Generator,
        hole_weight: float = 4.0,
    ) -> torch.Tensor:
        """ε-prediction MSE. targets, masked: (B,3,h,w) in [0,1]; holes: (B,1,h,w) bool.

        Hole pixels weigh ``1 + hole_weight``: they are a few percent of a crop and the only place
        where the known-region condition does not already give the answer away.
        """
        x0 = targets.to(self.device) * 2 - 1
        cond = masked.to(self.device) * 2 - 1
        hole_f = holes.to(self.device).float()
        B = x0.shape[0]
        t = torch.randint(self.schedule.num_steps, (B,), generator=generator).to(self.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        x_t = self.schedule.add_noise(x0, noise, t)
        text = self._text(prompts)
        eps = self.model(x_t, t, hole_f, cond, text)
        weight = 1 + hole_weight * hole_f
        return (weight * (eps - noise) ** 2).mean() / weight.mean()

    @torch.no_grad()
    def inpaint(
        self,
        image: torch.Tensor,
        holes: torch.Tensor,
        prompt: str = "",
        negative_prompt: str | None = None,
        seed: int = 0,
        sample: SampleConfig = SampleConfig(),
        init: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """image: (3,H,W) in [0,1]; holes: (1,H,W) bool (True = fill); init: (3,H,W) an initial
        fill to refine with ``sample.strength`` (None = from noise). Returns (3,H,W)."""
        self.model.eval()
        if init is not None:
            init = init.to(self.device, torch.float32)
        generator = torch.Generator().manual_seed(seed)
        out = image.to(self.device, torch.float32).clone()
        todo = holes.to(self.device).clone()
        H, W = out.shape[-2:]
        m = self.model.multiple
        tile = max(m, (min(sample.tile, max(H, W) + 2 * sample.margin) // m) * m)
        core = max(1, tile - 2 * sample.margin)
        text = self._text([prompt])
        uncond = self._text([negative_prompt or ""])

        for y0 in range(0, H, core):
            for x0 in range(0, W, core):
                if not todo[:, y0 : y0 + core, x0 : x0 + core].any():
                    continue
                ty, tx = y0 - sample.margin, x0 - sample.margin
                patch, hole = _crop_padded(out, ty, tx, tile), _crop_padded(todo.float(), ty, tx, tile)
                start = None if init is None else _crop_padded(init, ty, tx, tile)
                filled = self._fill_tile(patch, hole, text, uncond, sample, generator, start)
                cy, cx = min(core, H - y0), min(core, W - x0)
                region = (slice(None), slice(y0, y0 + cy), slice(x0, x0 + cx))
                local = (
                    slice(None),
                    slice(sample.margin, sample.margin + cy),
                    slice(sample.margin, sample.margin + cx),
                )
                out[region] = torch.where(todo[region], filled[local], out[region])
                todo[region] = False
        return torch.where(holes.to(self.device), out, image.to(self.device, torch.float32))

    def _fill_tile(
        self, patch, hole, text, uncond, sample: SampleConfig, generator, init=None
    ) -> torch.Tensor:
        """Denoise one tile. patch, init: (3,t,t) in [0,1]; hole: (1,t,t) float. Returns (3,t,t) in [0,1]."""
        cond = (patch * (1 - hole) * 2 - 1)[None]
        hole = hole[None]

        def net(x_t: torch.Tensor, t: torch.Tensor, txt: torch.Tensor | None) -> torch.Tensor:
            B = x_t.shape[0]
            return self.model(x_t, t, hole.expand(B, -1, -1, -1), cond.expand(B, -1, -1, -1), txt)

        # The samples run as one batch (one network call per step for all of them: cheaper on a
        # CPU than a loop); their mean estimates the conditional mean E[x0 | known], which is what
        # PSNR/SSIM reward, and averages the speckle of single samples away.
        n = max(1, sample.samples)
        eps_fn = guided_eps(net, None if text is None else text.expand(n, -1, -1),
                            None if uncond is None else uncond.expand(n, -1, -1), sample.guidance)
        start = None if init is None else (init * 2 - 1)[None].expand(n, -1, -1, -1)
        strength = 1.0 if init is None else sample.strength
        x0 = sample_inpaint(
            eps_fn, cond.expand(n, -1, -1, -1), hole.expand(n, -1, -1, -1), self.schedule,
            sample.steps, sample.sampler, generator, init=start, strength=strength,
        )
        return ((x0 + 1) / 2).clamp(0, 1).mean(dim=0)

    # ---- training hooks used by :func:`train` ----------------------------------------------
    def modules_to_train(self) -> list[torch.nn.Module]:
        return [self.model]

    def state(self) -> dict:
        return self.model.state_dict()

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state)

    # ---- persistence ------------------------------------------------------------------------
    def save(self, folder: str | Path, extra: dict | None = None) -> None:
        """Write ``munet.pt`` (weights) and ``selfsup.json`` (kind, network config, notes)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / (MODEL_FILE + ".tmp"))
        (folder / (MODEL_FILE + ".tmp")).replace(folder / MODEL_FILE)
        meta = {"kind": self.kind, "munet": self.model.config.to_dict(), **(extra or {})}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> PixelInpaintDiffusion:
        """Load a folder written by :meth:`save` (or by ``wanderview train-inpainter``)."""
        folder = Path(folder)
        if not (folder / META_FILE).is_file() or not (folder / MODEL_FILE).is_file():
            raise InputError(
                f"{folder} is not a selfsup model folder (it needs {META_FILE} and {MODEL_FILE})"
            )
        meta = json.loads((folder / META_FILE).read_text())
        model = cls(MUNetConfig.from_dict(meta["munet"]), device)
        model.model.load_state_dict(torch.load(folder / MODEL_FILE, map_location=device, weights_only=True))
        return model


def _crop_padded(img: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """(C, size, size) crop of img (C,H,W) starting at (top, left), replicate-padded outside."""
    C, H, W = img.shape
    pad = (max(0, -left), max(0, left + size - W), max(0, -top), max(0, top + size - H))
    padded = F.pad(img[None], pad, mode="replicate")[0] if any(pad) else img
    y, x = top + pad[2], left + pad[0]
    return padded[:, y : y + size, x : x + size]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults sized for ~2 minutes on 2 CPU cores).

    Attributes:
        steps: optimiser steps. batch_size: crops per step. crop: crop side in pixels.
        lr: AdamW learning rate. hole_weight: extra loss weight of hole pixels.
        prompt_dropout: probability of training on the empty prompt (classifier-free guidance).
        checkpoint_every: steps between checkpoints when a checkpoint folder is given.
    """

    steps: int = 600
    batch_size: int = 6
    crop: int = 40
    lr: float = 1e-3
    hole_weight: float = 4.0
    prompt_dropout: float = 0.1
    checkpoint_every: int = 100


def train(
    diffusion,
    pools: list[PairPool],
    config: TrainConfig = TrainConfig(),
    prompts: list[str] | None = None,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
) -> list[float]:
    """Train ``diffusion`` (anything with ``loss``, ``trainable_parameters``, ``save``) on pairs.

    pools: pair pools (one per image; each step draws its batch from one pool, in turn).
    prompts: one prompt per pool (None = empty prompts). With ``checkpoint_dir``, the state is
    saved every ``checkpoint_every`` steps and a later call resumes from it (a finished run
    returns at once). Returns the loss of every step run now.
    """
    from tqdm.auto import tqdm

    if not pools or not any(len(p) for p in pools):
        raise InputError("there are no training pairs: the images produced no cycle-rendering holes")
    prompts = prompts or [""] * len(pools)
    generator = torch.Generator().manual_seed(seed)
    params = diffusion.trainable_parameters()
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    start = 0
    state_path = Path(checkpoint_dir) / "train_state.pt" if checkpoint_dir else None
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        diffusion.load_state(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"])
        start = int(state["step"])
    losses: list[float] = []
    if start >= config.steps:
        return losses
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: min(1.0, (s + 1) / 20) * (0.1 + 0.9 * (1 - s / max(1, config.steps))),
        last_epoch=-1,
    )
    for _ in range(start):
        schedule.step()
    for module in diffusion.modules_to_train():
        module.train()
    started = time.perf_counter()
    bar = tqdm(
        range(start, config.steps),
        desc="selfsup training",
        disable=not progress,
        initial=start,
        total=config.steps,
    )
    for step in bar:
        k = step % len(pools)
        if not len(pools[k]):
            continue
        targets, masked, holes = pools[k].sample_batch(config.batch_size, config.crop, generator)
        batch_prompts = [
            "" if float(torch.rand((), generator=generator)) < config.prompt_dropout else prompts[k]
            for _ in range(targets.shape[0])
        ]
        loss = diffusion.loss(targets, masked, holes, batch_prompts, generator, config.hole_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        done = step + 1
        if state_path is not None and (done % config.checkpoint_every == 0 or done == config.steps):
            state_path.parent.mkdir(parents=True, exist_ok=True)
            state = {
                "model": diffusion.state(),
                "optimiser": optimiser.state_dict(),
                "generator": generator.get_state(),
                "step": done,
                "last_loss": losses[-1],
                "config": asdict(config),
                "seconds": time.perf_counter() - started,
            }
            torch.save(state, state_path.with_suffix(".tmp"))
            state_path.with_suffix(".tmp").replace(state_path)
    for module in diffusion.modules_to_train():
        module.eval()
    return losses
