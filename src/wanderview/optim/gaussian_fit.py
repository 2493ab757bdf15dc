"""Fit a :class:`GaussianScene` to posed images: the 3D Gaussian Splatting recipe (Kerbl et al. 2023).

- Adam with one learning rate per attribute (positions 1.6e-4·extent decaying exponentially to
  1.6e-6·extent, SH DC 2.5e-3, higher SH bands 2.5e-3/20, opacity 0.05, scales 0.005, rotations
  1e-3), eps 1e-15 as in 3DGS;
- loss 0.8·L1 + 0.2·(1 − SSIM) (the project's SSIM, :func:`wanderview.metrics.image.ssim_map`),
  plus an optional L1 on the expected depth where the depth is known;
- adaptive density control: the mean norm of the view-space (NDC) gradient of each Gaussian's 2D
  mean over the views that saw it; above 2e-4 small Gaussians (max scale ≤ percent_dense·extent)
  are cloned and large ones split in two (scale / 1.6, positions sampled from the Gaussian);
  Gaussians with opacity < 0.005 are pruned, and after the first opacity reset also those larger
  than 20 px on screen or 0.1·extent in the world; every ``opacity_reset_interval`` the
  opacities are clamped to ≤ 0.01; the SH degree rises by one every ``sh_interval``;
- one view per iteration, drawn from a seeded permutation; everything seeded, and the whole state
  (parameters, Adam moments, statistics, generator) is a ``state_dict`` for exact resumption.

The paper's schedule is for 30k iterations. ``FitConfig.scale_schedule`` (on by default) scales
the iteration counts of the schedule to ``iterations`` so that a short CPU fit still densifies,
resets and raises the SH degree in the same proportions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from wanderview.cameras.camera import Camera
from wanderview.metrics.image import ssim_map
from wanderview.render.gaussians import quat_to_rotmat
from wanderview.scenes.gaussians import PARAM_NAMES, GaussianScene

_SCHEDULE_FLOORS = {"densify_from": 100, "opacity_reset_interval": 200}


@dataclass(frozen=True)
class FitConfig:
    """3DGS's optimisation settings (defaults = the paper's, except ``iterations`` and the cap).

    Attributes:
        iterations: optimisation steps (paper: 30000; the CPU default is 3000).
        seed: seeds the view order and the split sampling.
        lr_position, lr_position_final: position learning rate at the start / end, times the extent.
        lr_sh_dc, lr_sh_rest: SH DC and higher-band learning rates.
        lr_opacity, lr_scale, lr_rotation: the other learning rates (on logits, log-scales, quats).
        lambda_dssim: weight of (1 − SSIM); L1 gets 1 − lambda_dssim.
        depth_weight: weight of the depth L1 (relative to the median depth) when depth is known.
        densify_grad_threshold: mean view-space gradient norm above which a Gaussian densifies.
        percent_dense: clone/split boundary as a fraction of the scene extent.
        densify_from, densify_until, densify_interval: when density control runs (paper iterations).
        opacity_reset_interval: every how many (paper) iterations opacities are reset.
        sh_interval: every how many (paper) iterations the SH degree rises by one.
        scale_schedule: scale the five schedule counts above by iterations / 30000 (densify
            from at least 100 — early gradients are large everywhere and doubled the count every
            interval —, opacity reset interval at least 200). The densify interval stays the
            paper's 100: a clone is an exact copy with the same gradient, so it needs ~100
            steps to move apart before the next round; at a scaled 10 every clone was hot again
            and a 3000-iteration fit went from 12k to the 200k cap by iteration 500.
        min_opacity: pruning threshold.  max_screen_size: pruning size in pixels (after a reset).
        max_world_size: after a reset, prune Gaussians whose largest scale exceeds this fraction
            of the extent (3DGS: 0.1; 0 = never). The extent is the spread of the cameras, so
            for a forward-facing capture of a deep scene (cameras ~1 unit apart, walls 7 units
            away) 0.1 of it is smaller than a distant Gaussian's pixel footprint.
        max_gaussians: densification stops adding Gaussians beyond this count (CPU memory/time).
        min_densify_interval: the scaled densify interval's floor (see scale_schedule). A fit whose
            ``max_gaussians`` is small can use a shorter one: the cap stops the blow-up, and
            fourreal's 2000-2400-step fits gained 1.5 dB (procedural) and 8 dB (bedroom) at 10.
        checkpoint_every: call the checkpoint callback every this many iterations (0 = never).
    """

    iterations: int = 3000
    seed: int = 0
    lr_position: float = 1.6e-4
    lr_position_final: float = 1.6e-6
    lr_sh_dc: float = 2.5e-3
    lr_sh_rest: float = 2.5e-3 / 20
    lr_opacity: float = 0.05
    lr_scale: float = 0.005
    lr_rotation: float = 1e-3
    lambda_dssim: float = 0.2
    depth_weight: float = 0.0
    densify_grad_threshold: float = 2e-4
    percent_dense: float = 0.01
    densify_from: int = 500
    densify_until: int = 15000
    densify_interval: int = 100
    opacity_reset_interval: int = 3000
    sh_interval: int = 1000
    scale_schedule: bool = True
    min_opacity: float = 0.005
    max_screen_size: float = 20.0
    max_world_size: float = 0.1
    max_gaussians: int = 200_000
    min_densify_interval: int = 100
    checkpoint_every: int = 0

    def schedule(self, name: str) -> int:
        """A schedule count (e.g. ``"densify_interval"``) in this fit's iterations."""
        value = getattr(self, name)
        if not self.scale_schedule:
            return value
        # floors: density statistics need a few views, and opacities need time to recover
        floor = self.min_densify_interval if name == "densify_interval" else _SCHEDULE_FLOORS.get(name, 1)
        return max(floor, round(value * self.iterations / 30000))


