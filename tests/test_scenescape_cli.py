"""`wanderview scenescape` end to end: CPU defaults, ablations, resume, user errors, tiny HF models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dummies import dpt_dir, sd_inpaint_dir, sd_text2image_dir
from wanderview.cli import main


def _image(tmp_path: Path, size: int = 48) -> Path:
    """A smooth colourful image (so the heuristic depth and Telea have something to work on)."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], -1)
    path = tmp_path / "start.png"
    Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return path


def _run(*args) -> int:
    return main([str(a) for a in args])


def _frames(out: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((out / "frames").iterdir())]


BASE = [
    "--frames",
    4,
    "--width",
    48,
    "--height",
    48,
    "--quiet",
    "--trajectory",
    "scenescape:k=1,n=2,max_yaw_deg=15",
]


def test_cpu_run_writes_a_complete_run_folder(tmp_path):
    out = tmp_path / "run"
    assert _run("scenescape", "--image", _image(tmp_path), *BASE, "-o", out) == 0
    for name in ["video.mp4", "video_reversed.mp4", "cameras.json", "config.json", "manifest.json",
                 "mesh.ply", "mesh.glb"]:  # fmt: skip
        assert (out / name).is_file(), name
    frames = _frames(out)
    assert len(frames) == 4 and frames[0].shape == (48, 48, 3)
    masks = [np.asarray(Image.open(p)) > 127 for p in sorted((out / "masks").iterdir())]
    assert not masks[0].any() and all(m.any() for m in masks[1:]), "moving back reveals new pixels"
    assert all(np.isfinite(np.load(p)).all() for p in sorted((out / "depth").iterdir()))
    manifest = json.loads((out / "manifest.json").read_text())
    for stage in ["render", "floating_fix", "inpaint", "depth", "mesh_update"]:
        assert stage in manifest["timings_s"], stage
    assert manifest["peak_rss_mb"] > 0
    assert any("aligned to the mesh" in note for note in manifest["notes"]), "the CPU fallback is documented"
    assert len(json.loads((out / "cameras.json").read_text())["frames"]) == 4
    assert not list(tmp_path.glob(".run*")), "no staging folder is left"


def test_resume_after_a_kill_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    image = _image(tmp_path)
    full = tmp_path / "full"
    # pruning and sub-pixel decimation after every frame: the resumed mesh must reproduce them too
    args = [*BASE, "--prune-every", 1]
    assert _run("scenescape", "--image", image, *args, "-o", full) == 0

    import wanderview.methods.scenescape as method

    real_step = method._step

    def killed_at_frame_2(i, *args, **kwargs):
        if i == 2:
            raise KeyboardInterrupt
        return real_step(i, *args, **kwargs)

    monkeypatch.setattr(method, "_step", killed_at_frame_2)
    part = tmp_path / "part"
    assert _run("scenescape", "--image", image, *args, "-o", part) == 130
    assert not part.exists() and (tmp_path / ".part.partial").is_dir()
    monkeypatch.setattr(method, "_step", real_step)
    assert _run("scenescape", "--image", image, *args, "-o", part, "--resume") == 0
    for a, b in zip(_frames(full), _frames(part), strict=True):
        assert np.array_equal(a, b)
    for name in sorted(p.name for p in (full / "depth").iterdir()):
        assert np.array_equal(np.load(full / "depth" / name), np.load(part / "depth" / name))
    assert (full / "mesh.ply").read_bytes() == (part / "mesh.ply").read_bytes()


@pytest.mark.parametrize("switch", ["--no-mesh", "--warp-inpaint"])
def test_warp_ablations_run_without_a_mesh(tmp_path, switch):
    out = tmp_path / "run"
    assert _run("scenescape", "--image", _image(tmp_path), *BASE, switch, "-o", out) == 0
    assert len(_frames(out)) == 4 and not (out / "mesh.ply").exists()
    assert json.loads((out / "config.json").read_text())["mesh"] is False


def test_without_an_image_or_generator_the_error_names_both_options(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run("scenescape", "--prompt", "a cave", "-o", out, "--quiet") == 2
    err = capsys.readouterr().err
    assert "--image" in err and "--generator hf:" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_missing_image_is_a_clear_error(tmp_path, capsys):
    assert _run("scenescape", "--image", tmp_path / "nope.png", "-o", tmp_path / "run", "--quiet") == 2
    assert "nope.png" in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("option", "value"), [("--path-unit-quantile", "1.5"), ("--exemplar-min-distance", "-1")]
)
def test_a_bad_option_value_is_a_clear_error(tmp_path, capsys, option, value):
    image = _image(tmp_path)
    out = tmp_path / "run"
    assert _run("scenescape", "--image", image, *BASE, option, value, "-o", out) == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err and not out.exists()


def test_the_path_moves_in_units_of_the_near_depth(tmp_path):
    """Frame 0's depth is known; the scenescape path's first step (0.05 units backward) must be
    5 % of its 10th-percentile depth, not of its median."""
    image = _image(tmp_path)
    depth = np.linspace(1.0, 11.0, 48 * 48, dtype=np.float32).reshape(48, 48)
    np.save(tmp_path / "depth.npy", depth)
    out = tmp_path / "run"
    assert _run("scenescape", "--image", image, "--depth", tmp_path / "depth.npy", *BASE, "-o", out) == 0
    frames = json.loads((out / "cameras.json").read_text())["frames"]
    first, second = (np.array(f["transform_matrix"])[:3, 3] for f in frames[:2])
    near = float(np.quantile(depth, 0.1))
    assert np.linalg.norm(second - first) == pytest.approx(0.05 * near, rel=1e-3)


def test_tiny_hf_models_run_the_full_algorithm(tmp_path):
    """Generation, diffusion inpainting, decoder and depth finetuning and the mesh update, 64x64."""
    out = tmp_path / "run"
    args = ["scenescape", "--prompt", "a cosy library", "--generator", f"hf:{sd_text2image_dir()}",
            "--inpainter", f"hf:{sd_inpaint_dir()}", "--depth-model", f"hf:{dpt_dir()}", "--frames", 3,
            "--width", 64, "--height", 64, "--depth-finetune-steps", 2, "--decoder-finetune-steps", 2,
            "--diffusion-steps", 2,
            "--trajectory", "scenescape:k=1,n=1", "--device", "cpu", "--quiet", "-o", out]  # fmt: skip
    assert _run(*args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    timings = manifest["timings_s"]
    for stage in ["first_frame", "render", "inpaint", "decoder_finetune", "depth", "mesh_update"]:
        assert stage in timings, stage
    assert not any("no depth finetuning" in n for n in manifest["notes"])
    assert sum("decoder finetune" in n for n in manifest["notes"]) == 2, "one decoder finetune per new frame"
    assert len(_frames(out)) == 3 and (out / "mesh.glb").is_file()


def test_a_depth_file_is_cropped_like_its_image(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "wide.png")
    depth = np.full((48, 64), 4.0, np.float32)
    depth[:, :8] = 1.0  # only in the columns the centre crop to a square removes
    np.save(tmp_path / "depth.npy", depth)
    out = tmp_path / "run"
    args = ["scenescape", "--image", tmp_path / "wide.png", "--depth", tmp_path / "depth.npy", "--frames", 2,
            "--width", 48, "--height", 48, "--quiet", "-o", out]  # fmt: skip
    assert _run(*args) == 0
    assert np.all(np.load(out / "depth" / "00000.npy") == 4.0)
