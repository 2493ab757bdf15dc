"""photo3d: one photo -> a 3D photo video (lift, render along a path, fill holes, fuse, repeat).

The input RGBD is lifted to a scene (a mesh or a point cloud). For every camera of the path the
scene is rendered; what the camera sees for the first time (the holes) is inpainted, given depth,
and fused back into the scene, so a region is invented once and every later frame reuses it.

Depth of filled pixels (``fill_depth``; the rule and its fallbacks: methods/new_depth.py):
- ``background``: the hole takes the depth of the farthest known pixel around it, grown inward
  (a disocclusion shows what lies *behind* the occluder). Used with the heuristic or file depth.
- ``model``: the depth backend predicts depth of the filled frame; it is aligned to the rendered
  depth on the visible pixels by a least-squares scale/shift fit in disparity. Used with neural
  depth models (``hf:``).
- ``auto`` (default): ``model`` for neural depth backends, ``background`` otherwise.

Size and intrinsics: the frames keep the input's size (no resampling) unless the input's longer
side exceeds ``max_side`` (then one scale for both axes) or ``width``/``height`` are given; a
``width``/``height`` of another aspect ratio centre-crops the input to that aspect first, then
resizes (never stretches), and the intrinsics are cropped and scaled the same way. Both sides must
be at least 8 px at working size: an extreme aspect ratio is downscaled until its longer side fits
``max_side`` and refused if its shorter side then falls below 8 px.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from wanderview.backends.protocols import FinetunableDepth, Trainable, to_depth
from wanderview.cameras.camera import Camera
from wanderview.cameras.trajectories import is_camera_file, make_trajectory
from wanderview.errors import ConfigError, InputError, WanderviewError
from wanderview.geometry.fill import fill_depth_from_background, foreground_ring
from wanderview.io.depth import read_depth
from wanderview.io.images import read_image, write_image
from wanderview.io.rundir import RunDir
from wanderview.methods import outanimate
from wanderview.methods.common import (
    ModelLoading,
    RunResult,
    crop_box,
    crop_to_aspect,
    describe_backend,
    input_camera,
    resize_cover,
    resize_depth,
    resize_image,
    scene_scale,
    working_size,
)
from wanderview.methods.new_depth import new_content_depth
from wanderview.methods.runtime import MethodRun, input_paths
from wanderview.scenes.mesh import MeshScene
from wanderview.scenes.points import PointScene

# Depth a float32 scene can hold with sub-pixel precision; outside it a depth file is refused.
MIN_DEPTH, MAX_DEPTH = 1e-6, 1e12


@dataclass(frozen=True)
class Config(ModelLoading):
    """Everything a photo3d run needs. Defaults make a gentle 3D-photo video on CPU."""

    image: Path
    """The input photo (PNG, JPEG, ...)."""
    depth: Path | None = None
    """Depth of the photo (.npy, 16-bit PNG, PFM) at the photo's size; None = predict it with
    ``depth_model``."""
    depth_kind: Literal["depth", "disparity"] = "depth"
    """The depth file holds z-depth, or disparity (depth = scale / value)."""
    depth_scale: float = 1.0
    """Multiplier applied to stored depth values (e.g. 0.001 for millimetre PNGs)."""
    mask_invalid_depth: bool = False
    """Treat NaN/inf/zero/negative depth as unknown instead of refusing the file."""
    depth_model: str = "heuristic"
    """Depth backend when no depth file is given: heuristic (a WEAK built-in prior) or hf:<id or
    folder> (a real model)."""
    inpainter: str = "telea"
    """Inpainting backend: none, telea, ns, patchmatch, selfsup[:options], hf:<id or folder>."""
    foreground_guard: int = 16
    """Pixels beside a hole that lie in front of it, within this many pixels, are hidden from the
    inpainter and pasted back (so fills continue the background; 0 = off)."""
    prompt: str = ""
    """Text for inpainters that take one (hf:, selfsup with a text encoder)."""
    negative_prompt: str | None = None
    """What the hf: inpainter should avoid (classifier-free guidance); ignored by the others."""
    scene: Literal["mesh", "points"] = "mesh"
    """Scene representation: a grid mesh (stretched faces removed) or depth-aware point splats."""
    fill_depth: Literal["auto", "background", "model"] = "auto"
    """How filled pixels get depth: from the background side of the hole, or the depth model
    aligned to the scene (auto: model for neural depth models)."""
    trajectory: str = "swing"
    """Camera path: NAME, NAME:key=value,..., or a camera file (`wanderview trajectory --help`)."""
    frames: int = 48
    """Number of frames (a camera file decides it itself)."""
    fov: float = 55.0
    """Horizontal field of view in degrees when neither a camera file nor ``focal`` is given."""
    focal: float | None = None
    """Focal length in pixels of the input image (overrides ``fov``)."""
    cx: float | None = None
    """Principal point x in pixels of the input image (None = the image centre)."""
    cy: float | None = None
    """Principal point y in pixels of the input image (None = the image centre)."""
    width: int | None = None
    """Frame width (none = from the input); another aspect ratio centre-crops, never stretches."""
    height: int | None = None
    """Frame height (none = from the input); another aspect ratio centre-crops, never stretches."""
    max_side: int = 768
    """Inputs whose longer side exceeds this many pixels are downscaled (one scale for both axes)
    unless width/height are given; at least 8."""
    max_pixels: int = 4096 * 4096
    """Images with more pixels are refused before decoding (a guard against decompression bombs)."""
    supersample: Literal[1, 2] = 1
    """Mesh anti-aliasing factor (2 = render at 2x, blur, downsample)."""
    inpaint_steps: int = 50
    """Denoising steps of hf: inpainters."""
    save_pairs: Path | None = None
    """selfsup only: also write the cycle-rendered training pairs to this folder as PNGs."""
    seed: int = 0
    """Seed of every random choice (0 to 2**63 - 1)."""
    fps: int = 24
    """Video frame rate."""
    checkpoint_every: int = 5
    """Save resume state every this many frames (and after the last); a resumed run recomputes at
    most this many frames."""
    outanimate: bool = False
    """Out-animation: outpaint a larger canvas around the object first, then animate it."""
    object_mask: Path | None = None
    """With outanimate: mask of the object (white = object, same size as the image); None = the
    image's alpha channel."""
    canvas_scale: float = 1.5
    """With outanimate: canvas side / object image side, 1 to 4."""


