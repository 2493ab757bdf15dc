"""photo3d: one photo -> a 3D photo video (lift, render along a path, fill holes, fuse, repeat).

The input RGBD is lifted to a scene (a mesh or a point cloud). For every camera of the path the
scene is rendered; what the camera sees for the first time (the holes) is inpainted, given depth,
and fused back into the scene, so a region is invented once and every later frame reuses it.

Depth of filled pixels (``fill_depth``):
- ``background``: the hole takes the depth of the farthest known pixel around it, grown inward
  (a disocclusion shows what lies *behind* the occluder). Used with the heuristic or file depth.
- ``model``: the depth backend predicts depth of the filled frame; it is aligned to the rendered
  depth on the visible pixels by a least-squares scale/shift fit in disparity. Used with neural
  depth models (``hf:``).
- ``auto`` (default): ``model`` for neural depth backends, ``background`` otherwise.

Self-supervised inpainting (Wang et al., ``--inpainter selfsup``) trains the inpainter on the
input image itself before the first frame (see backends/selfsup.py).

Out-animation (``outanimate``, paper §3.3): stage 1 places the object (``object_mask`` or the image's
alpha) on a canvas ``canvas_scale`` times larger and outpaints the rest with the inpainter and the
prompt (methods/outanimate.py; the canvas is saved as ``outanimate_canvas.png``); stage 2 is the
video above, started from that canvas. Its depth comes from the depth backend, because a user's
depth file does not cover the invented canvas (``depth`` is refused with ``outanimate``). A selfsup
inpainter is trained on the input image for stage 1 and trained further on the canvas for stage 2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from wanderview.backends.protocols import to_depth
from wanderview.cameras.camera import Camera
from wanderview.cameras.trajectories import make_trajectory
from wanderview.errors import ConfigError, WanderviewError
from wanderview.geometry.align import align_depth
from wanderview.geometry.fill import fill_depth_from_background, foreground_ring
from wanderview.io.cameras import write_transforms_json
from wanderview.io.depth import read_depth
from wanderview.io.images import read_image, write_image
from wanderview.io.rundir import Manifest, RunDir
from wanderview.io.video import write_video
from wanderview.methods import outanimate
from wanderview.methods.common import (
    ModelLoading,
    RunResult,
    config_to_json,
    describe_backend,
    input_camera,
    resize_depth,
    resize_image,
    scene_scale,
    working_size,
)
from wanderview.scenes.mesh import MeshScene
from wanderview.scenes.points import PointScene


@dataclass(frozen=True)
class Config(ModelLoading):
    """Everything a photo3d run needs. Defaults make a gentle 3D-photo video on CPU."""

    image: Path
    """The input photo."""
    depth: Path | None = None
    """Depth of the photo (.npy, 16-bit PNG, PFM); None = predict it with ``depth_model``."""
    depth_kind: str = "depth"
    """'depth' (z-depth) or 'disparity' (depth = scale / value)."""
    depth_scale: float = 1.0
    """Multiplier applied to stored depth values (e.g. 0.001 for millimetre PNGs)."""
    mask_invalid_depth: bool = False
    """Treat NaN/inf/zero/negative depth as holes instead of refusing the file."""
    depth_model: str = "heuristic"
    """Depth backend spec when no depth file is given (heuristic = weak prior, hf:<id> = a real model)."""
    inpainter: str = "telea"
    """Inpainting backend spec: none, telea, ns, patchmatch, selfsup, hf:<id>."""
    foreground_guard: int = 16
    """Pixels beside a hole that lie in front of it, within this many pixels, are hidden from the
    inpainter and pasted back (so fills continue the background; 0 = off)."""
    prompt: str = ""
    """Text for inpainters that take one."""
    negative_prompt: str | None = None
    scene: str = "mesh"
    """'mesh' (grid mesh, stretched faces removed) or 'points' (depth-aware splats)."""
    fill_depth: str = "auto"
    """How filled pixels get depth: auto, background or model (see module docstring)."""
    trajectory: str = "swing"
    frames: int = 48
    fov: float = 55.0
    """Horizontal field of view in degrees when neither a camera file nor ``focal`` is given."""
    focal: float | None = None
    """Focal length in pixels of the working image (overrides ``fov``)."""
    width: int | None = None
    height: int | None = None
    max_side: int = 768
    """Inputs larger than this (longer side, pixels) are downscaled unless width/height are given."""
    max_pixels: int = 4096 * 4096
    """Images with more pixels are refused before decoding (a guard against decompression bombs)."""
    supersample: int = 1
    """Mesh anti-aliasing factor (2 = render at 2x, blur, downsample)."""
    inpaint_steps: int = 50
    """Denoising steps of hf: inpainters."""
    save_pairs: Path | None = None
    """selfsup only: write the cycle-rendered training pairs here as PNGs."""
    seed: int = 0
    fps: int = 24
    outanimate: bool = False
    """Out-animation: outpaint a larger canvas around the object first (see module docstring)."""
    object_mask: Path | None = None
    """Mask of the object (white/True = object, same size as the image); None = the image's alpha."""
    canvas_scale: float = 1.5
    """Out-animation canvas side / object image side."""


