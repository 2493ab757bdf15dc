"""Run-folder behaviours: staging, finalize, overwrite, resume, abort, manifest."""

from __future__ import annotations

import json
import time

import pytest
import torch

from wanderview.errors import OutputError
from wanderview.io.depth import write_depth
from wanderview.io.rundir import Manifest, RunDir


def _frame(value: float, h: int = 6, w: int = 8):
    rgb = torch.full((3, h, w), value)
    depth = torch.full((1, h, w), 1.0 + value)
    depth[0, 0, 0] = float("inf")
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[0, 1, 2] = True
    return rgb, depth, mask


def test_stages_then_finalizes(tmp_path):
    out = tmp_path / "out"
    run = RunDir.create(out)
    assert run.staging == tmp_path / ".out.partial" and run.staging.is_dir() and not out.exists()
    for i in range(3):
        run.write_frame(i, *_frame(i / 4))
    run.write_json("config.json", {"frames": 3, "size": (6, 8), "t": torch.tensor([1.0])})
    assert run.finished_frames() == 3
    assert run.finalize() == out
    assert not run.staging.exists()
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "depth", "frames", "masks"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert json.loads((out / "config.json").read_text()) == {"frames": 3, "size": [6, 8], "t": [1.0]}


def test_read_frame_round_trip(tmp_path):
    run = RunDir.create(tmp_path / "out")
    rgb, depth, mask = _frame(0.5)
    run.write_frame(0, rgb, depth, mask)
    run.write_frame(1, rgb)
    back_rgb, back_depth, back_mask = run.read_frame(0)
    assert (back_rgb - rgb).abs().max() < 1 / 255
    assert torch.equal(back_depth, depth) and torch.equal(back_mask, mask)
    assert run.read_frame(1)[1] is None and run.read_frame(1)[2] is None


def test_refuses_file_and_nonempty_out(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        RunDir.create(tmp_path / "file")
    out = tmp_path / "out"
    out.mkdir()
    RunDir.create(out).abort()  # an empty folder is fine
    (out / "old.txt").write_text("keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        RunDir.create(out)
    assert (out / "old.txt").exists()


def test_overwrite_replaces_old_only_at_finalize(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    (out / "manifest.json").write_text('{"versions": {"wanderview": "0"}}')  # an older run
    run = RunDir.create(out, overwrite=True)
    run.write_frame(0, *_frame(0.1))
    assert (out / "old.txt").exists()  # a run killed now keeps the old result
    run.finalize()
    assert not (out / "old.txt").exists() and (out / "frames" / "00000.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or aside folder left


def test_resume_counts_finished_frames(tmp_path):
    out = tmp_path / "out"
    run = RunDir.create(out)
    for i in range(4):
        run.write_frame(i, *_frame(i / 5))
    (run.staging / "depth" / "00002.npy").unlink()  # frame 2 incomplete: 0, 1 count
    run.save_state("scene", {"points": torch.arange(6.0).reshape(2, 3), "step": 7})
    # The run is "killed": a plain rerun is refused and names both options.
    with pytest.raises(OutputError, match="--resume.*--overwrite"):
        RunDir.create(out)
    resumed = RunDir.create(out, resume=True)
    assert resumed.finished_frames() == 2
    state = resumed.load_state("scene")
    assert state["step"] == 7 and torch.equal(state["points"], torch.arange(6.0).reshape(2, 3))
    assert resumed.load_state("missing") is None
    resumed.write_frame(2, *_frame(0.4))
    assert resumed.finished_frames() == 4
    resumed.finalize()
    assert not (out / ".state").exists()


def test_finished_frames_rgb_is_the_commit_marker(tmp_path):
    run = RunDir.create(tmp_path / "out")
    assert run.finished_frames() == 0
    rgb, depth, _ = _frame(0.2)
    write_depth(run.frame_path("depth", 0), depth)  # killed before the PNG of frame 0
    assert run.finished_frames() == 0
    run.write_frame(0, rgb, depth)
    assert run.finished_frames() == 1


def test_resume_without_staging_and_overwrite_discards_staging(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="no unfinished run"):
        RunDir.create(out, resume=True)
    run = RunDir.create(out)
    run.write_frame(0, *_frame(0.3))
    fresh = RunDir.create(out, overwrite=True)
    assert fresh.finished_frames() == 0


def test_abort_leaves_nothing(tmp_path):
    run = RunDir.create(tmp_path / "out")
    run.write_frame(0, *_frame(0.3))
    run.write_json("manifest.json", {})
    run.abort()
    assert list(tmp_path.iterdir()) == []


def test_write_frame_checks_shapes(tmp_path):
    run = RunDir.create(tmp_path / "out")
    with pytest.raises(ValueError, match=r"\(1, 6, 8\)"):
        run.write_frame(0, torch.zeros(3, 6, 8), depth=torch.zeros(1, 6, 7))
    with pytest.raises(ValueError, match=r"\(6, 8\)"):
        run.write_frame(0, torch.zeros(6, 8))


def test_manifest_timings_accumulate_and_survive_resume(tmp_path):
    manifest = Manifest(seed=3, device="cpu")
    manifest.backends["depth"] = {"spec": "heuristic", "note": "weak default"}
    for _ in range(2):
        with manifest.timer("render"):
            time.sleep(0.01)
    manifest.frames = 5
    run = RunDir.create(tmp_path / "out")
    manifest.write(run)
    data = run.read_json("manifest.json")
    assert data["seed"] == 3 and data["frames"] == 5 and data["backends"]["depth"]["spec"] == "heuristic"
    assert data["timings_s"]["render"] >= 0.02
    assert {"python", "torch", "wanderview"} <= set(data["versions"]) and data["peak_rss_mb"] > 10
    again = Manifest.from_dict(data)
    with again.timer("render"):
        pass
    assert again.timings["render"] >= 0.02 and again.frames == 5


def test_check_raises_what_create_would_and_writes_nothing(tmp_path):
    from wanderview.errors import OutputError
    from wanderview.io.rundir import RunDir

    out = tmp_path / "run"
    assert RunDir.check(out) is False
    assert not out.exists() and not RunDir.staging_path(out).exists(), "check never creates anything"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        RunDir.check(tmp_path / "file")
    with pytest.raises(OutputError, match="no unfinished run"):
        RunDir.check(out, resume=True)
    RunDir.create(out)  # leaves a staging folder, like a killed run
    with pytest.raises(OutputError, match="--resume"):
        RunDir.check(out)
    assert RunDir.check(out, resume=True) is True
