"""The method runtime and the generated method options: resume safety, --config, checkpoints,
sizes and intrinsics, and the review's bugs in the method commands (each case failed before)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from test_photo3d_cli import _two_plane_inputs
from wanderview.cli import build_parser, main
from wanderview.methods.runtime import MethodRun, first_difference


def _run(*args) -> int:
    return main([str(a) for a in args])


def _refused(capsys, tmp_path: Path, *args) -> str:
    """Run a command that must fail on its input: exit 2, one line, no traceback, nothing written."""
    before = sorted(p.name for p in tmp_path.iterdir())
    code = _run(*args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing is written on bad input"
    return err


def _frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((folder / "frames").iterdir())]


# ---------------------------------------------------------------- generated options
@pytest.mark.parametrize("command", ["photo3d", "scenescape"])
def test_every_generated_option_has_help_text(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    for action in sub._actions:
        if action.option_strings or action.dest == "image":
            text = (action.help or "").replace("(default", "").strip(" ()")
            assert len(text) > 8, f"{command} {action.option_strings or action.dest} has no help"


def test_config_json_reruns_a_run_and_options_override_it(tmp_path):
    img, depth = _two_plane_inputs(tmp_path)
    first = tmp_path / "first"
    assert (
        _run(
            "photo3d", img, "--depth", depth, "--frames", 3, "--trajectory", "circle", "-o", first, "--quiet"
        )
        == 0
    )
    again = tmp_path / "again"
    assert _run("photo3d", "--config", first / "config.json", "-o", again, "--quiet") == 0
    assert all(np.array_equal(a, b) for a, b in zip(_frames(first), _frames(again), strict=True))
    shorter = tmp_path / "shorter"
    assert _run("photo3d", "--config", first / "config.json", "--frames", 2, "-o", shorter, "--quiet") == 0
    stored = json.loads((shorter / "config.json").read_text())
    assert stored["frames"] == 2 and stored["trajectory"] == "circle" and len(_frames(shorter)) == 2


def test_config_of_another_method_or_a_bad_value_is_one_sentence(tmp_path, capsys):
    img, depth = _two_plane_inputs(tmp_path)
    (tmp_path / "other.json").write_text(json.dumps({"method": "scenescape", "frames": 3}))
    (tmp_path / "bad.json").write_text(json.dumps({"method": "photo3d", "frames": "many"}))
    (tmp_path / "typo.json").write_text(json.dumps({"method": "photo3d", "frame": 3}))
    for name, needle in (("other.json", "scenescape"), ("bad.json", "--frames"), ("typo.json", "frame")):
        err = _refused(capsys, tmp_path, "photo3d", img, "--config", tmp_path / name, "-o", tmp_path / "o")
        assert needle in err
    assert "IMAGE" in _refused(capsys, tmp_path, "photo3d", "-o", tmp_path / "o", "--quiet")


# ---------------------------------------------------------------- resume
def _kill_at(monkeypatch, frame: int):
    from wanderview.io import rundir

    original = rundir.RunDir.write_frame

    def dying(self, index, *a, **k):
        if index == frame:
            raise KeyboardInterrupt
        return original(self, index, *a, **k)

    monkeypatch.setattr(rundir.RunDir, "write_frame", dying)
    return lambda: monkeypatch.setattr(rundir.RunDir, "write_frame", original)


def test_photo3d_resume_from_a_checkpoint_refuses_other_options(tmp_path, monkeypatch, capsys):
    img, depth = _two_plane_inputs(tmp_path)
    base = [
        "photo3d",
        img,
        "--depth",
        depth,
        "--frames",
        6,
        "--trajectory",
        "circle",
        "--checkpoint-every",
        2,
    ]
    assert _run(*base, "-o", tmp_path / "full", "--quiet") == 0
    restore = _kill_at(monkeypatch, 5)
    assert _run(*base, "-o", tmp_path / "part", "--quiet") == 130
    restore()
    capsys.readouterr()
    for option, value in (("--trajectory", "swing"), ("--seed", 3), ("--inpainter", "ns"), ("--width", 48)):
        assert _run(*base, option, value, "-o", tmp_path / "part", "--resume", "--quiet") == 2
        err = capsys.readouterr().err
        assert option in err and "Traceback" not in err, err
    # options that do not change the result may differ: --quiet (off here) and --checkpoint-every
    assert _run(*base[:-1], 1, "-o", tmp_path / "part", "--resume") == 0
    assert all(np.array_equal(a, b) for a, b in zip(_frames(tmp_path / "full"), _frames(tmp_path / "part"),
                                                    strict=True))  # fmt: skip
    manifest = json.loads((tmp_path / "part" / "manifest.json").read_text())
    assert manifest["timings_s"]["checkpoint"] > 0, "saving resume state is timed"


def test_scenescape_resume_refuses_another_seed(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "img.png")
    base = ["scenescape", "--image", tmp_path / "img.png", "--frames", 4, "--width", 32, "--height", 32,
            "--inpainter", "telea", "--quiet", "-o", tmp_path / "part"]  # fmt: skip
    restore = _kill_at(monkeypatch, 3)
    assert _run(*base, "--checkpoint-every", 1) == 130
    restore()
    capsys.readouterr()
    assert _run(*base, "--seed", 1, "--resume") == 2
    assert "--seed" in capsys.readouterr().err
    assert _run(*base, "--resume") == 0


def test_first_difference_ignores_options_that_do_not_change_the_result():
    stored = {"frames": 3, "checkpoint_every": 1, "trajectory": "swing"}
    assert first_difference(stored, {**stored, "checkpoint_every": 9}) is None
    assert "--trajectory" in first_difference(stored, {**stored, "trajectory": "pan"})
    assert "--new-option" in first_difference(stored, {**stored, "new_option": 1})


def test_checkpoints_are_written_every_k_steps_and_at_the_last(tmp_path):
    rt = MethodRun("test", {"x": 1}, tmp_path / "run", checkpoint_every=3)
    rt.begin()
    written = [i for i in range(7) if rt.checkpoint(i, lambda i=i: {"i": i}, last=i == 6)]
    assert written == [2, 5, 6]
    assert rt.rundir.load_state("method")["step"] == 6 and "checkpoint" in rt.manifest.timings


# ---------------------------------------------------------------- inputs the commands refuse
def test_bad_seeds_sizes_options_and_depth_ranges_are_one_sentence(tmp_path, capsys):
    img, depth = _two_plane_inputs(tmp_path)
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    Image.fromarray(np.zeros((3, 4000, 3), np.uint8)).save(tmp_path / "strip.png")
    for value, name in ((1e30, "huge"), (1e-30, "tiny")):
        np.save(tmp_path / f"{name}.npy", np.full((48, 64), value, np.float32))
    out = tmp_path / "out"
    cases = {
        "seed beyond 64 bits": (["--seed", 2**64], "--seed"),
        "selfsup steps not a number": (["--inpainter", "selfsup:steps=abc"], "steps"),
        "width below the minimum": (["--width", 3], "8"),
        "max side 0": (["--max-side", 0], "--max-side"),
        "not a device": (["--device", "gpu0"], "--device"),
        "constant 1e30 depth": (["--depth", tmp_path / "huge.npy"], "depth"),
        "constant 1e-30 depth": (["--depth", tmp_path / "tiny.npy"], "depth"),
    }
    for name, (extra, needle) in cases.items():
        args = ["photo3d", img, "--depth", depth, "--frames", 2, *extra, "-o", out, "--quiet"]
        assert needle in _refused(capsys, tmp_path, *args), name
    for image in ("dot.png", "strip.png"):  # 1x1, and 3x4000 whose short side vanishes at --max-side
        assert "8" in _refused(capsys, tmp_path, "photo3d", tmp_path / image, "-o", out, "--quiet")
    assert "--seed" in _refused(capsys, tmp_path, "scenescape", "--image", img, "--seed", -1, "-o", out)


# ---------------------------------------------------------------- sizes and intrinsics
def test_an_odd_sized_photo_is_not_resampled(tmp_path):
    """Review bug 4: a 65x47 photo was resampled to 64x46; frames keep the input size now."""
    rng = np.random.default_rng(1)
    photo = (rng.random((47, 65, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "odd.png")
    np.save(tmp_path / "odd.npy", np.full((47, 65), 3.0, np.float32))
    out = tmp_path / "run"
    assert _run("photo3d", tmp_path / "odd.png", "--depth", tmp_path / "odd.npy", "--frames", 2, "-o", out,
                "--quiet") == 0  # fmt: skip
    assert np.array_equal(_frames(out)[0], photo)
    cams = json.loads((out / "cameras.json").read_text())
    assert (cams["w"], cams["h"]) == (65, 47) and cams["cx"] == pytest.approx(32.5)


def test_another_aspect_ratio_is_cropped_with_matching_intrinsics(tmp_path):
    img, depth = _two_plane_inputs(tmp_path)  # 64x48
    out = tmp_path / "run"
    args = ["photo3d", img, "--depth", depth, "--frames", 2, "--width", 24, "--height", 24, "--focal", 40,
            "--cx", 30, "--cy", 20, "-o", out, "--quiet"]  # fmt: skip
    assert _run(*args) == 0
    cams = json.loads((out / "cameras.json").read_text())
    # the centre 48x48 crop starts at x = 8, then everything halves
    assert (cams["w"], cams["h"]) == (24, 24)
    assert cams["fl_x"] == pytest.approx(20) and cams["fl_y"] == pytest.approx(20)
    assert cams["cx"] == pytest.approx(11) and cams["cy"] == pytest.approx(10)
    source = np.asarray(Image.open(img)).astype(np.float32)[:, 8:56]
    expected = source.reshape(24, 2, 24, 2, 3).mean(axis=(1, 3))
    assert np.abs(_frames(out)[0].astype(np.float32) - expected).max() <= 1.0, (
        "crop + area resize, no stretch"
    )


def test_the_demo_keeps_the_sample_principal_point(tmp_path, monkeypatch):
    """Review bug 3: the demo passed only the focal, so cx, cy became the image centre."""
    from wanderview.methods import photo3d

    seen = {}

    def capture(config, out_dir, **kwargs):
        seen["config"] = config
        raise KeyboardInterrupt

    monkeypatch.setattr(photo3d, "run", capture)
    assert _run("demo", "-o", tmp_path / "demo", "--quiet") == 130
    config = seen["config"]
    assert config.cx == pytest.approx(311.693, abs=1e-2) and config.cy == pytest.approx(255.377, abs=1e-2)


def test_a_camera_file_without_a_suffix_sets_the_intrinsics_of_the_photo(tmp_path):
    """Review bug 8: three camera-file tests disagreed; a file without a suffix set the path's
    cameras but the photo was lifted with the --fov intrinsics."""
    from wanderview.cameras.camera import Camera
    from wanderview.io.cameras import write_transforms_json
    from wanderview.io.mesh import load_mesh

    img, depth = _two_plane_inputs(tmp_path)
    K = torch.tensor([[70.0, 0, 30], [0, 70.0, 22], [0, 0, 1]])
    write_transforms_json(tmp_path / "cams", Camera(K, torch.eye(4)[None], 64, 48))
    out = tmp_path / "run"
    assert (
        _run("photo3d", img, "--depth", depth, "--trajectory", tmp_path / "cams", "-o", out, "--quiet") == 0
    )
    vertices, _, _ = load_mesh(out / "mesh.ply")
    far = vertices[(vertices[:, 2] - 4.0).abs() < 1e-3]  # the far wall, depth 4, lifted with K
    assert float(far[:, 0].min()) == pytest.approx((0.5 - 30) / 70 * 4, abs=0.03)
    assert float(far[:, 1].max()) == pytest.approx((47.5 - 22) / 70 * 4, abs=0.03)


# ---------------------------------------------------------------- backends and new depth
class _ConstantDepth:
    output = "depth"
    description = "constant depth (test)"
    is_weak_default = True

    def predict(self, image):
        return torch.full((1, *image.shape[1:]), 2.0)


def test_no_depth_model_is_built_when_a_depth_file_is_given(tmp_path, monkeypatch):
    """Review bug 9: the depth model was built (loading weights) even with --depth."""
    from wanderview.backends import registry

    def refuse(spec, **options):
        raise AssertionError(f"a depth model {spec} was built")

    monkeypatch.setitem(registry.DEPTH_MODELS, "hf", refuse)
    img, depth = _two_plane_inputs(tmp_path)
    out = tmp_path / "run"
    assert _run("photo3d", img, "--depth", depth, "--depth-model", "hf:some/model", "--frames", 2, "-o", out,
                "--quiet") == 0  # fmt: skip


def test_a_constant_depth_prediction_fills_holes_instead_of_failing(tmp_path, monkeypatch):
    """Review bug 6: photo3d's model fill let a ValueError escape on a constant prediction."""
    from wanderview.backends import registry

    monkeypatch.setitem(registry.DEPTH_MODELS, "const", lambda rest, **options: _ConstantDepth())
    img, depth = _two_plane_inputs(tmp_path)
    out = tmp_path / "run"
    args = ["photo3d", img, "--depth", depth, "--depth-model", "const", "--fill-depth", "model",
            "--frames", 3, "--trajectory", "pan:angle_deg=8", "-o", out, "--quiet"]  # fmt: skip
    assert _run(*args) == 0
    for name in ("00001.npy", "00002.npy"):
        holes = np.asarray(Image.open(out / "masks" / name.replace(".npy", ".png"))) > 127
        filled = np.load(out / "depth" / name).reshape(holes.shape)
        assert holes.any() and np.isfinite(filled[holes]).all()


