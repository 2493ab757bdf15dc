"""Self-supervised inpainter: cycle-rendered pairs, Masked Enhanced Blocks, training, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from wanderview.cameras.camera import Camera
from wanderview.optim.munet import MaskedEnhancedBlock, MUNet, MUNetConfig
from wanderview.optim.selfsup_pairs import CycleConfig, cycle_render, make_pairs, save_pairs
from wanderview.optim.selfsup_train import PixelInpaintDiffusion, SampleConfig, TrainConfig, train

H = W = 64
SMALL = MUNetConfig(channels=(16, 24), meb_hidden=8)


def two_planes() -> tuple[torch.Tensor, torch.Tensor, Camera]:
    """A fronto-parallel background at z=4 with a square foreground plane at z=2 in the middle."""
    camera = Camera.from_fov(60.0, W, H)
    depth = torch.full((1, H, W), 4.0)
    depth[:, 20:44, 20:44] = 2.0
    u = torch.linspace(0, 1, W)
    image = torch.stack([u.expand(H, W), u.flip(0).expand(H, W), torch.full((H, W), 0.3)])
    image[:, 20:44, 20:44] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]
    return image, depth, camera


def test_two_plane_holes_lie_beside_the_depth_edge():
    image, depth, camera = two_planes()
    pose = torch.eye(4)
    pose[0, 3] = 0.4  # camera moves right: the background left of the square is hidden from it
    masked, holes = cycle_render(image, depth, camera, pose)
    assert holes.shape == (1, H, W) and masked.shape == (3, H, W)
    assert holes.sum() > 20, "a sideways move past a depth step must hide some background"
    ys, xs = torch.nonzero(holes[0], as_tuple=True)
    # every hole pixel is within a few pixels of the square's left edge, on the background side
    assert xs.min() >= 20 - 8 and xs.max() < 20
    assert ys.min() >= 20 - 2 and ys.max() <= 44 + 1
    assert torch.all(masked[:, holes[0]] == 0)


def test_single_plane_under_pure_rotation_has_no_holes():
    camera = Camera.from_fov(60.0, W, H)
    depth = torch.full((1, H, W), 3.0)
    image = torch.rand(3, H, W)
    c, s = math.cos(math.radians(4)), math.sin(math.radians(4))
    pose = torch.eye(4)
    pose[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    _, holes = cycle_render(image, depth, camera, pose)
    assert holes.sum() == 0


def test_pairs_are_seeded_and_saved(tmp_path):
    image, depth, camera = two_planes()
    a = make_pairs(image, depth, camera, 3, CycleConfig(), seed=5)
    b = make_pairs(image, depth, camera, 3, CycleConfig(), seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.holes, b.holes))
    targets, masked, holes = a.sample_batch(4, 32, torch.Generator().manual_seed(0))
    assert (
        targets.shape == (4, 3, 32, 32) and masked.shape == (4, 3, 32, 32) and holes.shape == (4, 1, 32, 32)
    )
    written = save_pairs(tmp_path, a)
    assert len(written) == 9 and all(p.stat().st_size > 0 for p in written)


def test_meb_shapes_and_zero_init_identity():
    meb = MaskedEnhancedBlock(channels=12, cond_channels=3, temb_channels=20, hidden=8)
    f = torch.randn(2, 12, 16, 16)
    z = torch.rand(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.8).float()
    out = meb(f, z, mask, torch.randn(2, 20))
    assert out.shape == f.shape
    assert torch.equal(out, f)
    with pytest.raises(ValueError, match=r"\(2, 5, 16, 16\)"):
        meb(torch.randn(2, 5, 16, 16), z, mask)
    # after a change of the output convolution the block depends on the mask
    torch.nn.init.normal_(meb.out.weight, std=0.1)
    a = meb(f, z, mask)
    b = meb(f, z, 1 - mask)
    assert not torch.allclose(a, b)


def test_munet_output_shape_and_text_conditioning():
    net = MUNet(MUNetConfig(channels=(8, 16), meb_hidden=8, text_dim=16))
    x = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    text = net.encode_text(["a lake", ""], "cpu")
    eps = net(x, torch.tensor([10, 500]), mask, torch.rand(2, 3, 32, 32), text)
    assert eps.shape == (2, 3, 32, 32) and text.shape == (2, 32, 16)
    with pytest.raises(ValueError, match="multiples"):
        net(
            torch.randn(1, 3, 31, 31), torch.tensor([1]), torch.zeros(1, 1, 31, 31), torch.zeros(1, 3, 31, 31)
        )


def test_few_training_steps_lower_the_loss():
    image, depth, camera = two_planes()
    pool = make_pairs(image, depth, camera, 4, seed=0)
    diffusion = PixelInpaintDiffusion(SMALL)
    config = TrainConfig(steps=40, batch_size=4, crop=32, lr=2e-3)
    losses = train(diffusion, [pool], config, progress=False)
    assert len(losses) == 40
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10


def test_sampling_is_deterministic_and_preserves_known_pixels():
    image, depth, camera = two_planes()
    diffusion = PixelInpaintDiffusion(SMALL)
    holes = torch.zeros(1, H, W, dtype=torch.bool)
    holes[:, 10:30, 5:12] = True
    sample = SampleConfig(steps=3, tile=48, margin=8)
    a = diffusion.inpaint(image, holes, seed=3, sample=sample)
    b = diffusion.inpaint(image, holes, seed=3, sample=sample)
    c = diffusion.inpaint(image, holes, seed=4, sample=sample)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(a[:, ~holes[0]], image[:, ~holes[0]])
    assert a.min() >= 0 and a.max() <= 1
    ddpm = diffusion.inpaint(
        image, holes, seed=3, sample=SampleConfig(steps=3, sampler="ddpm", tile=48, margin=8)
    )
    assert torch.equal(ddpm[:, ~holes[0]], image[:, ~holes[0]])


def test_checkpoint_resume_skips_finished_training(tmp_path):
    image, depth, camera = two_planes()
    pool = make_pairs(image, depth, camera, 2, seed=0)
    config = TrainConfig(steps=6, batch_size=2, crop=32, checkpoint_every=3)
    first = PixelInpaintDiffusion(SMALL)
    assert len(train(first, [pool], config, checkpoint_dir=tmp_path, progress=False)) == 6
    second = PixelInpaintDiffusion(SMALL)
    assert train(second, [pool], config, checkpoint_dir=tmp_path, progress=False) == []
    for p, q in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)
