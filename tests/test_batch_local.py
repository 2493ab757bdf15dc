"""`wanderview batch --executor local`: a 3-job photo3d grid, a killed worker, skip, Ctrl-C, user errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch_helpers import GRID, NAMES, Killer, assert_same_run, local_workers, reference_runs, write_grid
from wanderview.cli import main


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """(jobs file, {job name: sequential reference run folder})."""
    root = tmp_path_factory.mktemp("local")
    jobs = write_grid(root / "batch")
    return jobs, reference_runs(jobs, root / "reference")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    # the reference runs used one torch thread (conftest); the workers must do the same
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _report(jobs: Path) -> dict:
    return {j["job"]: j for j in json.loads((jobs.parent / "batch.json").read_text())["jobs"]}


def test_killed_worker_is_retried_and_every_folder_matches_a_sequential_run(grid, capsys):
    jobs, refs = grid
    killer = Killer(jobs.parent, local_workers)
    killer.start()
    assert main(["batch", str(jobs), "--workers", "2", "--quiet"]) == 0
    killer.join(timeout=1)
    assert killer.killed, "the test killed a worker mid-run"
    table = capsys.readouterr().out
    assert "3 jobs:" in table and "failed" not in table
    report = _report(jobs)
    retried = [r for r in report.values() if r["attempts"] > 1]
    assert retried, report
    for record in retried:
        first, second = record["history"][:2]
        assert first["status"] == "failed" and "killed (SIGKILL)" in first["error"]
        # "skipped" if the kill came after the run folder was already renamed into place
        assert second["status"] in ("finished", "skipped")
    # a job killed after its first frame resumes (one killed before its staging folder existed starts over)
    assert any(r["history"][1]["resumed"] for r in retried), retried
    for name in NAMES:
        assert report[name]["status"] in ("finished", "skipped") and report[name]["frames"] == 16
        assert_same_run(jobs.parent / name, refs[name])
    assert not list((jobs.parent / "runs").glob(".*")), "no staging folder is left"

    # a second call finds every folder finished and starts no process
    start = time.perf_counter()
    assert main(["batch", str(jobs), "--workers", "2", "--quiet"]) == 0
    assert "3 jobs: 3 skipped" in capsys.readouterr().out
    assert all(r["status"] == "skipped" and r["attempts"] == 0 for r in _report(jobs).values())
    assert time.perf_counter() - start < 60  # generous: it only parses (not a timing benchmark)


def test_ctrl_c_cancels_running_jobs_and_the_next_call_resumes_them(grid, tmp_path):
    _, refs = grid
    jobs = write_grid(tmp_path, GRID.replace("swing, circle, forward", "swing, circle"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    driver = subprocess.Popen(
        [sys.executable, "-m", "wanderview.cli", "batch", str(jobs), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    marker = tmp_path / "runs" / ".photo-swing.partial" / "frames" / "00001.png"
    deadline = time.monotonic() + 300
    while not marker.exists() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    report = _report(jobs)
    assert report["runs/photo-swing"]["status"] == "cancelled"
    assert all(r["status"] == "cancelled" for r in report.values()), "jobs not started are cancelled too"
    assert (tmp_path / "runs" / ".photo-swing.partial").is_dir() and not (
        tmp_path / "runs" / "photo-swing"
    ).exists()
    assert not local_workers(), "no worker outlives the batch"

    assert main(["batch", str(jobs), "--quiet", "--workers", "2"]) == 0
    report = _report(jobs)
    assert report["runs/photo-swing"]["history"][0]["resumed"], "the cancelled job resumed"
    for name in NAMES[:2]:
        assert_same_run(tmp_path / name, refs[name])


def test_a_user_error_is_reported_not_retried_and_the_batch_goes_on(tmp_path, capsys):
    jobs = write_grid(
        tmp_path,
        """\
- {method: photo3d, out: runs/broken, image: broken.png, frames: 2, device: cpu}
- {method: photo3d, out: runs/good, image: photo.png, frames: 2, device: cpu}
""",
    )
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    assert main(["batch", str(jobs), "--quiet", "--metrics", "consistency", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    report = _report(jobs)
    broken, good = report["runs/broken"], report["runs/good"]
    assert broken["status"] == "error" and broken["attempts"] == 1, "exit 2 is a user error: no retry"
    assert "broken.png" in broken["error"] and "Traceback" not in broken["error"]
    assert good["status"] == "finished" and isinstance(good["metrics"]["consistency"], float)
    assert (tmp_path / "runs" / "good" / "metrics.json").is_file(), "metrics come from wanderview eval"
    assert "errors:" in out and "runs/broken:" in out
