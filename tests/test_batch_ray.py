"""`wanderview batch --executor ray` on a local Ray cluster bound to 127.0.0.1 with 2 CPUs.

One cluster for the module, shut down at its end; every test is bounded by the jobs it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

import pytest

from batch_helpers import (
    NAMES,
    Killer,
    assert_same_run,
    cmdline,
    ray_workers,
    reference_runs,
    write_grid,
    write_photo,
)
from wanderview.cli import main

# The kill tests SIGKILL every Ray batch worker on the machine: keep this module on one xdist worker.
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def cluster():
    # The workers inherit it: one thread, like the references (a caller's OMP_NUM_THREADS=2 made
    # the Ray runs differ from the references by float rounding).
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    from wanderview.batch.ray_executor import start_local_cluster

    ray = start_local_cluster(num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved


def _report(jobs: Path) -> dict:
    return {j["job"]: j for j in json.loads((jobs.parent / "batch.json").read_text())["jobs"]}


def test_the_local_cluster_listens_on_loopback_only(cluster):
    assert cluster.cluster_resources().get("CPU") == 2
    node_ips = {n["NodeManagerAddress"] for n in cluster.nodes()}
    assert node_ips == {"127.0.0.1"}
    loopback = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
    ray_pids = {
        p
        for p in os.listdir("/proc")
        if p.isdigit() and any(k in cmdline(p) for k in ("gcs_server", "raylet"))
    }
    assert ray_pids
    # every socket of the GCS and the raylet is bound to 127.0.0.1 (their inodes are in the tables)
    inodes = set()
    for pid in ray_pids:
        with contextlib.suppress(OSError):  # a process may end while we look
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd) if fd.is_symlink() else ""
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                assert fields[1].split(":")[0] in loopback, f"a Ray socket listens on {fields[1]}"
    assert socket.gethostbyname("localhost").startswith("127.")


def test_ray_grid_with_a_killed_worker_matches_sequential_runs_then_skips(cluster, tmp_path, capsys):
    jobs = write_grid(tmp_path / "batch")
    refs = reference_runs(jobs, tmp_path / "reference")
    killer = Killer(jobs.parent, ray_workers)
    killer.start()
    assert (
        main(["batch", str(jobs), "--executor", "ray", "--workers", "2", "--memory-per-job", "1G", "--quiet"])
        == 0
    )
    killer.join(timeout=1)
    assert killer.killed, "the test killed a Ray worker mid-run"
    table = capsys.readouterr().out
    assert "3 jobs:" in table and "failed" not in table
    report = _report(jobs)
    retried = [r for r in report.values() if r["attempts"] > 1]
    assert retried, report
    for record in retried:
        first, second = record["history"][:2]
        assert first["status"] == "failed" and "Ray worker died" in first["error"]
        # "skipped" if the kill came after the run folder was already renamed into place
        assert second["status"] in ("finished", "skipped")
    # a job killed after its first frame resumes (one killed before its staging folder existed starts over)
    assert any(r["history"][1]["resumed"] for r in retried), retried
    for name in NAMES:
        assert_same_run(jobs.parent / name, refs[name])
    assert json.loads((jobs.parent / "batch.json").read_text())["executor"].startswith("ray (cluster")

    assert main(["batch", str(jobs), "--executor", "ray", "--quiet"]) == 0
    assert "3 jobs: 3 skipped" in capsys.readouterr().out
    assert all(r["attempts"] == 0 for r in _report(jobs).values())


def test_one_actor_per_backend_configuration_loads_weights_once(cluster, tmp_path):
    from dummies import dpt_dir

    model = dpt_dir()
    jobs = write_grid(
        tmp_path / "batch",
        f"""\
defaults: {{frames: 3, device: cpu, depth_model: "hf:{model}", resources: {{num_cpus: 2}}}}
jobs:
  - method: photo3d
    out: runs/{{image.stem}}-{{trajectory}}
    image: photo.png
    grid: {{trajectory: [swing, circle]}}
""",
    )
    refs = reference_runs(jobs, tmp_path / "reference")
    # 2 workers allowed, but a 2-CPU job fits the cluster once: the group keeps one warm actor
    assert main(["batch", str(jobs), "--executor", "ray", "--workers", "2", "--quiet"]) == 0
    report = _report(jobs)
    first, second = report["runs/photo-swing"], report["runs/photo-circle"]
    assert first["history"][-1]["pid"] == second["history"][-1]["pid"], "both jobs ran in one worker"
    assert first["history"][-1]["weights"]["loaded"] >= 1
    assert second["history"][-1]["weights"]["loaded"] == first["history"][-1]["weights"]["loaded"]
    assert second["history"][-1]["weights"]["reused"] >= 1, "the second job copied the loaded weights"
    for name in refs:
        assert_same_run(jobs.parent / name, refs[name])


def test_a_gpu_job_on_a_cpu_cluster_is_refused_before_anything_runs(cluster, tmp_path, capsys):
    write_photo(tmp_path)
    (tmp_path / "jobs.yaml").write_text(
        "- {method: photo3d, out: runs/gpu, image: photo.png, device: cuda}\n"
    )
    assert main(["batch", str(tmp_path / "jobs.yaml"), "--executor", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs num_gpus=1 but the Ray cluster has 0 GPU" in err
    assert not (tmp_path / "runs").exists()


def test_ctrl_c_kills_the_actors_and_the_next_call_resumes(cluster, tmp_path):
    import signal
    import threading
    import time

    from batch_helpers import GRID

    jobs = write_grid(tmp_path / "batch", GRID.replace("swing, circle, forward", "swing, circle"))
    refs = reference_runs(jobs, tmp_path / "reference")
    marker = jobs.parent / "runs" / ".photo-swing.partial" / "frames" / "00001.png"

    def interrupt():
        deadline = time.monotonic() + 300
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does to the driver

    threading.Thread(target=interrupt, daemon=True).start()
    assert main(["batch", str(jobs), "--executor", "ray", "--workers", "1", "--quiet"]) == 130
    report = _report(jobs)
    assert (
        report["runs/photo-swing"]["status"] == "cancelled"
        and report["runs/photo-circle"]["status"] == "cancelled"
    )
    assert marker.parents[1].is_dir() and not (jobs.parent / "runs" / "photo-swing").exists()
    deadline = time.monotonic() + 30
    while ray_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ray_workers(), "the actors were killed"

    assert main(["batch", str(jobs), "--executor", "ray", "--quiet"]) == 0
    report = _report(jobs)
    assert report["runs/photo-swing"]["history"][0]["resumed"]
    for name in refs:
        assert_same_run(jobs.parent / name, refs[name])
