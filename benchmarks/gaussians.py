"""Gaussian rasteriser speed: the tiled numba path vs the dense torch reference, same run.

Prints one JSON object. For each size (128² × 10k and 256² × 50k Gaussians) and backend:
forward ms and forward+backward ms (median of a few runs after a warm-up, wall and CPU time),
the peak resident memory of a fresh process doing it, and for the tiled path where the time goes
(projection, binning, forward kernel, backward). Each measurement runs in its own subprocess so
the memory peaks do not mix. The dense reference needs H·W·N pairs (with autograd ~50 bytes
each), so it runs only where that fits in ``--dense-max-gb``; otherwise it is measured at a
smaller size, and the JSON says so.

The scene resembles a fitted splat scene: means uniform in the view frustum at depth 2..6,
log-uniform scales 0.005..0.05 (footprints of ~1..10 px), opacities 0.1..0.9, random rotations.

Usage: .venv/bin/python benchmarks/gaussians.py [--runs 3] [--threads 2] [--dense-max-gb 6]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def scene(n: int, size: int):
    import torch

    g = torch.Generator().manual_seed(0)
    depth = 2.0 + 4.0 * torch.rand(n, generator=g)
    xy = (torch.rand(n, 2, generator=g) * 2 - 1) * depth[:, None] * 0.6
    means = torch.cat([xy, depth[:, None]], dim=1)
    scales = torch.exp(torch.empty(n, 3).uniform_(-5.3, -3.0, generator=g))
    quats = torch.randn(n, 4, generator=g)
    opac = 0.1 + 0.8 * torch.rand(n, generator=g)
    colors = torch.rand(n, 3, generator=g)
    f = size / (2 * 0.6)
    K = torch.tensor([[[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]]])
    return [means, quats, scales, opac, colors], torch.eye(4)[None], K


def measure(backend: str, size: int, n: int, runs: int) -> dict:
    """Runs in the child process: times forward and forward+backward."""
    import torch

    from wanderview.render.gaussians import rasterization

    params, views, K = scene(n, size)
    leaves = [p.clone().requires_grad_() for p in params]

    def forward():
        with torch.no_grad():
            rasterization(*params, views, K, size, size, backend=backend)

    def forward_backward():
        for p in leaves:
            p.grad = None
        rc, ra, meta = rasterization(*leaves, views, K, size, size, backend=backend)
        (rc.sum() + ra.sum()).backward()
        return meta

    result = {"backend": backend, "size": size, "gaussians": n}
    for name, fn in (("forward", forward), ("forward_backward", forward_backward)):
        fn()  # warm-up (and the numba JIT or cache load)
        wall, cpu = [], []
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        result[f"{name}_ms"] = round(statistics.median(wall), 1)
        result[f"{name}_cpu_ms"] = round(statistics.median(cpu), 1)
    if backend == "cpu":
        result["stages_ms"] = stages(params, views, K, size)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def stages(params, views, K, size: int) -> dict:
    """Where the tiled path spends its time (one forward + backward, stage by stage)."""
    import numpy as np
    import torch

    from wanderview.render import gaussians_cpu as cpu
    from wanderview.render.gaussians import covariances, project_gaussians

    leaves = [p.clone().requires_grad_() for p in params]
    t0 = time.perf_counter()
    m2, conics, depths, radii = project_gaussians(
        leaves[0], covariances(leaves[1], leaves[2]), views, K, size, size
    )
    t1 = time.perf_counter()
    a = [cpu._np(m2[0]), cpu._np(conics[0]), cpu._np(leaves[4]), cpu._np(leaves[3])]
    r = radii[0].to(torch.int64).numpy()
    offsets, ids = cpu._bin_tiles(a[0], r, cpu._np(depths[0]), size, size, 16)
    t2 = time.perf_counter()
    bg = np.zeros(3)
    out, t_final, stop = cpu._forward(a[0], a[1], a[2], a[3], r, offsets, ids, size, size, 16, bg)
    t3 = time.perf_counter()
    g_out = np.ones_like(out)
    pair = cpu._backward(a[0], a[1], a[2], a[3], r, offsets, ids, size, size, 16, bg, t_final, stop, g_out,
                         np.ones_like(t_final))  # fmt: skip
    cpu._sum_per_gaussian(pair, ids, len(r))
    t4 = time.perf_counter()
    grads = torch.ones_like(m2)
    torch.autograd.backward([m2, conics], [grads, torch.ones_like(conics)])
    t5 = time.perf_counter()
    return {
        "projection_fwd": round((t1 - t0) * 1e3, 1),
        "binning": round((t2 - t1) * 1e3, 1),
        "composite_fwd": round((t3 - t2) * 1e3, 1),
        "composite_bwd": round((t4 - t3) * 1e3, 1),
        "projection_bwd": round((t5 - t4) * 1e3, 1),
        "tile_entries": int(ids.shape[0]),
        "entries_per_gaussian": round(ids.shape[0] / len(r), 2),
    }


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    print(json.dumps(measure(args.backend, args.size, args.n, args.runs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dense-max-gb", type=float, default=6.0)
    parser.add_argument("--child", nargs=3, metavar=("BACKEND", "SIZE", "N"))
    args = parser.parse_args()
    if args.child:
        args.backend, args.size, args.n = args.child[0], int(args.child[1]), int(args.child[2])
        return child(args)
    results = []
    for size, n in ((128, 10_000), (256, 50_000)):
        plans = [("cpu", size, n)]
        dense_gb = size * size * n * 50 / 1e9
        if dense_gb <= args.dense_max_gb:
            plans.append(("reference", size, n))
        else:  # same density of Gaussians per pixel, fewer pixels and Gaussians
            small = 64
            plans.append(("reference", small, max(1, int(n * (small / size) ** 2))))
        for backend, s, count in plans:
            cmd = [sys.executable, __file__, "--runs", str(args.runs), "--threads", str(args.threads)]
            cmd += ["--child", backend, str(s), str(count)]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), NUMBA_NUM_THREADS=str(args.threads))
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
            entry = json.loads(out.strip().splitlines()[-1])
            if (s, count) != (size, n):
                entry["note"] = (
                    f"dense reference at {s}² × {count} (at {size}² × {n} it needs ~{dense_gb:.0f} GB)"
                )
            results.append(entry)
    load = os.getloadavg()
    report = {"threads": args.threads, "load_average": [round(x, 2) for x in load], "results": results}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