class Adam:
    """Adam over named tensors whose rows can be added and removed (density control)."""

    def __init__(
        self, params: dict[str, torch.Tensor], lrs: dict[str, float | torch.Tensor], eps: float = 1e-15
    ):
        self.lrs, self.eps, self.betas, self.step_count = dict(lrs), eps, (0.9, 0.999), 0
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor]) -> None:
        self.step_count += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.step_count, 1 - b2**self.step_count
        for name, p in params.items():
            if p.grad is None:
                continue
            self.m[name].mul_(b1).add_(p.grad, alpha=1 - b1)
            self.v[name].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (self.v[name] / c2).sqrt_().add_(self.eps)
            p.sub_(self.lrs[name] * (self.m[name] / c1) / denom)

    def edit_rows(self, keep: torch.Tensor, new_rows: int) -> None:
        """Keep the rows where ``keep`` (N,) is True, then append ``new_rows`` zero-moment rows."""
        for store in (self.m, self.v):
            for name, t in store.items():
                kept = t[keep]
                store[name] = torch.cat([kept, kept.new_zeros(new_rows, *kept.shape[1:])])


def photometric_loss(pred: torch.Tensor, target: torch.Tensor, lambda_dssim: float) -> torch.Tensor:
    """(1 − λ)·L1 + λ·(1 − SSIM) of (3, H, W) images."""
    l1 = (pred - target).abs().mean()
    return (1 - lambda_dssim) * l1 + lambda_dssim * (1 - ssim_map(pred, target, dtype=torch.float32).mean())


def camera_extent(cameras: Camera) -> float:
    """3DGS's scene extent: 1.1 × the largest distance of a camera centre from their mean (≥ 1e-3)."""
    centres = cameras.center.reshape(-1, 3)
    return max(1.1 * float((centres - centres.mean(0)).norm(dim=1).max()), 1e-3)


