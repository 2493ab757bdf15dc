"""Gaussian fitting quality: held-out PSNR of a procedural scene, and the fit time.

The scene is ``data/synthetic.py``'s ``room`` (a closed room: every ray hits, exact colours and
depth), 15 views at 128x96 along a sideways swing with a little rotation and forward motion;
every 5th view (3 of 15) is held out. The fit starts from the depth of 4 training views (one
Gaussian per pixel of a stride-2 grid) and runs the 3DGS recipe of ``optim/gaussian_fit.py``.

Prints one JSON object: held-out and training PSNR, fit seconds (wall and CPU), iterations,
Gaussians at the start and the end, the machine's load average. ``--save DIR`` writes
held-out render | ground truth PNGs.

Usage: .venv/bin/python benchmarks/gaussian_fit.py [--iterations N] [--threads 2] [--save DIR]
       [--set FIELD=VALUE ...] [--state FILE --chunk K]

``--set`` overrides a ``FitConfig`` field (e.g. ``--set densify_grad_threshold=3e-4``). With
``--state FILE --chunk K`` the fit runs at most K iterations per call, saving its whole state to
FILE and resuming from it on the next call (so a long fit fits into short CPU-slot jobs); the
call that finishes prints the JSON (wall and CPU seconds summed over the calls).

The documented run (27.87 dB held-out, README): ``--iterations 3000 --threads 1 --set
max_world_size=0 --set max_gaussians=30000 --state fit.pt --chunk 2400 --save-every 100``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from wanderview.cameras.camera import Camera
from wanderview.data.synthetic import default_camera, make_scene, render_view
from wanderview.io.images import write_image
from wanderview.metrics.image import psnr, ssim
from wanderview.optim.gaussian_fit import FitConfig, GaussianFitter
from wanderview.scenes.gaussians import GaussianScene


def views(name: str, n: int, width: int, height: int) -> list[Camera]:
    cam0 = default_camera(name, width, height)
    cams = []
    for i in range(n):
        t = i / (n - 1)
        angle = (t - 0.5) * 0.5
        c, s = math.cos(angle), math.sin(angle)
        pose = cam0.cam_to_world.clone()
        pose[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ pose[:3, :3]
        pose[:3, 3] += torch.tensor([(t - 0.5) * 1.0, 0.0, 0.3 * math.sin(t * math.pi)])
        cams.append(cam0.with_pose(pose))
    return cams


def parse_overrides(pairs: list[str]) -> dict:
    """["field=value", ...] -> {field: value typed like FitConfig's default}."""
    fields = FitConfig.__dataclass_fields__
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in fields:
            raise SystemExit(f"--set: FitConfig has no field {name!r}")
        kind = type(getattr(FitConfig(), name))
        out[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(float(value))
    return out


def add_time(spent: dict, t0: float, c0: float) -> dict:
    """The seconds of earlier calls plus this call's since (t0 wall, c0 CPU)."""
    return {"wall": spent["wall"] + time.perf_counter() - t0, "cpu": spent["cpu"] + time.process_time() - c0,
            "calls": spent["calls"] + 1}  # fmt: skip


def save_state(args, fitter: GaussianFitter, spent: dict, n_start: int, cams, gt, test) -> None:
    """Write the resumable state (atomically) and print one progress line with the held-out PSNR."""
    state = {"fitter": fitter.state_dict(), "spent": spent, "gaussians_start": n_start,
             "args": _settings(args)}  # fmt: skip
    torch.save(state, args.state.with_suffix(".tmp"))
    args.state.with_suffix(".tmp").replace(args.state)
    heldout = sum(psnr(fitter.scene.render(cams[i]).rgb, gt[i].rgb) for i in test) / len(test)
    line = {"done": False, "step": fitter.step_index, "n": len(fitter.scene),
            "psnr_heldout": round(heldout, 2),
            "wall_s": round(spent["wall"], 1), "cpu_s": round(spent["cpu"], 1)}  # fmt: skip
    print(json.dumps(line), flush=True)


def _settings(args) -> dict:
    # what must match for a state file to be resumed (not where it is or how it is chunked)
    return vars(args) | {"state": None, "chunk": 0, "save": None, "save_every": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=FitConfig().iterations)
    parser.add_argument("--scene", default="room")
    parser.add_argument("--views", type=int, default=15)
    parser.add_argument("--stride", type=int, default=2, help="init grid stride")
    parser.add_argument("--init-views", type=int, default=4, help="training views the depth init uses")
    parser.add_argument("--sh-degree", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--state", type=Path, default=None, help="resumable state file (with --chunk)")
    parser.add_argument("--chunk", type=int, default=0, help="at most this many iterations per call")
    parser.add_argument("--save-every", type=int, default=0, help="also save the state every N iterations")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scene = make_scene(args.scene)
    cams = views(args.scene, args.views, 128, 96)
    gt = [render_view(scene, c) for c in cams]
    test = [i for i in range(args.views) if i % 5 == 2]
    train = [i for i in range(args.views) if i not in test]
    pick = torch.linspace(0, len(train) - 1, min(args.init_views, len(train))).round().long().tolist()
    init_views = [train[k] for k in pick]
    gs = GaussianScene.from_rgbd([(gt[i].rgb, gt[i].depth, cams[i]) for i in init_views], stride=args.stride,
                                 max_sh_degree=args.sh_degree)  # fmt: skip
    n_start = len(gs)
    train_cams, train_images = Camera.stack([cams[i] for i in train]), torch.stack([gt[i].rgb for i in train])
    overrides = parse_overrides(args.set)
    config = FitConfig(**{"iterations": args.iterations, **overrides})
    fitter = GaussianFitter(gs, train_cams, train_images, config=config)
    spent = {"wall": 0.0, "cpu": 0.0, "calls": 0}
    if args.state is not None and args.state.exists():
        saved = torch.load(args.state, weights_only=False)
        if saved["args"] != _settings(args):
            raise SystemExit(f"{args.state} was written by a run with other settings: {saved['args']}")
        fitter.load_state_dict(saved["fitter"])
        spent, n_start = saved["spent"], saved["gaussians_start"]
    stop = config.iterations if args.chunk <= 0 else min(config.iterations, fitter.step_index + args.chunk)
    t0, c0 = time.perf_counter(), time.process_time()
    with tqdm(total=config.iterations, initial=fitter.step_index, desc="fit", unit="it") as bar:  # stderr
        while fitter.step_index < stop:
            record = fitter.step()
            bar.update(1)
            if record["step"] % 10 == 0:
                bar.set_postfix(loss=f"{record['loss']:.4f}", n=record["n"])
            if args.state is not None and args.save_every and record["step"] % args.save_every == 0:
                save_state(args, fitter, add_time(spent, t0, c0), n_start, cams, gt, test)
    spent = add_time(spent, t0, c0)
    if fitter.step_index < config.iterations:
        save_state(args, fitter, spent, n_start, cams, gt, test)
        return
    held = [gs.render(cams[i]) for i in test]
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for i, out in zip(test, held):
            write_image(args.save / f"heldout_{i:02d}.png", torch.cat([out.rgb, gt[i].rgb], dim=2))
    result = {
        "scene": args.scene, "size": [128, 96], "views_train": len(train), "views_heldout": len(test),
        "init_views": init_views, "stride": args.stride, "iterations": config.iterations,
        "overrides": overrides, "max_gaussians": config.max_gaussians,
        "gaussians_start": n_start, "gaussians_end": len(gs),
        "psnr_heldout": round(sum(psnr(o.rgb, gt[i].rgb) for o, i in zip(held, test)) / len(test), 2),
        "psnr_heldout_each": [round(psnr(o.rgb, gt[i].rgb), 2) for o, i in zip(held, test)],
        "ssim_heldout": round(sum(ssim(o.rgb, gt[i].rgb) for o, i in zip(held, test)) / len(test), 4),
        "psnr_train": round(sum(psnr(gs.render(cams[i]).rgb, gt[i].rgb) for i in train) / len(train), 2),
        "fit_wall_s": round(spent["wall"], 1), "fit_cpu_s": round(spent["cpu"], 1), "calls": spent["calls"],
        "threads": args.threads, "load_average": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
