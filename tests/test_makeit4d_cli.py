"""makeit4d through the CLI: the run folder with CPU defaults and tiny hf: models, ablations, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wanderview.cli import main


def _scene(tmp_path: Path, w: int = 64, h: int = 48) -> tuple[Path, Path]:
    """A textured image: far wall (top), a near box (centre), a ground (bottom); and its depth."""
    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    img[: h // 3] = (img[: h // 3] * 0.3 + np.array([80, 120, 220]) * 0.7).astype(np.uint8)
    depth = np.full((h, w), 8.0, np.float32)
    depth[h // 3 :] = np.linspace(6.0, 2.0, h - h // 3)[:, None]
    depth[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] = 1.5
    Image.fromarray(img).save(tmp_path / "img.png")
    np.save(tmp_path / "depth.npy", depth)
    return tmp_path / "img.png", tmp_path / "depth.npy"


def _run(args) -> int:
    return main([str(a) for a in args])


def test_cpu_defaults_write_the_run_folder(tmp_path):
    img, depth = _scene(tmp_path)
    out = tmp_path / "run"
    assert (
        _run(
            [
                "makeit4d",
                img,
                "--depth",
                depth,
                "--frames",
                4,
                "--motion",
                "sky:1,0",
                "--gif",
                "-o",
                out,
                "--quiet",
            ]
        )
        == 0
    )
    for name in (
        "video.mp4",
        "video.gif",
        "cameras.json",
        "points.ply",
        "flow.png",
        "flow.npy",
        "canvas.png",
        "makeit4d.json",
        "config.json",
        "manifest.json",
    ):
        assert (out / name).is_file(), name
    assert len(list((out / "frames").iterdir())) == 4
    info = json.loads((out / "makeit4d.json").read_text())
    assert info["canvas_size"] == [96, 72] and info["canvas_offset"] == [16, 12]
    assert info["canvas_K"][0][2] == info["input_K"][0][2] + 16
    assert info["layers"] >= 2 and info["moving_points"] > 0
    layers = sorted(p.name for p in (out / "layers").iterdir())
    assert layers[:2] == ["layer_0.png", "layer_0_depth.npy"] and len(layers) == 2 * info["layers"]
    assert Image.open(out / "layers" / "layer_0.png").mode == "RGBA"
    flow = np.load(out / "flow.npy")
    assert flow.shape == (2, 72, 96) and flow[0].max() == pytest.approx(1.0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backends"]["depth"]["spec"] == "file" and "features" in manifest["backends"]
    frame0 = np.asarray(Image.open(out / "frames" / "00000.png")).astype(float)
    assert np.abs(frame0 - np.asarray(Image.open(img))).mean() < 3, "frame 0 is the input view"


def test_static_run_is_consistent_and_evaluates(tmp_path, capsys):
    img, depth = _scene(tmp_path)
    out = tmp_path / "run"
    assert (
        _run(["makeit4d", img, "--depth", depth, "--frames", 3, "--speed", "0.02", "-o", out, "--quiet"]) == 0
    )
    capsys.readouterr()
    assert _run(["eval", out, "--json", "--no-colmap"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0 <= metrics["consistency"] < 20


@pytest.mark.parametrize("ablation", [["--no-outpaint", "--no-layer-inpaint"], ["--per-frame"]])
def test_ablations_run(tmp_path, ablation):
    img, depth = _scene(tmp_path)
    mask = np.zeros((48, 64), np.uint8)
    mask[:16] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "run"
    args = [
        "makeit4d",
        img,
        "--depth",
        depth,
        "--frames",
        3,
        "--motion-mask",
        tmp_path / "mask.png",
        "--motion-vector",
        "1,0",
        "-o",
        out,
        "--quiet",
        *ablation,
    ]
    assert _run(args) == 0
    info = json.loads((out / "makeit4d.json").read_text())
    if "--no-outpaint" in ablation:
        assert info["canvas_size"] == [64, 48]
    assert len(list((out / "frames").iterdir())) == 3


def test_tiny_hf_models_run_the_papers_setup(tmp_path):
    from dummies import dpt_dir, sd_inpaint_dir

    img, _ = _scene(tmp_path)
    out = tmp_path / "run"
    args = [
        "makeit4d",
        img,
        "--depth-model",
        f"hf:{dpt_dir()}",
        "--inpainter",
        f"hf:{sd_inpaint_dir()}",
        "--inpaint-steps",
        2,
        "--frames",
        2,
        "--width",
        64,
        "--height",
        48,
        "--device",
        "cpu",
        "--motion",
        "sky:0.5,0",
        "-o",
        out,
        "--quiet",
    ]
    assert _run(args) == 0
    info = json.loads((out / "makeit4d.json").read_text())
    assert info["layer_depth"] == "remap"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backends"]["inpainter"]["spec"].startswith("hf:")
    assert manifest["backends"]["inpainter"]["weak_default"] is False


def _bad(tmp_path: Path, kind: str) -> list:
    img, depth = _scene(tmp_path)
    base = ["makeit4d", img, "--depth", depth, "--frames", 2, "-o", tmp_path / "run", "--quiet"]
    if kind == "mask size":
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "m.png")
        return [*base, "--motion-mask", tmp_path / "m.png", "--motion-vector", "1,0"]
    if kind == "hints":
        (tmp_path / "h.json").write_text("{shapes: nope")
        return [*base, "--motion", tmp_path / "h.json"]
    if kind == "vector":
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(tmp_path / "m.png")
        return [*base, "--motion-mask", tmp_path / "m.png", "--motion-vector", "1,up"]
    if kind == "clip":
        (tmp_path / "clip").mkdir()
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "clip" / "0.png")
        return [*base, "--motion-video", tmp_path / "clip"]
    return [*base, "--motion", "wobble"]


@pytest.mark.parametrize("kind", ["mask size", "hints", "vector", "clip", "motion"])
def test_bad_motion_inputs_are_one_sentence_and_write_nothing(tmp_path, capsys, kind):
    args = _bad(tmp_path, kind)
    assert _run(args) == 2
    err = capsys.readouterr().err.strip()
    assert err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


def test_resume_renders_only_the_missing_frames(tmp_path, monkeypatch):
    from wanderview.methods import makeit4d

    img, depth = _scene(tmp_path)
    config = makeit4d.Config(image=img, depth=depth, frames=4, motion="sky:1,0", checkpoint_every=1)
    calls = []
    from wanderview.io.rundir import RunDir

    real_write = RunDir.write_frame

    def dying_write(self, index, *args, **kwargs):
        if index == 2:
            raise KeyboardInterrupt  # the run is killed while frame 2 is written
        calls.append(index)
        return real_write(self, index, *args, **kwargs)

    monkeypatch.setattr(RunDir, "write_frame", dying_write)
    with pytest.raises(KeyboardInterrupt):
        makeit4d.run(config, tmp_path / "run", quiet=True)
    monkeypatch.setattr(
        RunDir,
        "write_frame",
        lambda self, index, *a, **k: (calls.append(index), real_write(self, index, *a, **k)),
    )
    result = makeit4d.run(config, tmp_path / "run", resume=True, quiet=True)
    assert calls == [0, 1, 2, 3] and result.num_frames == 4
    assert len(list((tmp_path / "run" / "frames").iterdir())) == 4


def test_motion_from_a_clip_and_from_hints(tmp_path):
    img, depth = _scene(tmp_path)
    clip = tmp_path / "clip"
    clip.mkdir()
    rng = np.random.default_rng(1)
    base = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    for i in range(3):
        Image.fromarray(np.roll(base, 2 * i, axis=1)).save(clip / f"{i}.png")
    out = tmp_path / "run"
    assert (
        _run(["makeit4d", img, "--depth", depth, "--frames", 2, "--motion-video", clip, "-o", out, "--quiet"])
        == 0
    )
    flow = np.load(out / "flow.npy")
    assert np.median(flow[0]) == pytest.approx(2.0, abs=0.5)
    hints = {"shapes": [{"shape_type": "line", "points": [[10, 10], [60, 10]]}]}
    (tmp_path / "h.json").write_text(json.dumps(hints))
    out2 = tmp_path / "run2"
    assert (
        _run(
            [
                "makeit4d",
                img,
                "--depth",
                depth,
                "--frames",
                2,
                "--motion",
                tmp_path / "h.json",
                "-o",
                out2,
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((out2 / "makeit4d.json").read_text())["moving_points"] > 0
