"""Seconds per video-SDS step of fourreal on the CPU, with the tiny random video models of the tests.

One step = the renders along the path (or the time ramp) with autograd, shift/crop, the VAE encode
with gradient, the model's x0 prediction and the backward pass to the Gaussians (canonical stage) or
to w(x, t) (motion stage). The tiny models say what the SDS machinery itself costs here; a real video
model (Wan 2.1 1.3B-14B, SVD) needs a GPU, and its cost and memory are not measurable on this machine.
Prints JSON.

    python benchmarks/fourreal_sds.py [--width 128 --height 96 --gaussians 5000 --repeats 3]
    python benchmarks/fourreal_sds.py --figure docs/images/fourreal_sds.png --run RUN
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny models live there

from dummies import svd_dir, wan_i2v_dir  # noqa: E402
from wanderview.backends.video_adapters import make_video_adapter  # noqa: E402
from wanderview.data.synthetic_dynamic import dynamic_dataset  # noqa: E402
from wanderview.methods import fourreal_inputs as inputs  # noqa: E402
from wanderview.optim import sds as vsds  # noqa: E402
from wanderview.optim.fourreal_fit import new_temporal_field  # noqa: E402
from wanderview.scenes.deformable import DeformableGaussianScene  # noqa: E402
from wanderview.scenes.gaussians import GaussianScene  # noqa: E402


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(adapter, d, scene, frames: int, repeats: int) -> dict:
    """Best-of-``repeats`` wall and CPU seconds of each kind of SDS step with ``adapter``."""
    means = scene.means.detach()
    settings = vsds.SDSSettings(frames=frames, seed=0)
    canonical = vsds.CanonicalSDS(adapter, settings, d.freeze_cameras, d.freeze, d.canonical_index, 0, 10**6)
    hooks = {}
    for kind, weights in (("temporal", {"weight": 0.0}), ("multiview", {"temporal_weight": 0.0})):
        only = vsds.SDSSettings(frames=frames, seed=0, **weights)  # one kind per hook
        hooks[kind] = vsds.MotionSDS(adapter, only, d.reference_cameras, d.reference, d.reference_times, 0,
                                     d.freeze_cameras, d.canonical_index, 0, 10**6)  # fmt: skip

    def canonical_step():
        for q in scene.params().values():
            q.requires_grad_(True)
            q.grad = None
        canonical.loss(scene, 0).backward()

    def motion_step(kind):
        for q in scene.params().values():
            q.requires_grad_(False)
        scene.temporal.zero_grad(set_to_none=True)
        hooks[kind].loss(scene, means, 0).backward()

    def render_only():
        g = torch.Generator().manual_seed(0)
        path = vsds.perturbed_path(d.freeze_cameras[d.canonical_index], d.freeze_cameras[0],
                                   canonical.num_frames, 0.25, g)  # fmt: skip
        with torch.no_grad():
            vsds.render_video(scene, path[1:], means.new_zeros(len(means), 3), means.new_zeros(len(means), 4))

    canonical_step()  # warm-up: model loading, JIT, allocator
    entry = {"frames": canonical.num_frames, "model_size": list(canonical.size), "steps": adapter.steps,
             "guidance_scale": adapter.guidance_scale}  # fmt: skip
    steps = {"canonical_multiview_step": canonical_step,
             "motion_temporal_step": lambda: motion_step("temporal"),
             "motion_multiview_step": lambda: motion_step("multiview"),
             "render_forward_only": render_only}  # fmt: skip
    for label, fn in steps.items():
        runs = [timed(fn) for _ in range(repeats)]
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        entry[label] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
    return entry


def figure(run: Path, out: Path, d, frames: int) -> None:
    """What the model sees in each kind of SDS step, from a finished run's scene (the procedural data
    set's cameras): rows = canonical multi-view, motion temporal, motion multi-view; every 4th frame,
    frame 0 the real condition."""
    from PIL import Image, ImageDraw

    scene = DeformableGaussianScene.load(run / "gaussians.ply")
    means = scene.means.detach()
    adapter = make_video_adapter(f"hf:{wan_i2v_dir()}", device="cpu", steps=10, guidance_scale=1.0)
    to_world = torch.linalg.inv(d.reference_cameras.cam_to_world[0])  # the run's world: canonical = identity

    def cams(c):
        return c.with_pose(to_world @ c.cam_to_world)

    ref_cams, frz_cams = cams(d.reference_cameras), cams(d.freeze_cameras)
    rows = []
    with torch.no_grad():
        canonical = vsds.CanonicalSDS(adapter, vsds.SDSSettings(frames=frames, seed=2), frz_cams, d.freeze,
                                      d.canonical_index, 0, 1)  # fmt: skip
        canonical.loss(scene, 0)
        rows.append(canonical.last_info["video"])
        for weights in ({"weight": 0.0}, {"temporal_weight": 0.0}):
            only = vsds.SDSSettings(frames=frames, seed=2, **weights)
            hook = vsds.MotionSDS(adapter, only, ref_cams, d.reference, d.reference_times, 0, frz_cams,
                                  d.canonical_index, 0, 1)  # fmt: skip
            hook.loss(scene, means, 0)
            rows.append(hook.last_info["video"])
    tiles = [torch.cat(list(video[::4]), dim=2) for video in rows]
    width = max(t.shape[2] for t in tiles)
    tiles = [torch.nn.functional.pad(t, (0, width - t.shape[2])) for t in tiles]
    sheet = (torch.cat(tiles, dim=1).clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype("uint8")
    image = Image.fromarray(sheet)
    draw, h = ImageDraw.Draw(image), rows[0].shape[2]
    for r, label in enumerate(("canonical multi-view", "motion temporal", "motion multi-view")):
        draw.text((3, r * h + 2), label, fill=(255, 255, 0))
        draw.text((3, r * h + 14), "frame 0: real", fill=(255, 255, 0))
        for j in range(1, tiles[r].shape[2] // rows[r].shape[3]):
            draw.text((j * rows[r].shape[3] + 3, r * h + 2), f"frame {4 * j}", fill=(255, 255, 0))
    image.quantize(256).save(out, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--gaussians", type=int, default=5000)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--figure", type=Path, help="write a PNG of the SDS inputs from --run's scene, then stop")
    p.add_argument("--run", type=Path, help="a finished benchmarks/fourreal.py run (the procedural scene)")
    args = p.parse_args()
    d = dynamic_dataset(width=args.width, height=args.height, num_reference=8, num_freeze=12)
    if args.figure:
        return figure(args.run, args.figure, d, args.frames)
    points, colors = inputs.frustum_points(d.freeze_cameras, d.freeze, args.gaussians, 2.0, 6.0, seed=0)
    scene = DeformableGaussianScene.wrap(GaussianScene.from_points(points, colors, max_sh_degree=3))
    scene.temporal = new_temporal_field(scene, 0.0, 4, 64, 2, 4, 2)  # the CPU schedule's field
    results = {}
    for name, folder in (("wan", wan_i2v_dir), ("svd", svd_dir)):
        adapter = make_video_adapter(f"hf:{folder()}", device="cpu")  # the adapter's default steps / CFG
        results[name] = measure(adapter, d, scene, args.frames, args.repeats)
    print(json.dumps({"width": args.width, "height": args.height, "gaussians": len(scene),
                      "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
                      "machine": platform.processor() or platform.machine(), "adapters": results},
                     indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