def _check(config: Config) -> None:
    if config.foreground_guard < 0:
        raise ConfigError(f"--foreground-guard must not be negative, got {config.foreground_guard}")
    if config.scene not in ("mesh", "points"):
        raise ConfigError(f"--scene must be 'mesh' or 'points', got {config.scene!r}")
    if config.fill_depth not in ("auto", "background", "model"):
        raise ConfigError(f"--fill-depth must be auto, background or model, got {config.fill_depth!r}")
    if config.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {config.frames}")
    if config.depth_kind not in ("depth", "disparity"):
        raise ConfigError(f"--depth-kind must be 'depth' or 'disparity', got {config.depth_kind!r}")
    if config.object_mask is not None and not config.outanimate:
        raise ConfigError("--object-mask is used only with --outanimate")
    if config.outanimate:
        outanimate.check_canvas_scale(config.canvas_scale)
        if config.depth is not None:
            raise ConfigError("--depth cannot be used with --outanimate: the depth file does not cover the "
                              "outpainted canvas, whose depth comes from --depth-model")
        if config.inpainter == "none":
            raise ConfigError("--outanimate needs an inpainter to outpaint the canvas, not --inpainter none")


def _load_view(config: Config, depth_model):
    """Input rgb (3, H, W) at working size, its depth (1, H, W) and its validity (1, H, W)."""
    rgb = read_image(config.image, max_pixels=config.max_pixels)
    H, W = working_size(rgb.shape[1], rgb.shape[2], config.width, config.height, config.max_side)
    if config.depth is not None:
        depth, valid = read_depth(
            config.depth,
            kind=config.depth_kind,
            scale=config.depth_scale,
            size=tuple(rgb.shape[1:]),
            mask_invalid=config.mask_invalid_depth,
            max_pixels=config.max_pixels,
        )
        depth = torch.where(valid, depth, torch.full_like(depth, float("inf")))
        rgb, depth = resize_image(rgb, H, W), resize_depth(depth, H, W)
    else:
        rgb = resize_image(rgb, H, W)
        depth = to_depth(depth_model.predict(rgb), depth_model.output)
    valid = torch.isfinite(depth) & (depth > 0)
    if not bool(valid.any()):
        raise WanderviewError("the input depth has no valid pixel")
    return rgb, depth, valid


