"""photo3d and demo through the CLI: run folders, resume, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wanderview.cli import main


def _two_plane_inputs(tmp_path: Path, w: int = 64, h: int = 48) -> tuple[Path, Path]:
    """A textured image whose centre square is a near plane in front of a far wall."""
    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = [220, 40, 40]
    depth = np.full((h, w), 4.0, np.float32)
    depth[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 2.0
    Image.fromarray(img).save(tmp_path / "img.png")
    np.save(tmp_path / "depth.npy", depth)
    return tmp_path / "img.png", tmp_path / "depth.npy"


def _run(args: list[str]) -> int:
    return main([str(a) for a in args])


def test_photo3d_writes_a_complete_run_folder(tmp_path):
    img, depth = _two_plane_inputs(tmp_path)
    out = tmp_path / "run"
    assert (
        _run(["photo3d", img, "--depth", depth, "--frames", 4, "--trajectory", "swing", "-o", out, "--quiet"])
        == 0
    )
    for name in ["video.mp4", "cameras.json", "config.json", "manifest.json", "mesh.ply", "mesh.glb"]:
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:05d}.png" for i in range(4)]
    assert len(list((out / "depth").iterdir())) == 4 and len(list((out / "masks").iterdir())) == 4
    frame0 = np.asarray(Image.open(out / "frames" / "00000.png"))
    assert np.array_equal(frame0, np.asarray(Image.open(img))), "frame 0 is the input view"
    cams = json.loads((out / "cameras.json").read_text())
    assert len(cams["frames"]) == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and "render" in manifest["timings_s"]
    assert not list(tmp_path.glob(".run*")), "the staging folder is gone after a finished run"


def test_inpainter_none_leaves_holes_recorded_in_masks(tmp_path):
    img, depth = _two_plane_inputs(tmp_path)
    out = tmp_path / "run"
    args = [
        "photo3d",
        img,
        "--depth",
        depth,
        "--frames",
        3,
        "--inpainter",
        "none",
        "-o",
        out,
        "--quiet",
        "--trajectory",
        "pan:angle_deg=10",
    ]
    assert _run(args) == 0
    mask = np.asarray(Image.open(out / "masks" / "00002.png")) > 127
    frame = np.asarray(Image.open(out / "frames" / "00002.png"))
    assert mask.any(), "a pan reveals pixels the photo never saw"
    assert (frame[mask] == 0).all(), "with --inpainter none holes stay empty"


@pytest.mark.parametrize("scene", ["mesh", "points"])
def test_filled_content_is_reused_by_later_frames(tmp_path, scene):
    img, depth = _two_plane_inputs(tmp_path)
    out = tmp_path / "run"
    args = [
        "photo3d",
        img,
        "--depth",
        depth,
        "--frames",
        6,
        "--scene",
        scene,
        "-o",
        out,
        "--quiet",
        "--trajectory",
        "pan:angle_deg=6",
    ]
    assert _run(args) == 0
    holes = [int((np.asarray(Image.open(out / "masks" / f"{i:05d}.png")) > 127).sum()) for i in range(1, 6)]
    # every frame of a steady pan reveals only a thin new strip; without fusion the holes would
    # grow with the pan angle
    assert max(holes) < 3 * min(h for h in holes if h > 0) + 64, holes


def test_resume_after_a_kill_gives_the_same_video(tmp_path, monkeypatch):
    img, depth = _two_plane_inputs(tmp_path)
    base = ["photo3d", img, "--depth", depth, "--frames", 5, "--quiet", "--trajectory", "circle"]
    assert _run([*base, "-o", tmp_path / "full"]) == 0

    from wanderview.io import rundir

    original = rundir.RunDir.write_frame

    def dying(self, index, *a, **k):
        if index == 3:
            raise KeyboardInterrupt
        return original(self, index, *a, **k)

    monkeypatch.setattr(rundir.RunDir, "write_frame", dying)
    assert _run([*base, "-o", tmp_path / "killed"]) == 130
    assert not (tmp_path / "killed").exists(), "a killed run leaves no half-written output folder"
    monkeypatch.setattr(rundir.RunDir, "write_frame", original)
    assert _run([*base, "-o", tmp_path / "killed", "--resume"]) == 0
    for i in range(5):
        a = np.asarray(Image.open(tmp_path / "full" / "frames" / f"{i:05d}.png"))
        b = np.asarray(Image.open(tmp_path / "killed" / "frames" / f"{i:05d}.png"))
        assert np.array_equal(a, b), f"frame {i} differs after resume"


def _bad(tmp_path, capsys, args) -> str:
    out = tmp_path / "out"
    code = _run([*args, "-o", out, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not out.exists() and not list(tmp_path.glob(".out*")), "nothing is written on bad input"
    assert "Traceback" not in err
    return err


def test_bad_inputs_exit_2_with_one_sentence(tmp_path, capsys):
    img, depth = _two_plane_inputs(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "trunc.png").write_bytes(img.read_bytes()[:60])
    np.save(tmp_path / "small.npy", np.ones((10, 10), np.float32))
    nan = np.load(depth)
    nan[3:5, 7] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "cams.json").write_text('{"frames": [{"transform_matrix": [[1, 0], [0, 1]]}]}')
    cases = {
        "missing image": ["photo3d", tmp_path / "nope.png", "--depth", depth],
        "empty image": ["photo3d", tmp_path / "empty.png", "--depth", depth],
        "truncated image": ["photo3d", tmp_path / "trunc.png", "--depth", depth],
        "depth of another size": ["photo3d", img, "--depth", tmp_path / "small.npy"],
        "NaN depth": ["photo3d", img, "--depth", tmp_path / "nan.npy"],
        "unknown trajectory": ["photo3d", img, "--depth", depth, "--trajectory", "teleport"],
        "parameter of the wrong type": [
            "photo3d",
            img,
            "--depth",
            depth,
            "--trajectory",
            "pan:angle_deg=wide",
        ],
        "malformed camera file": ["photo3d", img, "--depth", depth, "--trajectory", tmp_path / "cams.json"],
        "unknown backend": ["photo3d", img, "--depth", depth, "--inpainter", "magic"],
        "frames 0": ["photo3d", img, "--depth", depth, "--frames", "0"],
        "negative foreground guard": ["photo3d", img, "--depth", depth, "--foreground-guard", "-1"],
    }
    for name, args in cases.items():
        err = _bad(tmp_path, capsys, args)
        assert err.strip(), name
    err = _bad(tmp_path, capsys, ["photo3d", img, "--depth", tmp_path / "nan.npy"])
    assert "2" in err, "the NaN count is reported"


def test_output_that_is_a_file_or_non_empty_is_refused(tmp_path, capsys):
    img, depth = _two_plane_inputs(tmp_path)
    (tmp_path / "file").write_text("x")
    assert _run(["photo3d", img, "--depth", depth, "--frames", 2, "-o", tmp_path / "file", "--quiet"]) == 2
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    assert _run(["photo3d", img, "--depth", depth, "--frames", 2, "-o", full, "--quiet"]) == 2
    assert (full / "keep.txt").exists()
    assert "--overwrite" in capsys.readouterr().err
    # --overwrite replaces only a wanderview run folder (issue #11: it deleted a user's photos)
    assert _run(["photo3d", img, "--depth", depth, "--frames", 2, "-o", full, "--quiet", "--overwrite"]) == 2
    assert (full / "keep.txt").exists() and "not a wanderview run folder" in capsys.readouterr().err
    (full / "keep.txt").unlink()
    assert _run(["photo3d", img, "--depth", depth, "--frames", 2, "-o", full, "--quiet"]) == 0
    assert _run(["photo3d", img, "--depth", depth, "--frames", 2, "-o", full, "--quiet", "--overwrite"]) == 0
    assert (full / "video.mp4").exists()


def test_heuristic_depth_runs_without_a_depth_file(tmp_path):
    img, _ = _two_plane_inputs(tmp_path)
    out = tmp_path / "run"
    assert _run(["photo3d", img, "--frames", 2, "-o", out, "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backends"]["depth"]["weak_default"] is True


def test_a_camera_file_sets_poses_intrinsics_and_frame_count(tmp_path):
    import torch

    from wanderview.cameras.camera import Camera
    from wanderview.io.cameras import write_transforms_json

    img, depth = _two_plane_inputs(tmp_path)
    poses = torch.eye(4).repeat(3, 1, 1)
    poses[:, 0, 3] = torch.tensor([0.0, 0.05, 0.1])
    cams = Camera(torch.tensor([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]]).expand(3, 3, 3), poses, 64, 48)
    write_transforms_json(tmp_path / "cams.json", cams)
    out = tmp_path / "run"
    assert (
        _run(["photo3d", img, "--depth", depth, "--trajectory", tmp_path / "cams.json", "-o", out, "--quiet"])
        == 0
    )
    written = json.loads((out / "cameras.json").read_text())
    assert len(written["frames"]) == 3 and len(list((out / "frames").iterdir())) == 3
    fl = written.get("fl_x", written["frames"][0].get("fl_x"))
    assert abs(fl - 60.0) < 1e-4, "the file's intrinsics are the input image's"


@pytest.mark.parametrize("guard", [0, 16])
def test_the_foreground_guard_keeps_the_occluder_out_of_the_fill(guard):
    """A red occluder (depth 1) on the left, blue background (depth 5) on the right, a disocclusion
    between them: with the guard the fill continues the background only; without it, Telea drags red in."""
    import torch

    from wanderview.backends.classical import OpenCVInpainter
    from wanderview.methods.photo3d import inpaint_from_background

    rgb = torch.zeros(3, 32, 64)
    rgb[0, :, :24], rgb[2, :, 32:] = 1.0, 1.0
    depth = torch.full((1, 32, 64), 5.0)
    depth[:, :, :24] = 1.0
    holes = torch.zeros(1, 32, 64, dtype=torch.bool)
    holes[:, :, 24:32] = True
    depth[holes] = float("inf")
    filled = inpaint_from_background(OpenCVInpainter("telea"), rgb, depth, holes, guard_px=guard)
    red = float(filled[0][holes[0]].mean())
    assert red < 0.05 if guard else red > 0.2
    assert torch.equal(filled[:, ~holes[0]], rgb[:, ~holes[0]])
