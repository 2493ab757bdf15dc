"""`wanderview fourreal` through the CLI: smoke run, render at a time, bad inputs (exit 2, one line)."""

from __future__ import annotations

import json

import pytest
import torch

from wanderview.cli import main
from wanderview.data.synthetic_dynamic import dynamic_dataset
from wanderview.io.cameras import write_transforms_json
from wanderview.io.images import read_image, write_image

TINY = ["--canonical-iterations", "6", "--warmup-iterations", "3", "--motion-iterations", "4",
        "--init-points", "300", "--frames", "3", "--quiet"]  # fmt: skip


def _write_video(folder, frames, cameras=None, times=None, name="cams.json"):
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        write_image(folder / f"{i:05d}.png", frame)
    if cameras is not None:
        path = folder.parent / f"{folder.name}_{name}"
        write_transforms_json(path, cameras)
        if times is not None:
            doc = json.loads(path.read_text())
            for frame, t in zip(doc["frames"], times):
                frame["time"] = t
            path.write_text(json.dumps(doc))
        return path
    return None


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("fourreal")
    d = dynamic_dataset(width=32, height=24, num_reference=3, num_freeze=4)
    ref_cams = _write_video(root / "reference", d.reference, d.reference_cameras, d.reference_times)
    frz_cams = _write_video(root / "freeze", d.freeze, d.freeze_cameras)
    return root, ref_cams, frz_cams, d


def test_fourreal_smoke_then_render_at_times(videos, tmp_path):
    root, ref_cams, frz_cams, _ = videos
    out = tmp_path / "run"
    code = main(
        [
            "fourreal",
            "--reference-video",
            str(root / "reference"),
            "--freeze-video",
            str(root / "freeze"),
            "--reference-cameras",
            str(ref_cams),
            "--freeze-cameras",
            str(frz_cams),
            "-o",
            str(out),
            *TINY,
        ]
    )
    assert code == 0
    for name in (
        "gaussians.ply",
        "deformation.safetensors",
        "cameras.json",
        "fixed_view.mp4",
        "freeze_time.mp4",
        "video.mp4",
        "manifest.json",
        "config.json",
    ):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("SDS is off" in note for note in manifest["notes"])
    assert manifest["backends"]["schedule"]["schedule"] == "cpu"
    cams = json.loads((out / "cameras.json").read_text())
    assert [f["time"] for f in cams["frames"]][:3] == [0.0, 0.5, 1.0] and len(cams["frames"]) == 3 + 4

    # the saved scene moves with time: render at the canonical and at a later time
    from wanderview.scenes.deformable import DeformableGaussianScene

    scene = DeformableGaussianScene.load(out / "gaussians.ply")
    assert scene.temporal is not None and scene.frames is not None
    dx, _ = scene.deformation(time=1.0)
    assert dx.abs().max() > 0  # 4 motion steps moved the field off zero
    assert torch.equal(scene.deformation(time=0.0)[0], torch.zeros_like(dx))
    code = main(["render", str(out), "--trajectory", "orbit", "--frames", "2", "--time", "0..1",
                 "-o", str(tmp_path / "r"), "--quiet"])  # fmt: skip
    assert code == 0
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["backends"]["kind"] == "deformable gaussians" and not manifest["notes"]
    assert read_image(tmp_path / "r" / "frames" / "00001.png").shape == (3, 24, 32)


def _bad(capsys, argv):
    code = main(["fourreal", *argv, *TINY])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_fourreal_bad_inputs(videos, tmp_path, capsys):
    root, ref_cams, frz_cams, d = videos
    out = tmp_path / "out"
    assert "--reference-video" in _bad(capsys, ["-o", str(out)])
    assert "--reference-video" in _bad(capsys, ["--prompt", "a cat", "-o", str(out)])
    small = tmp_path / "small"
    _write_video(small, torch.nn.functional.interpolate(d.freeze, size=(12, 16)))
    assert "16x12" in _bad(capsys, ["--reference-video", str(root / "reference"),
                                    "--freeze-video", str(small),
                                    "-o", str(out)])  # fmt: skip
    wrong = tmp_path / "wrong.json"
    write_transforms_json(wrong, d.freeze_cameras[:2])
    assert "2 cameras for 4 frames" in _bad(capsys, [
        "--reference-video", str(root / "reference"), "--freeze-video", str(root / "freeze"),
        "--reference-cameras", str(ref_cams), "--freeze-cameras", str(wrong), "-o", str(out)])  # fmt: skip
    other = tmp_path / "other"
    _write_video(other, 1.0 - d.freeze)
    assert "matches the canonical" in _bad(
        capsys, ["--reference-video", str(root / "reference"), "--freeze-video", str(other), "-o", str(out)]
    )
    assert "--prompt" in _bad(capsys, ["--video-model", "hf:x", "-o", str(out)])
    assert not out.exists()
