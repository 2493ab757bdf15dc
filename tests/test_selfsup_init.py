"""SDEdit-style sampling of the selfsup inpainter: start from a noised classical fill."""

from __future__ import annotations

import pytest
import torch

from wanderview.backends.classical import OpenCVInpainter
from wanderview.backends.selfsup import SelfSupInpainter, make_selfsup_inpainter
from wanderview.errors import ConfigError
from wanderview.optim.munet import MUNetConfig
from wanderview.optim.selfsup_train import NoiseSchedule, PixelInpaintDiffusion, SampleConfig, sample_inpaint


def _image_and_holes(h: int = 40, w: int = 48):
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, h, w, generator=gen) * 0.2 + torch.linspace(0.2, 0.8, w)
    holes = torch.zeros(1, h, w, dtype=torch.bool)
    holes[:, 12:26, 18:27] = True
    return image.clamp(0, 1), holes


def test_init_sampling_starts_at_the_strength_and_an_oracle_returns_the_init():
    schedule = NoiseSchedule()
    known = torch.rand(1, 3, 16, 16) * 2 - 1
    holes = torch.zeros(1, 1, 16, 16)
    holes[..., 4:10, 5:12] = 1
    init = torch.rand(1, 3, 16, 16) * 2 - 1
    target = holes * init + (1 - holes) * known
    seen = []

    def oracle(x_t, t):  # the exact noise of x_t if the clean image were ``target``
        seen.append(int(t[0]))
        abar = schedule.abar(t, x_t)
        return (x_t - abar.sqrt() * target) / (1 - abar).sqrt()

    out = sample_inpaint(oracle, known, holes, schedule, steps=4, init=init, strength=0.3,
                         generator=torch.Generator().manual_seed(0))
    assert seen[0] == round(0.3 * 999) and seen[-1] == 0 and len(seen) == 4
    assert torch.allclose(out, target, atol=1e-4)
    with pytest.raises(ValueError, match="strength"):
        sample_inpaint(oracle, known, holes, schedule, init=init, strength=0.0)
    with pytest.raises(ValueError, match="init must be shaped"):
        sample_inpaint(oracle, known, holes, schedule, init=init[:, :, :8], strength=0.5)


def test_low_strength_stays_near_the_classical_fill_and_known_pixels_are_exact():
    image, holes = _image_and_holes()
    telea = OpenCVInpainter("telea").inpaint(image, holes)
    diffusion = PixelInpaintDiffusion(MUNetConfig(channels=(8, 16), meb_hidden=8), seed=0)

    def fill(strength: float) -> torch.Tensor:
        sample = SampleConfig(steps=3, tile=32, margin=8, init="telea", strength=strength)
        inpainter = SelfSupInpainter(diffusion, "test", True, None, sample=sample, progress=False)
        return inpainter.inpaint(image, holes, seed=1)

    low, high = fill(0.05), fill(1.0)
    assert torch.equal(low[:, ~holes[0]], image[:, ~holes[0]])
    assert torch.equal(high[:, ~holes[0]], image[:, ~holes[0]])
    near = (low - telea).abs()[:, holes[0]].mean()
    far = (high - telea).abs()[:, holes[0]].mean()
    assert near < 0.5 * far
    assert torch.equal(low, fill(0.05))  # seeded


def test_init_and_strength_options():
    inpainter = make_selfsup_inpainter("init=patchmatch,strength=0.4")
    assert inpainter.sample.init == "patchmatch" and inpainter.sample.strength == 0.4
    with pytest.raises(ConfigError, match="init must be one of"):
        make_selfsup_inpainter("init=lama")
    with pytest.raises(ConfigError, match="strength must be in"):
        make_selfsup_inpainter("strength=1.5")
    with pytest.raises(ConfigError, match="strength must be a number"):
        make_selfsup_inpainter("strength=lots")


def test_averaged_samples_are_the_mean_of_single_samples():
    image, holes = _image_and_holes()
    diffusion = PixelInpaintDiffusion(MUNetConfig(channels=(8, 16), meb_hidden=8), seed=0)
    one = SampleConfig(steps=2, tile=64, margin=8)  # one tile: both draws come from one generator
    single = diffusion.inpaint(image, holes, seed=2, sample=one)
    two = SampleConfig(steps=2, tile=64, margin=8, samples=2)
    averaged = diffusion.inpaint(image, holes, seed=2, sample=two)
    assert torch.equal(averaged[:, ~holes[0]], image[:, ~holes[0]])
    assert not torch.allclose(single, averaged)
    assert make_selfsup_inpainter("samples=3").sample.samples == 3
    with pytest.raises(ConfigError, match="samples must be at least 1"):
        make_selfsup_inpainter("samples=0")