def _check(config: Config) -> None:
    if config.foreground_guard < 0:
        raise ConfigError(f"--foreground-guard must not be negative, got {config.foreground_guard}")
    if config.scene not in ("mesh", "points"):
        raise ConfigError(f"--scene must be 'mesh' or 'points', got {config.scene!r}")
    if config.fill_depth not in ("auto", "background", "model"):
        raise ConfigError(f"--fill-depth must be auto, background or model, got {config.fill_depth!r}")
    for name in ("frames", "fps", "inpaint_steps", "max_pixels"):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.depth_kind not in ("depth", "disparity"):
        raise ConfigError(f"--depth-kind must be 'depth' or 'disparity', got {config.depth_kind!r}")
    if config.object_mask is not None and not config.outanimate:
        raise ConfigError("--object-mask is used only with --outanimate")
    if config.outanimate:
        outanimate.check_canvas_scale(config.canvas_scale)
        if config.depth is not None:
            raise ConfigError(
                "--depth cannot be used with --outanimate: the depth file does not cover the "
                "outpainted canvas, whose depth comes from --depth-model"
            )
        if config.inpainter == "none":
            raise ConfigError("--outanimate needs an inpainter to outpaint the canvas, not --inpainter none")


def _load_view(config: Config, depth_model, device: torch.device):
    """Input rgb (3, H, W) at working size, its depth (1, H, W), validity (1, H, W) and Camera."""
    rgb = read_image(config.image, max_pixels=config.max_pixels)
    in_h, in_w = rgb.shape[1:]
    H, W = working_size(in_h, in_w, config.width, config.height, config.max_side)
    camera = _camera(config, in_w, in_h, W, H)
    if config.depth is not None:
        depth, valid = read_depth(
            config.depth,
            kind=config.depth_kind,
            scale=config.depth_scale,
            size=(in_h, in_w),
            mask_invalid=config.mask_invalid_depth,
            max_pixels=config.max_pixels,
        )
        depth = torch.where(valid, depth, torch.full_like(depth, float("inf")))
        rgb, depth = resize_cover(rgb, H, W), resize_depth(crop_to_aspect(depth, H, W), H, W)
    else:
        rgb = resize_cover(rgb, H, W)
        depth = to_depth(depth_model.predict(rgb.to(device)), depth_model.output)
    return rgb.to(device), _checked_depth(depth.to(device), "the input depth"), camera.to(device)


