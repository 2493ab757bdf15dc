"""Wall time of a 3-job photo3d grid (CPU defaults, 64x48) on the local executor and on Ray.

    python benchmarks/batch.py [--frames 48] [--repeat 1]

Prints one JSON object: whole-process wall seconds of `wanderview batch` for the local executor
with 1 and 2 workers and for `--executor ray` on a fresh local 2-CPU cluster (start-up and
shutdown included), and Ray's own start-up cost (ray.init of a local cluster, the first actor
ready, ray.shutdown) measured in a separate process. Each run starts from empty run folders. The
load average is printed too: numbers from a busy machine are not comparable with idle ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

RAY_STARTUP = """
import json, os, time
t0 = time.perf_counter()
from wanderview.batch.ray_executor import start_local_cluster
ray = start_local_cluster(num_cpus=2)
t1 = time.perf_counter()
@ray.remote
class Probe:
    def pid(self):
        return os.getpid()
ray.get(Probe.options(num_cpus=1).remote().pid.remote())
t2 = time.perf_counter()
ray.shutdown()
t3 = time.perf_counter()
print(json.dumps({"init_s": round(t1 - t0, 2), "first_actor_s": round(t2 - t1, 2),
                  "shutdown_s": round(t3 - t2, 2)}))
"""


def _grid(folder: Path, frames: int) -> Path:
    rng = np.random.default_rng(0)
    img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    img[12:36, 16:48] = [220, 40, 40]
    Image.fromarray(img).save(folder / "photo.png")
    (folder / "jobs.yaml").write_text(
        f"defaults: {{frames: {frames}, device: cpu}}\n"
        "jobs:\n  - method: photo3d\n    out: runs/{image.stem}-{trajectory}\n    image: photo.png\n"
        "    grid: {trajectory: [swing, circle, forward]}\n"
    )
    return folder / "jobs.yaml"


def _timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="frames per job (photo3d's default 48)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    cli = [sys.executable, "-m", "wanderview.cli", "batch"]
    results: dict = {"load_before": os.getloadavg(), "frames": args.frames, "jobs": 3}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = _grid(Path(tmp), args.frames)
        runs = {
            "local_1_worker_s": [*cli, str(jobs), "--quiet"],
            "local_2_workers_s": [*cli, str(jobs), "--quiet", "--workers", "2"],
            "ray_2_cpus_s": [*cli, str(jobs), "--quiet", "--executor", "ray", "--ray-cpus", "2"],
        }
        for name, cmd in runs.items():
            times = []
            for _ in range(args.repeat):
                shutil.rmtree(Path(tmp) / "runs", ignore_errors=True)
                times.append(_timed(cmd, env))
            results[name] = min(times)
        results["skip_all_s"] = _timed(runs["local_1_worker_s"], env)
    out = subprocess.run(
        [sys.executable, "-c", RAY_STARTUP], env=env, check=True, capture_output=True, text=True
    )
    results["ray_startup"] = json.loads(out.stdout.strip().splitlines()[-1])
    results["load_after"] = os.getloadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
