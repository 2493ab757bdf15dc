"""End to end: `wanderview photo3d` with a tiny DPT depth model and SD inpainter given as hf:<folder>."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from dummies import dpt_dir, sd_inpaint_dir
from wanderview.cli import main


def test_photo3d_with_hf_depth_and_hf_inpainter_writes_a_run_folder(tmp_path):
    rng = np.random.default_rng(0)
    image = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    image[12:36, 16:48] = [200, 60, 40]
    Image.fromarray(image).save(tmp_path / "photo.png")
    out = tmp_path / "run"
    argv = ["photo3d", str(tmp_path / "photo.png"), "--depth-model", f"hf:{dpt_dir()}",
            "--inpainter", f"hf:{sd_inpaint_dir()}", "--frames", "3", "--width", "64", "--height", "64",
            "--trajectory", "pan:angle_deg=12", "-o", str(out), "--quiet"]
    assert main(argv) == 0
    for name in ("video.mp4", "cameras.json", "config.json", "manifest.json"):
        assert (out / name).is_file(), name
    frames = sorted((out / "frames").iterdir())
    assert [p.name for p in frames] == ["00000.png", "00001.png", "00002.png"]
    assert np.asarray(Image.open(frames[0])).shape == (64, 64, 3)
    assert len(list((out / "depth").iterdir())) == 3 and len(list((out / "masks").iterdir())) == 3
    depth0 = np.load(out / "depth" / "00000.npy")
    assert depth0.shape == (64, 64) and np.isfinite(depth0).all() and (depth0 > 0).all()
    manifest_text = (out / "manifest.json").read_text()
    assert dpt_dir() in manifest_text and sd_inpaint_dir() in manifest_text
    assert json.loads(manifest_text)["seed"] == 0
    # The pan reveals holes; the diffusion inpainter must have filled them (no black left where masked).
    mask = np.asarray(Image.open(out / "masks" / "00002.png")) > 127
    frame = np.asarray(Image.open(frames[2]))
    assert mask.any() and not (frame[mask] == 0).all()


def test_photo3d_reports_missing_hf_weights_as_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "p.png")
    argv = ["photo3d", str(tmp_path / "p.png"), "--depth-model", "hf:nobody-here/no-depth",
            "--frames", "2", "-o", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "huggingface-cli download nobody-here/no-depth" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