def _checked_depth(depth: torch.Tensor, what: str) -> torch.Tensor:
    """``depth`` (1, H, W), refused when it has no usable pixel or its range would overflow float32
    geometry (a constant 1e30 or 1e-30 depth)."""
    valid = torch.isfinite(depth) & (depth > 0)
    if not bool(valid.any()):
        raise WanderviewError(f"{what} has no valid pixel")
    lo, hi = float(depth[valid].min()), float(depth[valid].max())
    if lo < MIN_DEPTH or hi > MAX_DEPTH:
        raise InputError(
            f"{what} spans {lo:.3g} to {hi:.3g}; depth must lie between {MIN_DEPTH:g} and "
            f"{MAX_DEPTH:g} (use --depth-scale to change its unit)"
        )
    return depth


def _camera(config: Config, in_w: int, in_h: int, W: int, H: int) -> Camera:
    """The input camera at working size: intrinsics of the input image (camera file, focal/cx/cy or
    fov), cropped like the image to the working aspect ratio, then scaled to W x H."""
    camera = input_camera(config.trajectory, in_w, in_h, config.fov, config.focal, config.cx, config.cy)
    top, left, ch, cw = crop_box(in_h, in_w, H, W)
    if (ch, cw) != (in_h, in_w) and is_camera_file(config.trajectory):
        raise ConfigError(
            f"--width/--height {W}x{H} change the aspect ratio of the {in_w}x{in_h} image, "
            "whose intrinsics the camera file describes; keep its aspect ratio"
        )
    return camera.cropped(left, top, cw, ch).scaled(W, H)


