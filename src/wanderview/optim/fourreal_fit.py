"""The two reconstruction stages of 4Real (supplementary §C), on the 3DGS fitter of ``gaussian_fit``.

1. **Canonical space** (:class:`FrameDeformationFitter`): the freeze-time frames fit the canonical
   Gaussians with 3DGS's recipe (its Adam, density control, SH schedule: :class:`GaussianFitter`);
   after a warm-up without deformation, every frame k is rendered through w(x, k) (zero at the
   canonical frame) and the loss gains the small-motion term. The field's Adam learning rate
   decays exponentially from ``lr_start`` to ``lr_end`` (paper: 1e-3 → 1e-5).
2. **Motion** (:class:`TemporalFitter`): the Gaussians are frozen; w(x, t) is fitted to the
   reference frames (fixed camera) with L1 + SSIM plus 0.01 × (norm, difference, rigidity,
   rotation) losses (supplementary §B, E.1). The canonical frame is not a training sample: the
   field is zero there by construction.

Both are seeded (frame order, anchor sampling) and return per-step loss records. Either takes an
optional video-SDS hook (``sds``: ``optim/sds.py``'s CanonicalSDS / MotionSDS) whose one ``loss`` call
per step adds the SDS term on the steps of its window (the last part of the stage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm import tqdm

from wanderview.cameras.camera import Camera
from wanderview.optim.deformation import (
    FrameDeformation,
    TemporalDeformation,
    difference_loss,
    knn_graph,
    rigidity_losses,
    small_motion_loss,
)  # fmt: skip
from wanderview.optim.gaussian_fit import FitConfig, GaussianFitter, photometric_loss
from wanderview.scenes.deformable import DeformableGaussianScene


def _decayed(lr_start: float, lr_end: float, step: int, total: int) -> float:
    t = min(step / max(total, 1), 1.0)
    return math.exp((1 - t) * math.log(lr_start) + t * math.log(lr_end))


class FrameDeformationFitter(GaussianFitter):
    """Canonical Gaussians + per-frame deformation on the freeze-time frames (see module doc).

    Args:
        scene: the canonical Gaussians (optimised in place; density control edits them).
        cameras: batch (F,) of the freeze-time frames; images: (F, 3, H, W).
        field: w(x, k) over the F frames; warmup: iterations before it is used (paper 3000 of 23000).
        motion_weight: weight of the small-motion loss (paper 0.01).
        sds: multi-view SDS through the canonical Gaussians (``optim.sds.CanonicalSDS``) or None.
    """

    def __init__(self, scene: DeformableGaussianScene, cameras: Camera, images: torch.Tensor,
                 config: FitConfig, field: FrameDeformation, warmup: int, motion_weight: float = 0.01,
                 lr_start: float = 1e-3, lr_end: float = 1e-5, extent: float | None = None,
                 sds=None):  # fmt: skip
        super().__init__(scene, cameras, images, None, config, extent=extent)
        self.field, self.warmup, self.motion_weight, self.sds = field, warmup, motion_weight, sds
        self.lr_start, self.lr_end = lr_start, lr_end
        self.field_opt = torch.optim.Adam(field.parameters(), lr=lr_start)

    def step(self) -> dict:
        """One step on one freeze-time frame; returns {"step", "loss", "n", "motion"}."""
        c, scene = self.config, self.scene
        view = self._next_view()
        camera = self.cameras[view]
        deform = self.step_index >= self.warmup
        if deform:
            dx, dq = self.field(scene.means, view)
        else:
            dx, dq = scene.means.new_zeros(len(scene), 3), scene.means.new_zeros(len(scene), 4)
        colors, _, meta = scene.rasterize_deformed(camera, dx, dq)
        meta["means2d"].retain_grad()
        loss = photometric_loss(colors[0].permute(2, 0, 1), self.images[view], c.lambda_dssim)
        motion = small_motion_loss(dx, dq)
        if deform:
            loss = loss + self.motion_weight * motion
        sds = None if self.sds is None else self.sds.loss(scene, self.step_index)
        if sds is not None:
            loss = loss + sds
        self.field_opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            self._update_gaussians(meta, camera)
            if deform:
                for group in self.field_opt.param_groups:
                    group["lr"] = _decayed(self.lr_start, self.lr_end, self.step_index - self.warmup,
                                           c.iterations - self.warmup)  # fmt: skip
                self.field_opt.step()
            self.step_index += 1
            self._density_control()
        record = {"step": self.step_index, "loss": float(loss.detach()), "n": len(scene),
                  "motion": float(motion.detach())}  # fmt: skip
        if sds is not None:
            record["sds"] = float(sds.detach())
        self.history.append(record)
        return record


@dataclass(frozen=True)
class MotionConfig:
    """Settings of the motion stage (defaults = the paper's; the method passes its CPU schedule).

    Attributes:
        iterations: steps (paper: 10000 reference-view steps).
        lr_start, lr_end: the field's learning rate, decayed exponentially (paper 1e-3 -> 1e-5).
        lambda_dssim: weight of (1 - SSIM) in the reconstruction loss.
        norm_weight, difference_weight, rigidity_weight, rotation_weight: regulariser weights (0.01).
        neighbours: k of the rigidity graph (Dynamic3DGS: 20).
        anchors: Gaussians whose neighbourhoods enter the rigidity losses per step (a seeded random
            subset keeps a step's cost independent of N; 0 = all).
        curriculum: fraction of the iterations over which the reference frames are added in order
            of their distance in time from the canonical frame (0 = all frames from the start). A
            photometric loss only moves a Gaussian toward an image it already overlaps, so a frame
            whose object lies beyond its canonical footprint gives no useful gradient until the
            field has learnt the motion of the nearer times and extrapolates toward it.
        track_weight: weight (per pixel) of the 2D track loss: the deformed centre of a Gaussian on
            the canonical frame's visible surface, projected into a reference frame, is pulled to
            where the optical-flow track of its canonical pixel is in that frame (ours, not the
            paper's; 0 = off or no tracks). Tracks reach frames whose content lies beyond the
            canonical footprint, where the photometric loss has no gradient.
        track_depth_tolerance: a Gaussian is on the visible surface when its depth is within this
            fraction of the canonical render's depth at its pixel.
        seed: frame order and anchor sampling.
    """

    iterations: int = 10000
    lr_start: float = 1e-3
    lr_end: float = 1e-5
    lambda_dssim: float = 0.2
    norm_weight: float = 0.01
    difference_weight: float = 0.01
    rigidity_weight: float = 0.01
    rotation_weight: float = 0.01
    neighbours: int = 20
    anchors: int = 4096
    curriculum: float = 0.0
    track_weight: float = 0.0
    track_depth_tolerance: float = 0.05
    seed: int = 0


class TemporalFitter:
    """Fits w(x, t) of ``scene.temporal`` to reference frames (R, 3, H, W) at ``times`` (R);
    ``sds``: joint temporal + multi-view SDS (``optim.sds.MotionSDS``) or None."""

    def __init__(self, scene: DeformableGaussianScene, cameras: Camera, images: torch.Tensor,
                 times: list[float], config: MotionConfig = MotionConfig(),
                 tracks: tuple[torch.Tensor, torch.Tensor] | None = None, sds=None):  # fmt: skip
        if scene.temporal is None:
            raise ValueError("the scene has no temporal field to fit")
        if images.ndim != 4 or len(images) != len(cameras) or len(times) != len(images):
            raise ValueError(f"need R images, cameras and times, got {tuple(images.shape)}, "
                             f"{len(cameras)}, {len(times)}")  # fmt: skip
        self.scene, self.cameras, self.images, self.times, self.config = scene, cameras, images, times, config
        self.sds = sds
        for p in scene.params().values():
            p.requires_grad_(False)  # the canonical space is fixed in this stage
        self.means = scene.means.detach()
        self.neighbours, self.weights = knn_graph(self.means, config.neighbours)
        t_c = scene.temporal.canonical_time
        # nearest times first (the curriculum's order); ties keep the video's order
        self.train = sorted((i for i, t in enumerate(times) if t != t_c), key=lambda i: abs(times[i] - t_c))
        spacing = sorted({abs(a - b) for a in times for b in times if a != b})
        self.dt = spacing[0] if spacing else 0.1
        self.generator = torch.Generator().manual_seed(config.seed)
        self.opt = torch.optim.Adam(scene.temporal.parameters(), lr=config.lr_start)
        self.step_index, self.order, self.history, self._order_of = 0, [], [], 0
        self.track_targets = None
        if tracks is not None and config.track_weight > 0 and t_c in times:
            self.track_targets = self._track_targets(tracks, times.index(t_c))

    @torch.no_grad()
    def _track_targets(self, tracks: tuple[torch.Tensor, torch.Tensor], canonical: int) -> list:
        """Per reference frame: (P (3, 4), Gaussian indices (M,), target pixels (M, 2)) from the tracks
        ``(displacement (R, 2, H, W), valid (R, H, W))`` that start at the canonical frame."""
        from wanderview.geometry.triangulate import project, projection_matrix

        disp, valid = tracks
        camera = self.cameras[canonical]
        uv0, z = project(self.means, projection_matrix(camera.K, camera.cam_to_world))
        H, W = valid.shape[1:]
        px, py = uv0[:, 0].floor().long(), uv0[:, 1].floor().long()
        inside = (z > 0) & (px >= 0) & (px < W) & (py >= 0) & (py < H)
        px, py = px.clamp(0, W - 1), py.clamp(0, H - 1)
        surface = self.scene.render(camera).depth[0, py, px].double()
        front = inside & ((z - surface).abs() <= self.config.track_depth_tolerance * surface)
        targets = []
        for i in range(len(self.times)):
            keep = (front & valid[i, py, px]).nonzero()[:, 0]
            P = projection_matrix(self.cameras.K[i], self.cameras.cam_to_world[i])
            targets.append((P, keep, uv0[keep] + disp[i][:, py[keep], px[keep]].T.double()))
        return targets

    def _track_loss(self, i: int, dx: torch.Tensor) -> torch.Tensor:
        """Mean L1 (pixels) between the deformed visible Gaussians' projections and their tracks."""
        from wanderview.geometry.triangulate import project

        if self.track_targets is None or len(self.track_targets[i][1]) == 0:
            return dx.new_zeros(())
        P, keep, target = self.track_targets[i]
        uv, _ = project(self.means[keep] + dx[keep], P)
        return (uv - target).abs().sum(-1).mean().float()

    def _unlocked(self) -> list[int]:
        c = self.config
        ramp = c.curriculum * c.iterations
        if ramp <= 0 or self.step_index >= ramp:
            return self.train
        return self.train[: 1 + int(self.step_index / ramp * len(self.train))]

    def _next(self) -> int:
        frames = self._unlocked()
        if not self.order or len(frames) != self._order_of:
            perm = torch.randperm(len(frames), generator=self.generator).tolist()
            self.order, self._order_of = [frames[i] for i in perm], len(frames)
        return self.order.pop()

    def step(self) -> dict:
        """One step on one reference frame; returns the loss terms."""
        c, field = self.config, self.scene.temporal
        i = self._next()
        t = self.times[i]
        dx, dq = field(self.means, t)
        colors, _, _ = self.scene.rasterize_deformed(self.cameras[i], dx, dq)
        recon = photometric_loss(colors[0].permute(2, 0, 1), self.images[i], c.lambda_dssim)
        # the neighbouring time on the side away from the clip's end
        t_prev = t - self.dt if t - self.dt >= min(self.times) else t + self.dt
        dx_prev, dq_prev = field(self.means, t_prev)
        n = len(self.means)
        anchors = None
        if c.anchors and n > c.anchors:
            anchors = torch.randperm(n, generator=self.generator)[: c.anchors]
        rigid, rot = rigidity_losses(self.means, dx, dq, self.neighbours, self.weights, anchors)
        norm, diff = small_motion_loss(dx, dq), difference_loss(dx, dq, dx_prev, dq_prev)
        track = self._track_loss(i, dx)
        loss = (recon + c.norm_weight * norm + c.difference_weight * diff + c.rigidity_weight * rigid
                + c.rotation_weight * rot + c.track_weight * track)  # fmt: skip
        sds = None if self.sds is None else self.sds.loss(self.scene, self.means, self.step_index)
        if sds is not None:
            loss = loss + sds
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        for group in self.opt.param_groups:
            group["lr"] = _decayed(c.lr_start, c.lr_end, self.step_index, c.iterations)
        self.opt.step()
        self.step_index += 1
        record = {"step": self.step_index, "loss": float(loss.detach()), "recon": float(recon.detach()),
                  "rigidity": float(rigid.detach()), "rotation": float(rot.detach()),
                "track": float(track.detach())}  # fmt: skip
        if sds is not None:
            record["sds"] = float(sds.detach())
        self.history.append(record)
        return record

    def fit(self, progress: bool = True) -> list[dict]:
        """Run until ``config.iterations``; no steps when every reference frame is canonical."""
        if not self.train:
            return self.history
        bar = tqdm(total=self.config.iterations, initial=self.step_index, disable=not progress,
                   desc="motion", unit="it")  # fmt: skip
        while self.step_index < self.config.iterations:
            record = self.step()
            bar.update(1)
            if self.step_index % 10 == 0:
                bar.set_postfix(loss=f"{record['loss']:.4f}")
        bar.close()
        return self.history


def new_temporal_field(scene: DeformableGaussianScene, canonical_time: float, depth: int, width: int,
                       skip: int, position_frequencies: int = 10, time_frequencies: int = 6
                       ) -> TemporalDeformation:  # fmt: skip
    """A zero temporal field normalised to the box of the scene's Gaussians."""
    means = scene.means.detach()
    lo, hi = means.quantile(0.02, dim=0), means.quantile(0.98, dim=0)
    return TemporalDeformation(canonical_time, (lo + hi) / 2, float((hi - lo).max() / 2), depth, width, skip,
                               position_frequencies, time_frequencies)  # fmt: skip
