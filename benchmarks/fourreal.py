"""fourreal on the procedural sliding-box scene: held-out PSNR at the canonical time and at held-out
times (whole image and the moving box's pixels), and the wall time of each stage. Prints JSON.

    python benchmarks/fourreal.py --out /tmp/fourreal_bench [--canonical-iterations N ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from wanderview.data.synthetic_dynamic import dynamic_dataset, render_dynamic
from wanderview.io.cameras import write_transforms_json
from wanderview.io.images import write_image
from wanderview.methods import fourreal
from wanderview.metrics.image import psnr
from wanderview.scenes.deformable import DeformableGaussianScene


def write_inputs(root: Path, d) -> dict:
    for name, frames, cams, times in (("reference", d.reference, d.reference_cameras, d.reference_times),
                                      ("freeze", d.freeze, d.freeze_cameras, None)):  # fmt: skip
        (root / name).mkdir(parents=True)
        for i, f in enumerate(frames):
            write_image(root / name / f"{i:05d}.png", f)
        write_transforms_json(root / f"{name}.json", cams)
        if times is not None:
            doc = json.loads((root / f"{name}.json").read_text())
            for frame, t in zip(doc["frames"], times):
                frame["time"] = t
            (root / f"{name}.json").write_text(json.dumps(doc))
    return {
        "reference_video": root / "reference",
        "freeze_video": root / "freeze",
        "reference_cameras": root / "reference.json",
        "freeze_cameras": root / "freeze.json",
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--reference", type=int, default=8)
    p.add_argument("--freeze", type=int, default=12)
    for name in (
        "canonical_iterations",
        "warmup_iterations",
        "motion_iterations",
        "init_points",
        "max_gaussians",
    ):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--video-model", default="", help="hf:<model> for video SDS (tiny test models on CPU)")
    p.add_argument("--sds-every", type=int, default=1)
    p.add_argument("--evaluate", action="store_true", help="only measure the finished run in --out")
    args = p.parse_args()
    d = dynamic_dataset(args.width, args.height, args.reference, args.freeze)
    extra = {k: getattr(args, k) for k in ("canonical_iterations", "warmup_iterations", "motion_iterations",
                                           "init_points", "max_gaussians")
             if getattr(args, k) is not None}  # fmt: skip
    seconds = None
    if not args.evaluate:
        with tempfile.TemporaryDirectory() as tmp:
            config = fourreal.Config(**write_inputs(Path(tmp), d), frames=args.frames, device="cpu",
                                     video_model=args.video_model, sds_every=args.sds_every, **extra)
            start = time.perf_counter()
            fourreal.run(config, args.out, overwrite=True, quiet=True)
            seconds = round(time.perf_counter() - start, 1)
    scene = DeformableGaussianScene.load(args.out / "gaussians.ply")
    to_world = torch.linalg.inv(d.reference_cameras.cam_to_world[0])  # the run's world: canonical = identity

    def cam(c):
        return c.with_pose(to_world @ c.cam_to_world)

    static = [
        psnr(scene.render(cam(c)).rgb, img) for c, img in zip(d.heldout_static_cameras, d.heldout_static)
    ]
    dyn, box, box_static = [], [], []
    for c, img, t, mask in zip(d.heldout_dynamic_cameras, d.heldout_dynamic, d.heldout_dynamic_times,
                               d.heldout_dynamic_masks):  # fmt: skip
        out = scene.render(cam(c), time=t).rgb
        dyn.append(psnr(out, img))
        box.append(psnr(out, img, mask))
        box_static.append(psnr(scene.render(cam(c), time=0.0).rgb, img, mask))  # no motion: the baseline
    ref_box = []  # the training reference frames (fixed camera), the box's pixels only
    for c, img, t in zip(d.reference_cameras, d.reference, d.reference_times):
        if t == d.reference_times[0]:
            continue  # the canonical frame: no deformation by construction
        mask = render_dynamic(c, t)[1]
        ref_box.append(psnr(scene.render(cam(c), time=t).rgb, img, mask))
    manifest = json.loads((args.out / "manifest.json").read_text())
    print(
        json.dumps(
            {
                "size": f"{args.width}x{args.height}",
                "reference_frames": args.reference,
                "freeze_frames": args.freeze,
                "schedule": manifest["backends"]["schedule"],
                "gaussians": manifest["backends"]["gaussians"],
                "psnr_heldout_canonical": [round(v, 2) for v in static],
                "psnr_heldout_canonical_mean": round(sum(static) / len(static), 2),
                "psnr_heldout_time_and_camera": [round(v, 2) for v in dyn],
                "psnr_heldout_time_and_camera_mean": round(sum(dyn) / len(dyn), 2),
                "psnr_moving_box_pixels": [round(v, 2) for v in box],
                "psnr_moving_box_pixels_without_motion": [round(v, 2) for v in box_static],
                "psnr_reference_box_pixels_by_time": [round(v, 1) for v in ref_box],
                "training": manifest["backends"]["metrics"],
                "sds": {k: v for k, v in manifest["backends"].get("sds", {}).items() if k != "settings"},
                "seconds_total": seconds,
                "timings": {k: round(v, 1) for k, v in manifest["timings_s"].items()},
            },
            indent=1,
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
