"""Out-animation: stage 1 (outpaint around the object) and the CLI smoke test at tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wanderview.backends.registry import make_inpainter
from wanderview.cli import main
from wanderview.errors import WanderviewError
from wanderview.methods.outanimate import canvas_size, outpaint_around_object

torch.set_num_threads(1)


def _object(h: int = 24, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A striped object (an ellipse) on a black image."""
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, h, w, generator=gen)
    rgb[0, :, ::4] = 1.0
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    mask = (((yy - h / 2) / (h / 2.5)) ** 2 + ((xx - w / 2) / (w / 2.5)) ** 2 < 1)[None]
    return rgb, mask


def test_outpaint_keeps_the_object_centred_and_fills_the_rest():
    rgb, mask = _object()
    canvas, known = outpaint_around_object(rgb, mask, make_inpainter("telea"), canvas_scale=1.5, seed=0)
    H, W = canvas_size(24, 32, 1.5)
    assert canvas.shape == (3, H, W) and known.shape == (1, H, W) and known.dtype == torch.bool
    top, left = (H - 24) // 2, (W - 32) // 2
    assert torch.equal(known[:, top : top + 24, left : left + 32], mask)
    assert int(known.sum()) == int(mask.sum())
    inner = canvas[:, top : top + 24, left : left + 32]
    assert torch.equal(inner[mask.expand(3, -1, -1)], rgb[mask.expand(3, -1, -1)]), "object bit-for-bit"
    # the outpainted border continues the object's colours instead of staying black
    border = canvas[:, ~known[0]]
    assert float(border.mean()) > 0.2 and float(border.min()) >= 0.0 and float(border.max()) <= 1.0


def test_outpaint_with_patchmatch_is_deterministic_for_a_seed():
    rgb, mask = _object()
    inpainter = make_inpainter("patchmatch")
    a, _ = outpaint_around_object(rgb, mask, inpainter, canvas_scale=1.25, seed=3)
    b, _ = outpaint_around_object(rgb, mask, inpainter, canvas_scale=1.25, seed=3)
    assert torch.equal(a, b)


@pytest.mark.parametrize("scale", [0.5, 5.0])
def test_outpaint_refuses_a_bad_canvas_scale(scale):
    rgb, mask = _object()
    with pytest.raises(WanderviewError, match="canvas-scale"):
        outpaint_around_object(rgb, mask, make_inpainter("telea"), canvas_scale=scale)


def test_outpaint_checks_shapes_and_empty_masks():
    rgb, mask = _object()
    with pytest.raises(ValueError, match=r"\(1, 24, 32\)"):
        outpaint_around_object(rgb, mask[:, :10], make_inpainter("telea"))
    with pytest.raises(WanderviewError, match="selects no pixel"):
        outpaint_around_object(rgb, torch.zeros_like(mask), make_inpainter("telea"))


def _write_object_files(tmp_path: Path, h: int = 32, w: int = 48) -> tuple[Path, Path, Path]:
    rgb, mask = _object(h, w)
    rgb_u8 = (rgb.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    mask_u8 = (mask[0].numpy() * 255).astype(np.uint8)
    Image.fromarray(rgb_u8).save(tmp_path / "obj.png")
    Image.fromarray(mask_u8).save(tmp_path / "mask.png")
    Image.fromarray(np.dstack([rgb_u8, mask_u8])).save(tmp_path / "obj_rgba.png")
    return tmp_path / "obj.png", tmp_path / "mask.png", tmp_path / "obj_rgba.png"


def _run(args: list) -> int:
    return main([str(a) for a in args])


def test_cli_outanimate_smoke(tmp_path):
    img, mask, _ = _write_object_files(tmp_path)
    out = tmp_path / "run"
    args = ["photo3d", img, "--outanimate", "--object-mask", mask, "--canvas-scale", 1.5,
            "--prompt", "a beach", "--inpainter", "telea", "--frames", 3,
            "--trajectory", "pan:angle_deg=8", "-o", out, "--quiet"]
    assert _run(args) == 0
    canvas = np.asarray(Image.open(out / "outanimate_canvas.png"))
    assert canvas.shape == (48, 72, 3), "1.5 x a 48x32 image"
    frame0 = np.asarray(Image.open(out / "frames" / "00000.png"))
    assert np.array_equal(frame0, canvas), "the video starts from the outpainted canvas"
    assert len(list((out / "frames").iterdir())) == 3 and (out / "video.mp4").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "outpaint" in manifest["timings_s"]
    assert json.loads((out / "config.json").read_text())["outanimate"] is True


def test_cli_outanimate_takes_the_object_from_alpha(tmp_path):
    _, _, rgba = _write_object_files(tmp_path)
    out = tmp_path / "run"
    args = ["photo3d", rgba, "--outanimate", "--frames", 2, "--trajectory", "pan:angle_deg=5", "-o", out,
            "--quiet", "--canvas-scale", 1.25]
    assert _run(args) == 0
    assert np.asarray(Image.open(out / "outanimate_canvas.png")).shape == (40, 60, 3)


@pytest.mark.parametrize(
    "case, message",
    [
        ("size", "expected"),
        ("empty", "selects no pixel"),
        ("missing", "mask"),
        ("opaque", "fully opaque"),
        ("depth", "--depth cannot be used"),
        ("scale", "canvas-scale"),
    ],
)
def test_cli_outanimate_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, case, message):
    img, mask, _ = _write_object_files(tmp_path)
    extra: list = ["--object-mask", mask]
    if case == "size":
        Image.fromarray(np.full((10, 10), 255, np.uint8)).save(tmp_path / "small.png")
        extra = ["--object-mask", tmp_path / "small.png"]
    elif case == "empty":
        Image.fromarray(np.zeros((32, 48), np.uint8)).save(tmp_path / "empty.png")
        extra = ["--object-mask", tmp_path / "empty.png"]
    elif case == "missing":
        extra = ["--object-mask", tmp_path / "nope.png"]
    elif case == "opaque":
        extra = []
    elif case == "depth":
        np.save(tmp_path / "d.npy", np.ones((32, 48), np.float32))
        extra += ["--depth", tmp_path / "d.npy"]
    elif case == "scale":
        extra += ["--canvas-scale", 0.5]
    out = tmp_path / "run"
    assert _run(["photo3d", img, "--outanimate", *extra, "--frames", 2, "-o", out, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not list(tmp_path.glob(".run*"))