def _outanimate_view(config: Config, depth_model, inpainter, out_dir: Path, resume: bool):
    """Stage 1 of out-animation: (canvas rgb (3, H, W), its depth (1, H, W), valid (1, H, W)).

    A resumed run reads the canvas saved by the killed run instead of outpainting again.
    """
    rgb, object_mask = outanimate.load_object(config.image, config.object_mask, config.max_pixels)
    scaled = outanimate.canvas_size(rgb.shape[1], rgb.shape[2], config.canvas_scale)
    H, W = working_size(*scaled, config.width, config.height, config.max_side)
    saved = RunDir.staging_path(out_dir) / "outanimate_canvas.png"
    if resume and saved.is_file():
        canvas = read_image(saved)
    else:
        rgb, object_mask = outanimate.fit_object(rgb, object_mask, H, W, config.canvas_scale)
        if hasattr(inpainter, "prepare") and not getattr(inpainter, "trained", True):
            # selfsup learns the textures of the object image (the only image there is) for stage 1
            object_depth = to_depth(depth_model.predict(rgb), depth_model.output)
            camera = input_camera(config.trajectory, rgb.shape[2], rgb.shape[1], config.fov, config.focal)
            inpainter.prepare(rgb, object_depth, camera, prompt=config.prompt)
        canvas, _ = outanimate.outpaint_around_object(
            rgb, object_mask, inpainter, config.prompt, config.canvas_scale, config.seed,
            negative_prompt=config.negative_prompt,
        )
        # 8-bit like the saved file, so a resumed run continues from exactly the same canvas
        canvas = resize_image(canvas, H, W).mul(255).round().div(255)
    depth = to_depth(depth_model.predict(canvas), depth_model.output)
    valid = torch.isfinite(depth) & (depth > 0)
    if not bool(valid.any()):
        raise WanderviewError("the depth model gave no valid depth for the outpainted canvas")
    return canvas, depth, valid


def run(
    config: Config, out_dir: Path, *, overwrite: bool = False, resume: bool = False, quiet: bool = False
) -> RunResult:
    """Render a 3D photo video into the run folder ``out_dir`` (see docs/design.md: run folder)."""
    from wanderview.backends.registry import make_depth_model, make_inpainter

    _check(config)
    # cheap checks first, so that a mistake is reported before any model or out-animation work
    RunDir.check(out_dir, overwrite=overwrite, resume=resume)
    make_trajectory(config.trajectory, 2, Camera.from_fov(55.0, 64, 64))
    t_start = time.perf_counter()
    torch.manual_seed(config.seed)
    manifest = Manifest(seed=config.seed, device=config.device)
    loading = config.loading_options()
    depth_model = make_depth_model(config.depth_model, **loading)
    extra = {}
    if config.inpainter.startswith("hf:"):
        extra["steps"] = config.inpaint_steps
    if config.inpainter.startswith("selfsup"):
        extra.update(seed=config.seed, quiet=quiet, save_pairs=config.save_pairs)
    inpainter = make_inpainter(config.inpainter, **loading, **extra)
    if config.outanimate:
        with manifest.timer("outpaint"):
            rgb, depth, valid = _outanimate_view(config, depth_model, inpainter, out_dir, resume)
    else:
        rgb, depth, valid = _load_view(config, depth_model)
    H, W = rgb.shape[1:]
    camera = input_camera(config.trajectory, W, H, config.fov, config.focal)
    cameras = make_trajectory(config.trajectory, config.frames, camera, scene_scale=scene_scale(depth))
    num_frames = len(cameras)  # a camera file sets its own frame count
    fill_mode = config.fill_depth
    if fill_mode == "auto":
        fill_mode = "model" if getattr(depth_model, "module", None) is not None else "background"

    # Everything that can fail on user input has been checked; only now is anything written.
    rundir = RunDir.create(out_dir, overwrite=overwrite, resume=resume)
    manifest.backends = {
        "depth": describe_backend(depth_model, config.depth is not None),
        "inpainter": describe_backend(inpainter),
    }
    rundir.write_json("config.json", {"method": "photo3d", **config_to_json(config)})
    if config.outanimate:
        write_image(rundir.path("outanimate_canvas.png"), rgb)

    Scene = MeshScene if config.scene == "mesh" else PointScene
    options = {"supersample": config.supersample} if config.scene == "mesh" else {}
    depth = fill_depth_from_background(depth, ~valid)  # unknown input depth continues the background
    scene = Scene.from_rgbd(rgb, depth, camera, torch.isfinite(depth), **options)
    start = 0
    state = rundir.load_state("scene") if resume else None
    if state is not None:
        scene.load_state_dict(state)
        start = min(rundir.finished_frames(), int(state["frame"]) + 1)
    if hasattr(inpainter, "prepare"):
        with manifest.timer("inpainter_training"):
            inpainter.prepare(
                rgb, depth, camera, checkpoint_dir=rundir.path("inpainter"), prompt=config.prompt
            )

    progress = tqdm(range(start, num_frames), desc="photo3d", unit="frame", disable=quiet, initial=start,
                    total=num_frames)
    for i in progress:
        cam = cameras[i]
        if i == 0:
            frame, frame_depth, holes = rgb, depth, torch.zeros_like(valid)
        else:
            with manifest.timer("render"):
                view = scene.render(cam)
            holes = view.holes
            frame, frame_depth = view.rgb, view.depth
            if config.inpainter != "none" and bool(holes.any()):
                with manifest.timer("inpaint"):
                    frame = inpaint_from_background(inpainter, view.rgb, view.depth, holes, config.prompt,
                                                    config.negative_prompt, seed=config.seed + i,
                                                    guard_px=config.foreground_guard)
                with manifest.timer("fill_depth"):
                    frame_depth = _fill_depth(fill_mode, frame, view.depth, holes, depth_model)
                with manifest.timer("fuse"):
                    scene.add(frame, frame_depth, cam, holes)
        rundir.write_frame(i, frame, frame_depth, holes)
        rundir.save_state("scene", {**scene.state_dict(), "frame": torch.tensor(i)})

    with manifest.timer("write"):
        frames = (rundir.read_frame(i)[0] for i in range(num_frames))
        write_video(rundir.path("video.mp4"), frames, fps=config.fps)
        write_transforms_json(
            rundir.path("cameras.json"), cameras, [f"frames/{i:05d}.png" for i in range(num_frames)]
        )
        scene_name = "mesh.ply" if config.scene == "mesh" else "points.ply"
        scene.save(rundir.path(scene_name))
        if config.scene == "mesh":
            scene.save(rundir.path("mesh.glb"))
    manifest.frames = num_frames
    manifest.timings["total"] = time.perf_counter() - t_start
    manifest.write(rundir)
    final = rundir.finalize()
    return RunResult(final, num_frames, final / "video.mp4", final / scene_name, dict(manifest.timings))