def test_new_content_depth_is_finite_in_holes_for_every_fallback():
    from wanderview.methods.new_depth import new_content_depth

    frame = torch.rand(3, 20, 20)
    rendered = torch.full((1, 20, 20), 4.0)
    holes = torch.zeros(1, 20, 20, dtype=torch.bool)
    holes[:, :, 12:] = True
    rendered[holes] = float("inf")
    for model in (None, _ConstantDepth()):
        new = new_content_depth(frame, rendered, holes, model)
        assert bool(torch.isfinite(new[holes]).all()) and bool((new[~holes] == 4.0).all())
    few = torch.ones_like(holes)
    few[:, 0, :5] = False  # 5 known pixels: too few to align, the background rule
    assert bool(
        torch.isfinite(new_content_depth(frame, torch.full_like(rendered, 3.0), few, _ConstantDepth())).all()
    )


def test_a_resize_that_shrinks_one_axis_and_grows_the_other_is_filtered():
    """Review bug 4: area-vs-bilinear looked only at the height, so a width shrunk 10x while the
    height grew was point-sampled (here: 1-px stripes came out all black or all white)."""
    from wanderview.methods.common import resize_image

    stripes = torch.zeros(3, 10, 100)
    stripes[:, :, ::2] = 1.0
    out = resize_image(stripes, 20, 20)
    assert out.shape == (3, 20, 20)
    assert float((out - 0.5).abs().max()) < 0.1, "each output column averages its five source columns"
