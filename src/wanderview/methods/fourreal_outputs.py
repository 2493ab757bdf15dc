"""Outputs of ``fourreal``: the training PSNRs of the manifest and the run folder's files.

``write_outputs`` writes ``gaussians.ply`` (canonical), ``deformation.safetensors`` (both fields
and their settings), ``fixed_view.mp4`` (the reference camera over time), ``freeze_time.mp4`` (the
freeze-time path at the canonical time), ``video.mp4`` + ``frames/`` (``config.trajectory`` over
``config.time``), ``cameras.json`` (both videos, each frame with its time) and
``video_cameras.json`` (the video's cameras and times).
"""

from __future__ import annotations

import json
import math

import torch

from wanderview.cameras.camera import Camera
from wanderview.errors import ConfigError
from wanderview.methods.runtime import MethodRun


def parse_times(text: str, count: int) -> list[float]:
    """``"T"`` -> [T] * count; ``"A..B"`` -> count values from A to B (the render command's syntax)."""
    try:
        a, b = (float(x) for x in text.split("..", 1)) if ".." in text else (float(text),) * 2
    except ValueError:
        raise ConfigError(f"--time must be a number T or a range A..B, got {text!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ConfigError(f"--time must be finite, got {text!r}")
    return _ramp(a, b, count)



@torch.no_grad()
def training_psnr(scene, data: dict) -> dict:
    """Mean PSNR of the freeze-time frames (canonical Gaussians, no per-frame field) and of the
    reference frames (at their times) against the training images: the manifest's metrics."""
    from wanderview.metrics.image import psnr

    frz = [
        psnr(scene.render(data["freeze_cameras"][i]).rgb, data["freeze"][i])
        for i in range(len(data["freeze"]))
    ]
    ref = [psnr(scene.render(data["reference_cameras"][i], time=t).rgb, data["reference"][i])
           for i, t in enumerate(data["times"])]  # fmt: skip
    return {
        "psnr_freeze_canonical": round(sum(frz) / len(frz), 3),
        "psnr_reference": round(sum(ref) / len(ref), 3),
    }


def _ramp(a: float, b: float, n: int) -> list[float]:
    return [a + (b - a) * i / max(n - 1, 1) for i in range(n)]


@torch.no_grad()
def write_outputs(rt: MethodRun, scene, data: dict, config, s: dict) -> None:
    """Write the run folder's scene, videos and camera files (module docstring) for a fitted
    ``scene``, the inputs ``data`` of ``load_inputs``, the fourreal ``config`` and schedule ``s``."""
    from wanderview.cameras.trajectories import interpolate_poses, make_trajectory
    from wanderview.io.cameras import write_transforms_json
    from wanderview.scenes.deformable import DEFORMATION_FILE

    with rt.timer("write"):
        scene.save(rt.path("gaussians.ply"))
        scene.save_deformation(rt.path(DEFORMATION_FILE), {
            "temporal": scene.temporal.settings(), "frames": scene.frames.settings(), "schedule": s,
        })  # fmt: skip
    ref_cams, frz_cams, times = data["reference_cameras"], data["freeze_cameras"], data["times"]
    t0, n = times[config.canonical_frame], config.frames
    fixed = [scene.render(ref_cams[config.canonical_frame], time=t).rgb
             for t in _ramp(min(times), max(times), n)]  # fmt: skip
    rt.write_video(name="fixed_view.mp4", frames=fixed, fps=config.fps)
    orbit_poses = interpolate_poses(frz_cams.cam_to_world, n)
    orbit = Camera(frz_cams.K[:1].expand(n, 3, 3), orbit_poses, frz_cams.width,
                   frz_cams.height)  # fmt: skip
    rt.write_video(
        name="freeze_time.mp4", frames=[scene.render(c, time=t0).rgb for c in orbit], fps=config.fps
    )
    base = ref_cams[config.canonical_frame]
    first = scene.render(base, time=t0)
    finite = first.depth[torch.isfinite(first.depth)]
    path = make_trajectory(
        config.trajectory, n, base, scene_scale=float(finite.median()) if finite.numel() else 1.0
    )
    path_times = parse_times(config.time, len(path))
    for i in rt.frames(len(path)):
        out = scene.render(path[i], time=path_times[i])
        rt.write_frame(i, out.rgb, out.depth)
    rt.write_video(len(path), fps=config.fps)
    with rt.timer("write"):
        # cameras.json: the reference frames, then the freeze-time frames, each with its time
        poses = torch.cat([ref_cams.cam_to_world, frz_cams.cam_to_world])
        cams = Camera(torch.cat([ref_cams.K, frz_cams.K]), poses,
                      ref_cams.width, ref_cams.height)  # fmt: skip
        names = [f"reference/{i:05d}" for i in range(len(ref_cams))] + [
            f"freeze/{i:05d}" for i in range(len(frz_cams))
        ]
        write_transforms_json(rt.path("cameras.json"), cams, names)
        doc = json.loads(rt.path("cameras.json").read_text(encoding="utf-8"))
        for frame, t in zip(doc["frames"], [*times, *[t0] * len(frz_cams)]):
            frame["time"] = float(t)
        doc["wanderview"] = {"canonical_frame": config.canonical_frame, "freeze_match": data["match"]}
        rt.path("cameras.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
        frame_names = [f"frames/{i:05d}.png" for i in range(len(path))]
        write_transforms_json(rt.path("video_cameras.json"), path, frame_names,
                              extra={"wanderview": {"times": path_times}}, times=path_times)  # fmt: skip
