"""Shared pieces of the batch tests: the 3-job photo3d grid, sequential reference runs, a killer."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from wanderview.cli import main

FRAMES = 16
GRID = f"""\
defaults: {{frames: {FRAMES}, device: cpu}}
jobs:
  - method: photo3d
    out: runs/{{image.stem}}-{{trajectory}}
    image: photo.png
    grid: {{trajectory: [swing, circle, forward]}}
"""
NAMES = ["runs/photo-swing", "runs/photo-circle", "runs/photo-forward"]


def write_photo(folder: Path, name: str = "photo.png", w: int = 64, h: int = 48) -> Path:
    """A 64x48 textured photo with a red square (photo3d's CPU defaults then give real holes)."""
    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = [220, 40, 40]
    Image.fromarray(img).save(folder / name)
    return folder / name


def write_grid(folder: Path, text: str = GRID) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_photo(folder)
    (folder / "jobs.yaml").write_text(text)
    return folder / "jobs.yaml"


def reference_runs(jobs_file: Path, into: Path) -> dict[str, Path]:
    """Each job of ``jobs_file`` run once, sequentially, by the CLI itself (same argv, same cwd)."""
    import torch

    from wanderview.batch.jobs import load_jobs

    refs = {}
    previous = os.getcwd()
    threads = torch.get_num_threads()
    # Batch workers run one thread each; a different thread count changes float sums, and the
    # comparison is byte for byte.
    torch.set_num_threads(1)
    try:
        os.chdir(jobs_file.parent)
        for job in load_jobs(jobs_file):
            argv = list(job.argv)
            out = into / job.name.replace("/", "_")
            argv[argv.index("--out") + 1] = str(out)
            assert main([job.method, *argv, "--quiet"]) == 0
            refs[job.name] = out
    finally:
        os.chdir(previous)
        torch.set_num_threads(threads)
    return refs


def assert_same_run(folder: Path, reference: Path) -> None:
    """Same files, byte for byte, except manifest.json (timings, memory) and metrics.json."""
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    ref_names = sorted(str(p.relative_to(reference)) for p in reference.rglob("*") if p.is_file())
    assert [n for n in names if n != "metrics.json"] == ref_names, (folder, set(names) ^ set(ref_names))
    for name in ref_names:
        if name != "manifest.json":
            assert (folder / name).read_bytes() == (reference / name).read_bytes(), f"{folder.name}/{name}"


def cmdline(pid: str) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def _parent(pid: str) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return None


def local_workers() -> list[int]:
    """Worker processes of a local batch started by this (test) process."""
    me = os.getpid()
    return [
        int(p)
        for p in os.listdir("/proc")
        if p.isdigit() and _parent(p) == me and "wanderview.batch.worker" in cmdline(p)
    ]


def ray_workers() -> list[int]:
    """Processes of Ray batch actors (Ray titles them ray::BatchWorker...)."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and cmdline(p).startswith("ray::BatchWorker")]


class Killer(threading.Thread):
    """SIGKILL every worker found by ``find`` once any staging folder holds frame ``frame``."""

    def __init__(self, root: Path, find, frame: int = 1, timeout_s: float = 300.0) -> None:
        super().__init__(daemon=True)
        self.root, self.find, self.frame, self.timeout_s = root, find, frame, timeout_s
        self.killed: list[int] = []

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        marker = f"frames/{self.frame:05d}.png"
        while time.monotonic() < deadline and not self.killed:
            if any((s / marker).exists() for s in self.root.glob("runs/.*.partial")):
                for pid in self.find():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append(pid)
            time.sleep(0.005)
