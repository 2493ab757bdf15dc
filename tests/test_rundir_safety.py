"""Data safety of the run folder: --overwrite deletes only wanderview runs, never an input, and
a location that cannot be written fails before any work (real folders in a temp dir)."""

from __future__ import annotations

import os

import pytest
import torch

from wanderview.errors import OutputError
from wanderview.io.rundir import Manifest, RunDir, check_writable, is_run_folder


def _finished_run(out):
    run = RunDir.create(out)
    run.write_frame(0, torch.full((3, 4, 4), 0.5))
    Manifest(seed=0).write(run)
    return run.finalize()


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (out / "notes.txt").write_text("keep me")
    before = _tree(tmp_path)
    with pytest.raises(OutputError, match="not a wanderview run folder.*--overwrite only replaces"):
        RunDir.create(out, overwrite=True)
    assert _tree(tmp_path) == before  # nothing created, nothing deleted


def test_overwrite_refuses_a_manifest_that_is_not_ours(tmp_path):
    out = tmp_path / "web"
    out.mkdir()
    (out / "manifest.json").write_text('{"name": "my web app", "icons": []}')
    with pytest.raises(OutputError, match="not a wanderview run folder"):
        RunDir.check(out, overwrite=True)
    assert not is_run_folder(out)


def test_overwrite_replaces_a_run_folder_and_an_empty_one(tmp_path):
    out = _finished_run(tmp_path / "run")
    assert is_run_folder(out)
    (out / "metrics.json").write_text("{}")  # eval's output is part of the run
    run = RunDir.create(out, overwrite=True)
    run.write_frame(0, torch.zeros(3, 4, 4))
    Manifest(seed=1).write(run)
    run.finalize()
    assert not (out / "metrics.json").exists() and (out / "frames" / "00000.png").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    RunDir.create(empty, overwrite=True).finalize()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "run"]


def test_overwrite_never_deletes_an_input(tmp_path):
    out = _finished_run(tmp_path / "run")
    image = out / "frames" / "00000.png"  # a frame of the old run used as the new input
    with pytest.raises(OutputError, match="holds the input"):
        RunDir.create(out, overwrite=True, inputs=[image])
    assert image.exists()
    # an input inside the staging folder a fresh run would discard
    staging = RunDir.create(tmp_path / "other").staging
    (staging / "depth.npy").write_bytes(b"x")
    with pytest.raises(OutputError, match="lies in the unfinished run"):
        RunDir.create(tmp_path / "other", overwrite=True, inputs=[staging / "depth.npy"])
    assert (staging / "depth.npy").exists()


def test_overwrite_never_deletes_the_current_folder(tmp_path, monkeypatch):
    out = _finished_run(tmp_path / "run")
    monkeypatch.chdir(out)
    with pytest.raises(OutputError, match="current folder"):
        RunDir.create(".", overwrite=True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(OutputError):  # `-o . --overwrite` in a folder of one's own files
        RunDir.create(".", overwrite=True)
    assert (tmp_path / "mine.txt").exists() and is_run_folder(out)


def test_finalize_rechecks_and_keeps_the_state_for_resume(tmp_path):
    out = tmp_path / "run"
    run = RunDir.create(out, overwrite=True)
    run.write_frame(0, torch.zeros(3, 4, 4))
    run.save_state("scene", {"frame": 0})
    out.mkdir()
    (out / "user.txt").write_text("written while the run worked")
    with pytest.raises(OutputError, match="not a wanderview run folder"):
        run.finalize()
    assert (out / "user.txt").exists()
    with pytest.raises(OutputError, match="not a wanderview run folder"):
        RunDir.create(out, resume=True, overwrite=True)
    (out / "user.txt").unlink()
    assert RunDir.create(out, resume=True).load_state("scene") == {"frame": 0}


def _deny_writes(monkeypatch, folder):
    """Make ``folder`` read-only: chmod for a normal user; root ignores modes, so os.access is patched."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    real = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode, **kw: (
            False if (mode & os.W_OK and os.path.abspath(p) == str(folder)) else real(p, mode, **kw)
        ),
    )


def test_read_only_output_fails_before_any_work(tmp_path, monkeypatch):
    out = _finished_run(tmp_path / "run")
    _deny_writes(monkeypatch, out)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            RunDir.check(out, overwrite=True)
        assert not RunDir.staging_path(out).exists()
    finally:
        out.chmod(0o755)
    parent = tmp_path / "ro"
    parent.mkdir()
    _deny_writes(monkeypatch, parent)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            RunDir.create(parent / "new" / "run")
    finally:
        parent.chmod(0o755)
    with pytest.raises(OutputError, match="is a file"):
        check_writable(tmp_path / "run" / "manifest.json" / "sub")


def test_temp_files_of_a_killed_write_are_swept(tmp_path):
    out = tmp_path / "run"
    run = RunDir.create(out)
    run.write_frame(0, torch.zeros(3, 4, 4))
    # what kill -9 during write_video / save leaves: atomic_output's temp names
    stale = [
        run.staging / ".video_reversed.mp4.k2j4_x.tmp.mp4",
        run.staging / "depth" / ".00001.npy.a1.tmp.npy",
    ]
    (run.staging / "depth").mkdir(exist_ok=True)
    for path in stale:
        path.write_bytes(b"half a file")
    resumed = RunDir.create(out, resume=True)
    assert not any(p.exists() for p in stale)
    (resumed.staging / "munet.pt.tmp").write_bytes(b"x")  # killed after the resume, before finalize
    Manifest().write(resumed)
    resumed.finalize()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_failed_final_swap_restores_the_old_run_and_keeps_the_new_one_resumable(tmp_path, monkeypatch):
    out = _finished_run(tmp_path / "run")
    run = RunDir.create(out, overwrite=True)
    run.write_frame(0, torch.ones(3, 4, 4))
    run.save_state("scene", {"frame": 0})
    real = os.replace

    def failing(src, dst):
        if str(src) == str(run.staging):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OutputError, match="kept in .*--resume"):
        run.finalize()
    monkeypatch.undo()
    assert is_run_folder(out) and (run.staging / ".state" / "scene.pt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.partial", "run"]  # no .old left
    assert RunDir.create(out, overwrite=True, resume=True).load_state("scene") == {"frame": 0}


def test_an_aside_folder_of_a_swap_killed_between_its_renames_is_removed(tmp_path):
    out = _finished_run(tmp_path / "run")
    run = RunDir.create(out, overwrite=True)
    run.write_frame(0, torch.ones(3, 4, 4))
    aside = tmp_path / ".run.old.k1ll3d"  # kill -9 after `out` was moved aside, before the rename
    aside.mkdir()
    out.rename(aside / "out")
    resumed = RunDir.create(out, resume=True)
    Manifest().write(resumed)
    resumed.finalize()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
