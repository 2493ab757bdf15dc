"""fourreal's deformation fields and losses: exact zero at the canonical frame/time, rigidity, IO."""

from __future__ import annotations

import math

import torch

from wanderview.optim.deformation import (
    FrameDeformation,
    TemporalDeformation,
    apply_deformation,
    knn_graph,
    positional_encoding,
    quat_multiply,
    rigidity_losses,
    small_motion_loss,
)  # fmt: skip


def _randomise(field):
    """Non-zero weights everywhere (a fresh field's head is zero, which would make the test trivial)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in field.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return field


def test_positional_encoding_shape_and_values():
    x = torch.tensor([[0.25, -0.5, 1.0]])
    enc = positional_encoding(x, 10)
    assert enc.shape == (1, 3 * 21)
    assert torch.allclose(enc[0, :3], x[0])
    assert torch.allclose(enc[0, 3:6], torch.sin(math.pi * x[0]))


def test_frame_field_is_exactly_zero_at_the_canonical_frame_only():
    x = torch.randn(50, 3)
    field = _randomise(FrameDeformation(5, 2, torch.zeros(3), 1.0, depth=3, width=16, skip=2))
    dx, dq = field(x, 2)
    assert torch.equal(dx, torch.zeros_like(dx)) and torch.equal(dq, torch.zeros_like(dq))
    dx1, dq1 = field(x, 1)
    assert dx1.abs().max() > 1e-3 and dq1.abs().max() > 1e-3


def test_temporal_field_is_exactly_zero_at_the_canonical_time():
    x = torch.randn(50, 3)
    field = _randomise(TemporalDeformation(0.25, torch.zeros(3), 1.0, depth=3, width=16, skip=1))
    dx, dq = field(x, 0.25)
    assert torch.equal(dx, torch.zeros_like(dx)) and torch.equal(dq, torch.zeros_like(dq))
    dx1, _ = field(x, 0.75)
    assert dx1.abs().max() > 1e-3
    # a fresh field moves nothing at any time (zero head)
    fresh = TemporalDeformation(0.0, torch.zeros(3), 1.0, depth=2, width=8, skip=1)
    assert torch.equal(fresh(x, 0.5)[0], torch.zeros(50, 3))


def test_deformation_gradients_reach_the_field():
    x = torch.randn(20, 3)
    field = _randomise(TemporalDeformation(0.0, torch.zeros(3), 1.0, depth=2, width=8, skip=1))
    dx, dq = field(x, 0.5)
    small_motion_loss(dx, dq).backward()
    assert field.mlp.head.weight.grad.abs().sum() > 0
    assert field.mlp.layers[0].weight.grad.abs().sum() > 0


def _rotation_quat(axis, angle):
    axis = torch.nn.functional.normalize(torch.tensor(axis, dtype=torch.float32), dim=0)
    return torch.cat([torch.tensor([math.cos(angle / 2)]), math.sin(angle / 2) * axis])


def test_rigidity_losses_vanish_for_a_rigid_motion_and_not_for_a_stretch():
    g = torch.Generator().manual_seed(0)
    means = torch.rand(200, 3, generator=g)
    neighbours, weights = knn_graph(means, k=20)
    assert neighbours.shape == (200, 20) and not (neighbours == torch.arange(200)[:, None]).any()
    q = _rotation_quat((0.3, 1.0, -0.2), 0.4)
    from wanderview.render.gaussians import quat_to_rotmat

    R = quat_to_rotmat(q)
    moved = means @ R.T + torch.tensor([0.5, -0.1, 0.2])
    dx, dq = moved - means, (q - torch.tensor([1.0, 0, 0, 0])).expand(200, 4)
    rigid, rot = rigidity_losses(means, dx, dq, neighbours, weights)
    assert rigid < 1e-5 and rot < 1e-5
    stretched = means * torch.tensor([1.5, 1.0, 1.0])
    rigid2, _ = rigidity_losses(means, stretched - means, torch.zeros(200, 4), neighbours, weights)
    assert rigid2 > 1e-3


def test_apply_deformation_composes_rotations():
    q0 = _rotation_quat((0, 0, 1), 0.3).expand(4, 4)
    dq = (_rotation_quat((0, 0, 1), 0.2) - torch.tensor([1.0, 0, 0, 0])).expand(4, 4)
    means, quats = apply_deformation(torch.zeros(4, 3), q0, torch.ones(4, 3), dq)
    assert torch.allclose(means, torch.ones(4, 3))
    assert torch.allclose(quats, _rotation_quat((0, 0, 1), 0.5).expand(4, 4), atol=1e-6)
    assert torch.allclose(quat_multiply(q0, torch.tensor([1.0, 0, 0, 0]).expand(4, 4)), q0)
