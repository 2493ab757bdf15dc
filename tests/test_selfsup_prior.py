"""The selfsup prior: export a train-inpainter folder to safetensors, load it, finetune from it.

A tiny network stands in for the shipped prior (its quality is the benchmark's business, not the
tests'); the shipped file is only checked to load into the default network.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from wanderview.backends.selfsup import PRIOR_FILE, PRIOR_FINETUNE, load_prior, make_selfsup_inpainter
from wanderview.cameras.camera import Camera
from wanderview.errors import BackendError
from wanderview.optim.munet import MUNetConfig
from wanderview.optim.selfsup_train import PixelInpaintDiffusion, TrainConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "selfsup_prior.py"


def _script():
    spec = importlib.util.spec_from_file_location("selfsup_prior_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_prior(tmp_path) -> Path:
    """A tiny M-UNet saved like a train-inpainter folder, exported by the rebuild script."""
    diffusion = PixelInpaintDiffusion(MUNetConfig(channels=(8, 16), meb_hidden=8), seed=3)
    diffusion.save(tmp_path / "model", extra={"images": 2, "steps": 0})
    _script().export(tmp_path / "model", tmp_path / "weights")
    return tmp_path / "weights" / "selfsup_prior.safetensors"


def test_export_then_load_gives_the_same_weights(tiny_prior):
    info = json.loads(tiny_prior.with_suffix(".json").read_text())
    assert info["munet"]["channels"] == [8, 16] and info["images"] == 2
    loaded = load_prior(tiny_prior)
    original = PixelInpaintDiffusion(MUNetConfig(channels=(8, 16), meb_hidden=8), seed=3)
    for (name, a), (_, b) in zip(original.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_default_spec_finetunes_the_prior_and_none_trains_from_scratch(tiny_prior):
    tuned = make_selfsup_inpainter(f"prior={tiny_prior}", quiet=True)
    assert tuned.train_config == PRIOR_FINETUNE and not tuned.trained and "prior" in tuned.description
    assert tuned.diffusion.model.config.channels == (8, 16)
    scratch = make_selfsup_inpainter("prior=none")
    assert scratch.train_config == TrainConfig() and "from scratch" in scratch.description
    with pytest.raises(BackendError, match="selfsup prior"):
        make_selfsup_inpainter(f"prior={tiny_prior.parent / 'missing.safetensors'}")
    info = tiny_prior.with_suffix(".json")
    info.write_text(info.read_text().replace('"meb_hidden": 8', '"meb_hidden": 4'))
    with pytest.raises(BackendError, match="does not fit the network"):
        make_selfsup_inpainter(f"prior={tiny_prior}")


def test_prepare_moves_the_weights_away_from_the_prior(tiny_prior):
    h = w = 48
    camera = Camera.from_fov(60.0, w, h)
    depth = torch.full((1, h, w), 5.0)
    depth[:, 12:36, 16:32] = 2.5
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0)) * 0.3 + 0.2
    image[:, 12:36, 16:32] = 0.8
    spec = f"prior={tiny_prior},steps=3,crop=32,pairs=2,sample_steps=2"
    inpainter = make_selfsup_inpainter(spec, quiet=True)
    before = {k: v.clone() for k, v in inpainter.diffusion.model.state_dict().items()}
    inpainter.prepare(image, depth, camera)
    after = inpainter.diffusion.model.state_dict()
    assert inpainter.trained and any(not torch.equal(before[k], after[k]) for k in before)
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[:, 20:30, 8:16] = True
    out = inpainter.inpaint(image, mask, seed=1)
    assert torch.equal(out[:, ~mask[0]], image[:, ~mask[0]])


def test_the_shipped_prior_loads_into_the_default_network():
    diffusion = load_prior(PRIOR_FILE)
    assert diffusion.model.config == MUNetConfig()
    assert PRIOR_FILE.stat().st_size < 20e6