class GaussianFitter:
    """Optimises ``scene`` in place against ``images`` (V, 3, H, W) seen by ``cameras`` (batch of V).

    ``depths`` (V, 1, H, W) z-depth (inf / 0 = unknown) feeds the optional depth loss. ``times``
    (V values) are passed to ``scene.rasterize(..., time=)`` — the hook for dynamic scenes.
    """

    def __init__(self, scene: GaussianScene, cameras: Camera, images: torch.Tensor,
                 depths: torch.Tensor | None = None, config: FitConfig = FitConfig(),
                 extent: float | None = None, times: list[float] | None = None):  # fmt: skip
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] != len(cameras):
            raise ValueError(f"images must be ({len(cameras)}, 3, H, W), got {tuple(images.shape)}")
        if images.shape[2:] != (cameras.height, cameras.width):
            raise ValueError(
                f"images are {tuple(images.shape[2:])}, cameras {cameras.height}x{cameras.width}"
            )
        self.scene, self.cameras, self.images, self.depths, self.config = (
            scene,
            cameras,
            images,
            depths,
            config,
        )
        if times is not None and len(times) != len(cameras):
            raise ValueError(f"times must have one value per camera ({len(cameras)}), got {len(times)}")
        self.times = times
        self.extent = camera_extent(cameras) if extent is None else float(extent)
        self.step_index = 0
        self.generator = torch.Generator().manual_seed(config.seed)
        self.order: list[int] = []
        for p in scene.params().values():
            p.requires_grad_(True)
        k = scene.sh.shape[1]
        sh_lr = torch.full((1, k, 1), config.lr_sh_rest)
        sh_lr[:, 0] = config.lr_sh_dc
        lrs = {"means": config.lr_position * self.extent, "log_scales": config.lr_scale,
               "quats": config.lr_rotation, "opacity_logits": config.lr_opacity, "sh": sh_lr}  # fmt: skip
        self.adam = Adam(scene.params(), lrs)
        self._reset_stats()
        self.history: list[dict] = []

    # ---- one iteration ------------------------------------------------------------------------
    def _reset_stats(self) -> None:
        n = len(self.scene)
        self.grad_accum, self.grad_count = torch.zeros(n), torch.zeros(n)
        self.max_radii = torch.zeros(n)

    def _next_view(self) -> int:
        if not self.order:
            self.order = torch.randperm(len(self.cameras), generator=self.generator).tolist()
        return self.order.pop()

    def _position_lr(self) -> float:
        t = min(self.step_index / max(self.config.iterations, 1), 1.0)
        c = self.config
        return math.exp((1 - t) * math.log(c.lr_position) + t * math.log(c.lr_position_final)) * self.extent

    def step(self) -> dict:
        """One optimisation step on one view; returns {"loss", "n"}."""
        c, scene = self.config, self.scene
        view = self._next_view()
        camera = self.cameras[view]
        mode = "RGB+ED" if self._use_depth() else "RGB"
        time = None if self.times is None else self.times[view]
        colors, alphas, meta = scene.rasterize(camera, render_mode=mode, time=time)
        meta["means2d"].retain_grad()
        pred = colors[0, ..., :3].permute(2, 0, 1)
        loss = photometric_loss(pred, self.images[view], c.lambda_dssim)
        if self._use_depth():
            loss = loss + c.depth_weight * self._depth_loss(colors[0, ..., 3], alphas[0, ..., 0], view)
        loss.backward()
        with torch.no_grad():
            self._update_gaussians(meta, camera)
            self.step_index += 1
            self._density_control()
        record = {"step": self.step_index, "loss": float(loss.detach()), "n": len(scene)}
        self.history.append(record)
        return record

    def _use_depth(self) -> bool:
        return self.depths is not None and self.config.depth_weight > 0

    def _depth_loss(self, expected: torch.Tensor, alpha: torch.Tensor, view: int) -> torch.Tensor:
        target = self.depths[view, 0]
        valid = torch.isfinite(target) & (target > 0) & (alpha.detach() > 0.5)
        if not valid.any():
            return expected.sum() * 0.0
        scale = target[valid].median().clamp(min=1e-6)
        return ((expected[valid] - target[valid]).abs() / scale).mean()

    def _update_gaussians(self, meta: dict, camera: Camera) -> None:
        """After ``loss.backward()``: record the densification statistics, take the Adam step with the
        scheduled position lr, and clear the Gaussians' gradients (call under ``torch.no_grad``)."""
        self._track(meta, camera)
        self.adam.lrs["means"] = self._position_lr()
        params = self.scene.params()
        self.adam.step(params)
        for p in params.values():
            p.grad = None

    def _track(self, meta: dict, camera: Camera) -> None:
        grad = meta["means2d"].grad[0]  # (N, 2) pixels -> NDC units as 3DGS measures them
        ndc = torch.stack([grad[:, 0] * camera.width / 2, grad[:, 1] * camera.height / 2], -1).norm(dim=-1)
        radii = meta["radii"][0].float()
        radii = radii.amax(-1) if radii.ndim == 2 else radii  # (N, 2) here and in gsplat 1.5; (N,) before
        seen = radii > 0
        self.grad_accum[seen] += ndc[seen]
        self.grad_count[seen] += 1
        self.max_radii = torch.maximum(self.max_radii, radii)

    # ---- density control ----------------------------------------------------------------------
    def _density_control(self) -> None:
        c, s = self.config, self.step_index
        if s < c.schedule("densify_until"):
            if s > c.schedule("densify_from") and s % c.schedule("densify_interval") == 0:
                self.densify_and_prune(prune_big=s > c.schedule("opacity_reset_interval"))
            if s % c.schedule("opacity_reset_interval") == 0:
                self.reset_opacity()
        if s % c.schedule("sh_interval") == 0 and self.scene.sh_degree < self.scene.max_sh_degree:
            self.scene.sh_degree += 1

    def _edit(self, keep: torch.Tensor, new: dict[str, torch.Tensor]) -> None:
        for name in PARAM_NAMES:
            old = getattr(self.scene, name).detach()
            setattr(self.scene, name, torch.cat([old[keep], new[name]]).requires_grad_(True))
        n_new = new["means"].shape[0]
        self.adam.edit_rows(keep, n_new)
        self._reset_stats()

    @torch.no_grad()
    def densify_and_prune(self, prune_big: bool = True) -> None:
        """Clone small and split large Gaussians with a high view-space gradient, then prune."""
        c, scene = self.config, self.scene
        grads = torch.nan_to_num(self.grad_accum / self.grad_count, nan=0.0)
        max_scale = scene.scales.detach().amax(dim=1)
        hot = grads >= c.densify_grad_threshold
        room = c.max_gaussians - len(scene)
        if hot.sum() > max(room, 0):  # over the cap: densify only the steepest
            hot = torch.zeros_like(hot)
            if room > 0:
                hot[grads.topk(room).indices] = True
        small = max_scale <= c.percent_dense * self.extent
        clone, split = hot & small, hot & ~small
        params = {n: getattr(scene, n).detach() for n in PARAM_NAMES}
        new = {n: p[clone] for n, p in params.items()}
        if split.any():  # two samples from each split Gaussian, 1.6x smaller
            idx = split.nonzero()[:, 0].repeat(2)
            stds = params["log_scales"][idx].exp()
            offsets = torch.randn(stds.shape, generator=self.generator) * stds
            rot = quat_to_rotmat(params["quats"][idx])
            parts = {n: p[idx] for n, p in params.items()}
            parts["means"] = parts["means"] + (rot @ offsets[..., None])[..., 0]
            parts["log_scales"] = (stds / 1.6).log()
            new = {n: torch.cat([new[n], parts[n]]) for n in PARAM_NAMES}
        keep = ~split
        big_on_screen = self.max_radii > c.max_screen_size  # measured on the set before the edit
        self._edit(keep, new)
        n_new = new["means"].shape[0]
        drop = torch.sigmoid(scene.opacity_logits.detach()) < c.min_opacity
        if prune_big:
            if c.max_world_size > 0:
                drop |= scene.scales.detach().amax(dim=1) > c.max_world_size * self.extent
            drop |= torch.cat([big_on_screen[keep], torch.zeros(n_new, dtype=torch.bool)])
        if drop.any() and not drop.all():
            self._edit(~drop, {n: getattr(scene, n).detach()[:0] for n in PARAM_NAMES})

    @torch.no_grad()
    def reset_opacity(self) -> None:
        """Clamp every opacity to ≤ 0.01 (3DGS's periodic reset) and clear its Adam moments."""
        cap = math.log(0.01 / 0.99)
        logits = self.scene.opacity_logits.detach().clamp(max=cap)
        self.scene.opacity_logits = logits.requires_grad_(True)
        self.adam.m["opacity_logits"].zero_()
        self.adam.v["opacity_logits"].zero_()

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self, progress: bool = True, checkpoint: Callable[[dict], None] | None = None) -> list[dict]:
        """Run until ``config.iterations`` (continuing a resumed state); returns the loss history."""
        c = self.config
        bar = tqdm(total=c.iterations, initial=self.step_index, disable=not progress, desc="fit", unit="it")
        while self.step_index < c.iterations:
            record = self.step()
            bar.update(1)
            if self.step_index % 10 == 0:
                bar.set_postfix(loss=f"{record['loss']:.4f}", n=record["n"])
            if checkpoint is not None and c.checkpoint_every and self.step_index % c.checkpoint_every == 0:
                checkpoint(self.state_dict())
        bar.close()
        return self.history

    def state_dict(self) -> dict:
        # copies: the fit goes on updating its tensors in place after a checkpoint is taken
        return {
            "scene": self.scene.state_dict(),
            "adam_m": {k: v.clone() for k, v in self.adam.m.items()},
            "adam_v": {k: v.clone() for k, v in self.adam.v.items()},
            "adam_step": self.adam.step_count, "step": self.step_index, "order": list(self.order),
            "generator": self.generator.get_state(), "grad_accum": self.grad_accum.clone(),
            "grad_count": self.grad_count.clone(), "max_radii": self.max_radii.clone(),
            "history": list(self.history), "config": asdict(self.config),
        }  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.scene.load_state_dict(state["scene"])
        for p in self.scene.params().values():
            p.requires_grad_(True)
        self.adam.m = {k: v.clone() for k, v in state["adam_m"].items()}
        self.adam.v = {k: v.clone() for k, v in state["adam_v"].items()}
        self.adam.step_count, self.step_index = int(state["adam_step"]), int(state["step"])
        self.order = list(state["order"])
        self.generator.set_state(state["generator"])
        self.grad_accum, self.grad_count = state["grad_accum"].clone(), state["grad_count"].clone()
        self.max_radii, self.history = state["max_radii"].clone(), list(state["history"])
