"""selfsup backend: the Inpainter protocol, prepare(), the spec forms, and train-inpainter."""

from __future__ import annotations

import pytest
import torch

from wanderview.backends.selfsup import PIXEL_SAMPLE, PRIOR_FINETUNE, SelfSupInpainter, make_selfsup_inpainter
from wanderview.cameras.camera import Camera
from wanderview.errors import BackendError, ConfigError
from wanderview.optim.munet import MUNetConfig
from wanderview.optim.selfsup_train import PixelInpaintDiffusion, SampleConfig, TrainConfig


def scene(h: int = 48, w: int = 48):
    camera = Camera.from_fov(60.0, w, h)
    depth = torch.full((1, h, w), 5.0)
    depth[:, 12:36, 16:32] = 2.5
    image = torch.rand(3, h, w) * 0.3 + 0.2
    image[:, 12:36, 16:32] = 0.8
    return image, depth, camera


def small_inpainter(tmp_path=None) -> SelfSupInpainter:
    diffusion = PixelInpaintDiffusion(MUNetConfig(channels=(8, 16), meb_hidden=8))
    return SelfSupInpainter(
        diffusion,
        "test",
        True,
        TrainConfig(steps=4, batch_size=2, crop=32),
        sample=SampleConfig(steps=2, tile=32, margin=8),
        pairs_per_image=2,
        progress=False,
        save_pairs_dir=tmp_path,
    )


def test_prepare_then_inpaint_keeps_known_pixels(tmp_path):
    image, depth, camera = scene()
    inpainter = small_inpainter(tmp_path / "pairs")
    mask = torch.zeros(1, 48, 48, dtype=torch.bool)
    mask[:, 20:30, 8:16] = True
    with pytest.raises(BackendError, match="prepare"):
        inpainter.inpaint(image, mask)
    inpainter.prepare(image, depth, camera, checkpoint_dir=tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "train_state.pt").is_file()
    assert any((tmp_path / "pairs").glob("pair_000_mask.png"))
    out = inpainter.inpaint(image, mask, seed=1)
    assert out.shape == image.shape
    assert torch.equal(out[:, ~mask[0]], image[:, ~mask[0]])
    assert torch.equal(out, inpainter.inpaint(image, mask, seed=1))
    with pytest.raises(ValueError, match=r"\(1, 48, 48\)"):
        inpainter.inpaint(image, mask[0])


def test_spec_forms_and_option_errors(tmp_path):
    default = make_selfsup_inpainter("", device="cpu", dtype="float32")
    assert default.is_weak_default and "prior shipped" in default.description
    assert default.train_config == PRIOR_FINETUNE and default.sample == PIXEL_SAMPLE
    assert make_selfsup_inpainter("prior=none").train_config.steps == TrainConfig().steps
    tuned = make_selfsup_inpainter("steps=7,sample_steps=3")
    assert tuned.train_config.steps == 7 and tuned.sample.steps == 3
    with pytest.raises(ConfigError, match="unknown selfsup option"):
        make_selfsup_inpainter("", colour="blue")
    with pytest.raises(BackendError, match="train-inpainter"):
        make_selfsup_inpainter(str(tmp_path))


def test_train_inpainter_cli_writes_a_loadable_model(tmp_path):
    from PIL import Image

    from wanderview.cli import main

    images = tmp_path / "images"
    images.mkdir()
    rng = torch.Generator().manual_seed(0)
    for i in range(3):
        array = (torch.rand(40, 48, 3, generator=rng) * 255).to(torch.uint8)
        array[10:30, 12 + i * 4 : 28 + i * 4] = 200
        Image.fromarray(array.numpy()).save(images / f"im{i}.png")
    out = tmp_path / "model"
    code = main(
        [
            "train-inpainter",
            str(images),
            "-o",
            str(out),
            "--steps",
            "3",
            "--crop",
            "32",
            "--pairs",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    assert (out / "munet.pt").is_file() and (out / "selfsup.json").is_file()
    assert main(["train-inpainter", str(images), "-o", str(out), "--steps", "3", "--quiet"]) == 2
    loaded = make_selfsup_inpainter(str(out), sample_steps=2)
    assert loaded.trained and "train-inpainter" in loaded.description
    image = torch.rand(3, 40, 48)
    mask = torch.zeros(1, 40, 48, dtype=torch.bool)
    mask[:, 5:15, 5:9] = True
    filled = loaded.inpaint(image, mask)
    assert torch.equal(filled[:, ~mask[0]], image[:, ~mask[0]])
