"""Deformation fields of 4Real (Yu et al. 2024, §3.3–3.4) and their losses.

A field maps a canonical Gaussian centre x (N, 3) and a frame index k or a time t to a
displacement Δx (N, 3) and a rotation offset Δq (N, 4); the deformed Gaussian has mean x + Δx and
rotation normalise((1, 0, 0, 0) + Δq) ⊗ q (so Δq = 0 is no rotation). The network is the
paper's: x through a NeRF positional encoding with L = 10 frequencies, an MLP of ``depth`` ReLU
layers of ``width`` units with the input concatenated again after layer ``skip``, and a linear
head (initialised at zero, so a fresh field does not move anything).

- :class:`FrameDeformation` w(x, k): a learned embedding per freeze-time frame k; the output is
  multiplied by 0 at the canonical frame, so it is **exactly** zero there (4Real's canonical frame
  is the real reference frame and is never deformed).
- :class:`TemporalDeformation` w(x, t): t through a positional encoding; the output is
  f(x, t) − f(x, t_canonical), exactly zero at the canonical time for every x.

Losses (all means, so their weights do not depend on the number of Gaussians): the small-motion
loss ‖Δx‖₁ + ‖Δq‖₁ (§3.3), the temporal difference loss between neighbouring times (§3.4) and
Dynamic 3D Gaussians' local rigidity and rotation-similarity losses over the k nearest neighbours
at the canonical time with weights exp(−λ‖x_i − x_j‖²).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wanderview.render.gaussians import quat_to_rotmat


def positional_encoding(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    """NeRF's encoding: (..., D) -> (..., D·(1 + 2·frequencies)) = [x, sin(2^l π x), cos(2^l π x)]."""
    scales = (2.0 ** torch.arange(frequencies, dtype=x.dtype, device=x.device)) * math.pi
    angles = x[..., None, :] * scales[:, None]  # (..., L, D)
    return torch.cat([x, angles.sin().flatten(-2), angles.cos().flatten(-2)], dim=-1)


class DeformationMLP(nn.Module):
    """(N, in_dim) features -> (N, 7) = Δx (3) and Δq (4); ReLU MLP with one skip connection."""

    def __init__(self, in_dim: int, depth: int = 8, width: int = 256, skip: int = 4):
        super().__init__()
        if depth < 1 or width < 1 or not 0 <= skip <= depth:
            raise ValueError(f"need depth ≥ 1, width ≥ 1 and 0 ≤ skip ≤ depth, got {depth}, {width}, {skip}")
        self.skip = skip
        layers = []
        for i in range(depth):
            d_in = in_dim if i == 0 else width + (in_dim if i == skip else 0)
            layers.append(nn.Linear(d_in, width))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(width, 7)
        nn.init.zeros_(self.head.weight)  # a new field is the identity deformation
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = features
        for i, layer in enumerate(self.layers):
            if i == self.skip and i > 0:
                h = torch.cat([h, features], dim=-1)
            h = torch.relu(layer(h))
        return self.head(h)


class _Field(nn.Module):
    """Shared part: normalises x into the unit box of the canonical Gaussians before encoding."""

    def __init__(self, cond_dim: int, center: torch.Tensor, radius: float, depth: int, width: int,
                 skip: int, position_frequencies: int):  # fmt: skip
        super().__init__()
        self.position_frequencies = position_frequencies
        self.register_buffer("center", center.detach().clone().reshape(3).float())
        self.register_buffer("radius", torch.tensor(float(max(radius, 1e-6))))
        in_dim = 3 * (1 + 2 * position_frequencies) + cond_dim
        self.mlp = DeformationMLP(in_dim, depth, width, skip)

    def _run(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"x must be (N, 3), got {tuple(x.shape)}")
        unit = (x - self.center) / self.radius
        feats = torch.cat([positional_encoding(unit, self.position_frequencies), cond.expand(len(x), -1)], -1)
        out = self.mlp(feats)
        return out[:, :3] * self.radius, out[:, 3:]


class FrameDeformation(_Field):
    """w(x, k): per-frame deformation of the freeze-time video (§3.3); zero at ``canonical``."""

    def __init__(self, num_frames: int, canonical: int, center: torch.Tensor, radius: float,
                 depth: int = 8, width: int = 256, skip: int = 4, position_frequencies: int = 10,
                 embedding_dim: int = 16):  # fmt: skip
        super().__init__(embedding_dim, center, radius, depth, width, skip, position_frequencies)
        if not 0 <= canonical < num_frames:
            raise ValueError(f"canonical frame {canonical} is not in 0..{num_frames - 1}")
        self.num_frames, self.canonical = num_frames, canonical
        self.embedding = nn.Embedding(num_frames, embedding_dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self._settings = {"num_frames": num_frames, "canonical": canonical, "depth": depth, "width": width,
                          "skip": skip, "position_frequencies": position_frequencies,
                          "embedding_dim": embedding_dim}  # fmt: skip

    def settings(self) -> dict:
        """Constructor arguments besides center/radius (saved with the weights)."""
        return dict(self._settings)

    def forward(self, x: torch.Tensor, frame: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, 3) canonical centres -> Δx (N, 3), Δq (N, 4); both exactly 0 at the canonical frame."""
        dx, dq = self._run(x, self.embedding.weight[frame][None])
        gate = 0.0 if frame == self.canonical else 1.0
        return dx * gate, dq * gate


class TemporalDeformation(_Field):
    """w(x, t): temporal deformation of the reference video (§3.4); zero at ``canonical_time``."""

    def __init__(self, canonical_time: float, center: torch.Tensor, radius: float, depth: int = 8,
                 width: int = 256, skip: int = 4, position_frequencies: int = 10,
                 time_frequencies: int = 6):  # fmt: skip
        super().__init__(1 + 2 * time_frequencies, center, radius, depth, width, skip, position_frequencies)
        self.canonical_time, self.time_frequencies = float(canonical_time), time_frequencies
        self._settings = {
            "canonical_time": float(canonical_time),
            "depth": depth,
            "width": width,
            "skip": skip,
            "position_frequencies": position_frequencies,
            "time_frequencies": time_frequencies,
        }

    def settings(self) -> dict:
        """Constructor arguments besides center/radius (saved with the weights)."""
        return dict(self._settings)

    def _time(self, t: float, like: torch.Tensor) -> torch.Tensor:
        return positional_encoding(torch.tensor([[float(t)]], dtype=like.dtype, device=like.device),
                                   self.time_frequencies)  # fmt: skip

    def forward(self, x: torch.Tensor, time: float) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, 3) canonical centres -> Δx (N, 3), Δq (N, 4); both exactly 0 at the canonical time."""
        if time == self.canonical_time:
            return x.new_zeros(len(x), 3), x.new_zeros(len(x), 4)
        dx, dq = self._run(x, self._time(time, x))
        dx0, dq0 = self._run(x, self._time(self.canonical_time, x))
        return dx - dx0, dq - dq0


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of (..., 4) wxyz quaternions."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw,
    ], -1)  # fmt: skip


