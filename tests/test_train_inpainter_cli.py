"""train-inpainter: seeded weights, no stale resume, the result line under --quiet (issue #11)."""

from __future__ import annotations

import json

import torch

from wanderview.cli import main
from wanderview.io.rundir import RunDir


def _images(folder, count=2, shift=0):
    from PIL import Image

    folder.mkdir()
    rng = torch.Generator().manual_seed(shift)
    for i in range(count):
        array = (torch.rand(32, 40, 3, generator=rng) * 255).to(torch.uint8)
        array[8:24, 10 + i * 4 + shift : 24 + i * 4 + shift] = 200
        Image.fromarray(array.numpy()).save(folder / f"im{i}.png")
    return folder


def _train(images, out, *extra):
    args = ["train-inpainter", str(images), "-o", str(out), "--steps", "2", "--crop", "16", "--pairs", "1"]
    return main([*args, "--quiet", *map(str, extra)])


def test_same_seed_same_weights_and_the_result_line_survives_quiet(tmp_path, capsys):
    images = _images(tmp_path / "images")
    weights = []
    for name in ("a", "b", "c"):
        assert _train(images, tmp_path / name, "--seed", 1 if name == "c" else 7) == 0
        weights.append(torch.load(tmp_path / name / "munet.pt", weights_only=True))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"wrote {tmp_path / 'a'}") and "final loss" in lines[0]
    meta = json.loads((tmp_path / "a" / "selfsup.json").read_text())
    assert meta["final_loss"] is not None
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["seed"] == 7
    # a finished model folder is a wanderview folder: --overwrite may replace it, a plain rerun may not
    assert _train(images, tmp_path / "a", "--seed", 7) == 2
    assert _train(images, tmp_path / "a", "--seed", 7, "--overwrite") == 0


def _killed_run(images, out, monkeypatch):
    """Train to the end but die before the folder is finalized; leaves the staging folder."""

    def killed(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(RunDir, "finalize", killed)
        assert _train(images, out) == 130
    assert (RunDir.staging_path(out) / ".state" / "train_state.pt").is_file()


def test_resume_refuses_other_options_and_continues_the_same_run(tmp_path, capsys, monkeypatch):
    images = _images(tmp_path / "images")
    out = tmp_path / "model"
    _killed_run(images, out, monkeypatch)
    capsys.readouterr()
    assert _train(images, out) == 2  # neither --resume nor --overwrite: say which
    assert "--resume" in capsys.readouterr().err
    other = _images(tmp_path / "other", shift=3)
    for args, name in (((images, out, "--steps", 5, "--resume"), "--steps"),
                       ((other, out, "--resume"), "the images"),
                       ((images, out, "--seed", 4, "--resume"), "--seed")):  # fmt: skip
        assert _train(*args) == 2  # a later --steps overrides _train's --steps 2
        err = capsys.readouterr().err
        assert name in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _train(images, out, "--resume") == 0
    assert "final loss" in capsys.readouterr().out
    assert json.loads((out / "selfsup.json").read_text())["final_loss"] is not None
    assert not RunDir.staging_path(out).exists() and not (out / ".state").exists()
    # an overwrite after a kill starts over with the new options
    _killed_run(images, tmp_path / "m2", monkeypatch)
    assert _train(other, tmp_path / "m2", "--overwrite") == 0


def test_crop_larger_than_an_image(tmp_path, capsys):
    images = _images(tmp_path / "images")
    assert _train(images, tmp_path / "m", "--crop", 36) == 2
    err = capsys.readouterr().err
    assert "--crop 32" in err and not list(tmp_path.glob(".*"))
