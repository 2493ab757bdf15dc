"""fourreal's SfM path on the procedural orbit: COLMAP's freeze-time cameras against the true ones
after a similarity, for several scene seeds. Prints JSON; ``--figure`` draws a frame and a top view.

    python benchmarks/fourreal_sfm.py [--width 256 --height 192 --freeze 10 --detail 0.4 --seeds 0 1 2]
        [--figure docs/images/fourreal_sfm.png]

The code path is fourreal's (``fourreal_inputs.sfm_cameras``: the freeze frames plus the canonical
reference frame, anchored at the canonical camera); the alignment is ``metrics.colmap.align_similarity``
(rotation from the orientations, then Umeyama's scale and translation with it fixed).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from wanderview.data.synthetic import cast_rays
from wanderview.data.synthetic_dynamic import PIVOT, dynamic_dataset, scene_at
from wanderview.errors import InputError
from wanderview.methods.fourreal_inputs import sfm_cameras
from wanderview.metrics.colmap import align_similarity

RADIUS = math.hypot(PIVOT[0], PIVOT[2])


def _angle_deg(R: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)))


def evaluate(args, seed: int) -> tuple[dict, dict]:
    """One scene seed: the errors (JSON) and the arrays the figure draws."""
    d = dynamic_dataset(args.width, args.height, 2, args.freeze, orbit_deg=args.orbit_deg, seed=seed,
                        detail=args.detail)  # fmt: skip
    start, cpu = time.perf_counter(), time.process_time()
    try:
        cams, points, _, summary = sfm_cameras(d.freeze, d.reference[0], d.freeze_cameras.K[0], seed=0)
    except InputError as err:  # the smooth default scene: COLMAP starts no model
        return {"seed": seed, "error": str(err)}, {}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    c2w = d.freeze_cameras.cam_to_world.double()
    true = (torch.linalg.inv(c2w[d.canonical_index]) @ c2w).numpy()
    est = cams.cam_to_world.double().numpy()
    scale, R, t = align_similarity(est, true)
    centres = scale * est[:, :3, 3] @ R.T + t
    rot = _angle_deg(true[:, :3, :3].transpose(0, 2, 1) @ R @ est[:, :3, :3])
    centre = np.linalg.norm(centres - true[:, :3, 3], axis=1) / RADIUS
    world0 = d.reference_cameras.cam_to_world[0].double()
    world = (points.double() * scale) @ world0[:3, :3].T + world0[:3, 3]
    origins = world0[:3, 3].expand_as(world).contiguous()
    hit, _, _ = cast_rays(scene_at(0.0, seed, args.detail), origins, (world - origins).contiguous())
    depth_error = (hit[torch.isfinite(hit)] - 1).abs()
    result = {"seed": seed, "registered": summary["registered"], "of": summary["of"],
              "points3d": summary["points3d"],
              "reprojection_error_px": round(summary["reprojection_error_px"], 3),
              "rotation_error_deg_max": round(float(rot.max()), 3),
              "rotation_error_deg_mean": round(float(rot.mean()), 3),
              "centre_error_pct_radius_max": round(100 * float(centre.max()), 3),
              "centre_error_pct_radius_mean": round(100 * float(centre.mean()), 3),
              "gauge_rotation_deg": round(float(_angle_deg(R)), 3),
              "gauge_translation_pct_radius": round(100 * float(np.linalg.norm(t)) / RADIUS, 3),
              "point_depth_error_pct_median": round(100 * float(depth_error.median()), 3),
              "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2)}  # fmt: skip
    scaled_points = (points.double() * scale).numpy()
    return result, {"detail": args.detail, "frame": d.freeze[0], "true": true, "est": centres,
                    "points": scaled_points}  # fmt: skip


def figure(path: Path, arrays: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(8.4, 3.2), dpi=100, gridspec_kw={"width_ratios": [1.25, 1]})
    a.imshow(arrays["frame"].permute(1, 2, 0).numpy())
    a.set_title(f"freeze frame 0 (detail {arrays['detail']:g})", fontsize=9)
    a.axis("off")
    pts = arrays["points"]
    keep = np.random.default_rng(0).permutation(len(pts))[:3000]
    b.scatter(pts[keep, 0], pts[keep, 2], s=0.3, c="0.6", label="SfM points (scaled)")
    true = arrays["true"][:, :3, 3]
    b.plot(true[:, 0], true[:, 2], "o", mfc="none", mec="k", ms=7, label="true centres")
    b.plot(arrays["est"][:, 0], arrays["est"][:, 2], "x", c="tab:red", ms=5, label="SfM, after similarity")
    b.set_xlabel("x (canonical camera frame)", fontsize=8)
    b.set_ylabel("z", fontsize=8)
    b.set_aspect("equal")
    b.set_xlim(-2.2, 2.2)
    b.set_ylim(-0.4, 5.0)
    b.tick_params(labelsize=7)
    b.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    b.set_title("top view: points and orbit", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--freeze", type=int, default=10)
    p.add_argument("--orbit-deg", type=float, default=30.0)
    p.add_argument("--detail", type=float, default=0.4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--figure", type=Path, default=None)
    args = p.parse_args()
    results, first = [], None
    for seed in args.seeds:
        result, arrays = evaluate(args, seed)
        results.append(result)
        first = first or arrays
    if args.figure is not None and first:
        figure(args.figure, first)
    print(json.dumps({"settings": vars(args) | {"figure": str(args.figure)}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