def inpaint_from_background(
    inpainter,
    rgb: torch.Tensor,
    depth: torch.Tensor,
    holes: torch.Tensor,
    prompt: str = "",
    negative_prompt: str | None = None,
    seed: int = 0,
    guard_px: int = 16,
) -> torch.Tensor:
    """Inpaint the holes of a rendered view with the occluders next to them hidden from the inpainter.

    A disocclusion shows background, so the fill should continue the background: foreground
    pixels beside each hole are masked too (``foreground_ring``) and pasted back afterwards.
    benchmarks/inpaint_quality.py scores the inpainters through this same function.

    Args:
        inpainter: any Inpainter backend.
        rgb: (3, H, W) rendered colour; depth: (1, H, W) rendered z-depth (inf where empty);
        holes: (1, H, W) bool, True = disoccluded pixel to fill.
        guard_px: width of the hidden foreground ring (0 = none).
    Returns:
        (3, H, W): ``rgb`` with only the hole pixels replaced.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be (3, H, W), got {tuple(rgb.shape)}")
    if depth.shape != (1, *rgb.shape[1:]) or holes.shape != depth.shape:
        raise ValueError(
            f"depth and holes must be (1, H, W) like rgb, got {tuple(depth.shape)}, {tuple(holes.shape)}"
        )
    hidden = holes
    if guard_px > 0:
        hidden = holes | foreground_ring(depth, holes, fill_depth_from_background(depth, holes), guard_px)
    filled = inpainter.inpaint(rgb, hidden, prompt, negative_prompt, seed=seed)
    return torch.where(holes, filled, rgb)


def _fill_depth(mode: str, frame, rendered_depth, holes, depth_model) -> torch.Tensor:
    """(1, H, W) depth of the frame: rendered where visible, filled (see module docstring) in holes."""
    known = ~holes & torch.isfinite(rendered_depth)
    if mode == "model" and int(known.sum()) >= 16:
        pred = depth_model.predict(frame)
        if depth_model.output == "relative_disparity":
            aligned = to_depth(pred, depth_model.output, reference_depth=rendered_depth, mask=known)
        else:
            pred_depth = to_depth(pred, depth_model.output)
            aligned = align_depth(pred_depth, rendered_depth, known, space="disparity")
        return torch.where(holes, aligned, rendered_depth)
    return fill_depth_from_background(rendered_depth, holes)