def _outanimate_view(config: Config, depth_model, inpainter, out_dir: Path, resume: bool, device):
    """Stage 1 of out-animation: canvas rgb (3, H, W), its depth (1, H, W) and its Camera.

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
        if isinstance(inpainter, Trainable) and not inpainter.is_trained():
            # selfsup learns the textures of the object image (the only image there is) for stage 1
            object_depth = to_depth(depth_model.predict(rgb), depth_model.output)
            camera = _camera(config, rgb.shape[2], rgb.shape[1], rgb.shape[2], rgb.shape[1])
            inpainter.prepare(rgb, object_depth, camera, prompt=config.prompt)
        canvas, _ = outanimate.outpaint_around_object(
            rgb,
            object_mask,
            inpainter,
            config.prompt,
            config.canvas_scale,
            config.seed,
            negative_prompt=config.negative_prompt,
        )
        # 8-bit like the saved file, so a resumed run continues from exactly the same canvas
        canvas = resize_image(canvas, H, W).mul(255).round().div(255)
    depth = to_depth(depth_model.predict(canvas), depth_model.output)
    depth = _checked_depth(depth, "the depth model's depth of the outpainted canvas")
    return canvas.to(device), depth.to(device), _camera(config, W, H, W, H).to(device)


def _backends(config: Config, rt: MethodRun, quiet: bool):
    """(depth model or None, inpainter): a depth model is built only when something uses it."""
    from wanderview.backends.registry import make_depth_model, make_inpainter

    loading = config.loading_options(rt.device)
    depth_model = None
    if config.depth is None or config.outanimate or config.fill_depth == "model":
        depth_model = make_depth_model(config.depth_model, **loading)
    extra = {}
    if config.inpainter.startswith("hf:"):
        extra["steps"] = config.inpaint_steps
    if config.inpainter.startswith("selfsup"):
        extra.update(seed=config.seed, quiet=quiet, save_pairs=config.save_pairs)
    return depth_model, make_inpainter(config.inpainter, **loading, **extra)


def run(
    config: Config, out_dir: Path, *, overwrite: bool = False, resume: bool = False, quiet: bool = False
) -> RunResult:
    """Render a 3D photo video into the run folder ``out_dir`` (see docs/design.md: run folder)."""
    _check(config)
    rt = MethodRun("photo3d", config, out_dir, overwrite=overwrite, resume=resume, quiet=quiet,
                   inputs=input_paths(config.image, config.depth, config.object_mask, config.trajectory,
                                      config.depth_model, config.inpainter), seed=config.seed,
                   device=config.device, checkpoint_every=config.checkpoint_every)  # fmt: skip
    make_trajectory(config.trajectory, 2, Camera.from_fov(55.0, 64, 64))  # a bad path fails before work
    depth_model, inpainter = _backends(config, rt, quiet)
    if config.outanimate:
        with rt.timer("outpaint"):
            rgb, depth, camera = _outanimate_view(config, depth_model, inpainter, out_dir, resume, rt.device)
    else:
        rgb, depth, camera = _load_view(config, depth_model, rt.device)
    cameras = make_trajectory(config.trajectory, config.frames, camera, scene_scale=scene_scale(depth))
    num_frames = len(cameras)  # a camera file sets its own frame count
    fill_model = depth_model if _fill_mode(config, depth_model) == "model" else None

    # Everything that can fail on user input has been checked; only now is anything written.
    depth_entry = describe_backend(depth_model, config.depth_model, from_file=config.depth is not None)
    rt.begin({"depth": depth_entry, "inpainter": describe_backend(inpainter, config.inpainter)})
    if config.outanimate:
        write_image(rt.path("outanimate_canvas.png"), rgb.cpu())
    depth = fill_depth_from_background(depth, ~torch.isfinite(depth))  # unknown input depth: background
    scene = _scene(config, rgb, depth, camera)
    state = rt.resume_state()
    if state is not None:
        scene.load_state_dict({k: v.to(rt.device) for k, v in state["scene"].items()})
    if isinstance(inpainter, Trainable):
        with rt.timer("inpainter_training"):
            inpainter.prepare(rgb, depth, camera, checkpoint_dir=rt.path("inpainter"), prompt=config.prompt)

    for i in rt.frames(num_frames, start=rt.resume_frame(state)):
        if i == 0:
            frame, frame_depth, holes = rgb, depth, torch.zeros_like(depth, dtype=torch.bool)
        else:
            frame, frame_depth, holes = _step(i, config, rt, scene, cameras[i], inpainter, fill_model)
        rt.write_frame(i, frame, frame_depth, holes)
        rt.checkpoint(i, lambda: {"scene": scene.state_dict()}, last=i == num_frames - 1)

    rt.write_video(num_frames, fps=config.fps)
    rt.write_cameras(cameras)
    scene_name = "mesh.ply" if config.scene == "mesh" else "points.ply"
    with rt.timer("write"):
        scene.save(rt.path(scene_name))
        if config.scene == "mesh":
            scene.save(rt.path("mesh.glb"))
    return rt.finish(num_frames, scene=scene_name)


def _fill_mode(config: Config, depth_model) -> str:
    if config.fill_depth != "auto":
        return config.fill_depth
    return "model" if isinstance(depth_model, FinetunableDepth) else "background"  # neural models only


def _scene(config: Config, rgb, depth, camera):
    if config.scene == "mesh":
        return MeshScene.from_rgbd(rgb, depth, camera, torch.isfinite(depth), supersample=config.supersample)
    return PointScene.from_rgbd(rgb, depth, camera, torch.isfinite(depth))


def _step(i: int, config: Config, rt: MethodRun, scene, cam: Camera, inpainter, fill_model):
    """Frame i > 0: render, inpaint the holes, give them depth, fuse them into the scene."""
    with rt.timer("render"):
        view = scene.render(cam)
    holes, frame, frame_depth = view.holes, view.rgb, view.depth
    if config.inpainter != "none" and bool(holes.any()):
        with rt.timer("inpaint"):
            frame = inpaint_from_background(inpainter, view.rgb, view.depth, holes, config.prompt,
                                            config.negative_prompt, seed=config.seed + i,
                                            guard_px=config.foreground_guard)  # fmt: skip
        with rt.timer("fill_depth"):
            frame_depth = new_content_depth(frame, view.depth, holes, fill_model)
        with rt.timer("fuse"):
            scene.add(frame, frame_depth, cam, holes)
    return frame, frame_depth, holes


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