def delta_rotation(dq: torch.Tensor) -> torch.Tensor:
    """(N, 4) rotation offsets -> (N, 4) unit quaternions normalise((1, 0, 0, 0) + Δq)."""
    unit = torch.zeros_like(dq)
    unit[:, 0] = 1.0
    return nn.functional.normalize(unit + dq, dim=-1)


def apply_deformation(means: torch.Tensor, quats: torch.Tensor, dx: torch.Tensor, dq: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Deformed (N, 3) means and (N, 4) quaternions: x + Δx and normalise(1 + Δq) ⊗ q."""
    return means + dx, quat_multiply(delta_rotation(dq), nn.functional.normalize(quats, dim=-1))


def small_motion_loss(dx: torch.Tensor, dq: torch.Tensor) -> torch.Tensor:
    """4Real's small-motion (and §3.4's norm) regulariser: mean ‖Δx‖₁ + mean ‖Δq‖₁ over N Gaussians."""
    return dx.abs().sum(-1).mean() + dq.abs().sum(-1).mean()


def difference_loss(dx_a: torch.Tensor, dq_a: torch.Tensor, dx_b: torch.Tensor, dq_b: torch.Tensor
                    ) -> torch.Tensor:  # fmt: skip
    """Temporal smoothness: mean ‖Δx(t) − Δx(t')‖₁ + ‖Δq(t) − Δq(t')‖₁ of neighbouring times."""
    return (dx_a - dx_b).abs().sum(-1).mean() + (dq_a - dq_b).abs().sum(-1).mean()


def knn_graph(points: torch.Tensor, k: int = 20, lam: float | None = None, chunk: int = 2048
              ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The k nearest other points of each of N points and Dynamic3DGS's weights.

    Args:
        points: (N, 3) canonical centres.
        lam: λ of the weights exp(−λ d²); None = 1 / (mean squared neighbour distance), so the
            weights are scale-free (Dynamic3DGS fixes λ = 2000 for its metric scenes).
    Returns:
        neighbours (N, k) long and weights (N, k).
    """
    k = max(1, min(k, len(points) - 1))
    idx, d2 = [], []
    for start in range(0, len(points), chunk):
        dist = torch.cdist(points[start : start + chunk], points).square()
        values, index = dist.topk(k + 1, dim=1, largest=False)
        idx.append(index[:, 1:])
        d2.append(values[:, 1:])
    neighbours, sq = torch.cat(idx), torch.cat(d2)
    lam = 1.0 / float(sq.mean().clamp(min=1e-12)) if lam is None else lam
    return neighbours, torch.exp(-lam * sq)


def rigidity_losses(means: torch.Tensor, dx: torch.Tensor, dq: torch.Tensor, neighbours: torch.Tensor,
                    weights: torch.Tensor, anchors: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Local rigidity and rotation similarity (Luiten et al. 2024) of the deformation at one time.

    Args:
        means: (N, 3) canonical centres; dx (N, 3), dq (N, 4) the deformation at time t;
        neighbours, weights: (N, k) from :func:`knn_graph`; anchors: (M,) subset of Gaussians to
            evaluate (None = all).
    Returns:
        rigidity = mean w ‖(x_j,t − x_i,t) − R_i (x_j − x_i)‖ and rotation = mean w ‖r_j − r_i‖,
        with R_i / r_i the rotation of Gaussian i from the canonical time to t (relative rotations:
        4Real's Δq is already one).
    """
    i = torch.arange(len(means), device=means.device) if anchors is None else anchors
    nb, w = neighbours[i], weights[i]  # (M, k)
    rot = delta_rotation(dq)
    R = quat_to_rotmat(rot[i])  # (M, 3, 3)
    moved = means + dx
    offset_now = moved[nb] - moved[i][:, None]  # (M, k, 3)
    offset_then = means[nb] - means[i][:, None]
    predicted = torch.einsum("mab,mkb->mka", R, offset_then)
    rigidity = (w * (offset_now - predicted).norm(dim=-1)).mean()
    # q and −q are one rotation: compare in the hemisphere of the anchor's
    r_i, r_j = rot[i][:, None], rot[nb]
    sign = torch.where((r_i * r_j).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    rotation = (w * (r_j * sign - r_i).norm(dim=-1)).mean()
    return rigidity, rotation
