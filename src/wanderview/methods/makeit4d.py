"""makeit4d: one image -> a long, consistent, animated flythrough (Make-It-4D, Shen et al. 2023, §3).

``run()`` follows the paper's §3 step by step:

1. Outpaint (§3.2, Eq. 1): the input is placed on a canvas ``canvas_scale`` times larger per side and the
   rest is filled by the inpainter, so the camera can leave the input's field of view. The canvas camera
   has the input's focal length with the principal point shifted by the input's offset on the canvas;
   frames are rendered with the input camera (size and field of view of the input).
2. Depth of the canvas; with a depth file the file is kept on the input region and the canvas outside it
   gets the depth model aligned to the file there (or, with ``heuristic``, the background continuation).
3. Layered depth image (§3.3, Eq. 2): Ward clustering of the disparity -> L layers and edges d_i;
   layers that meet without a depth discontinuity are merged (a ground plane stays one layer).
4. Layer inpainting (Eq. 3): each layer gets what its nearer layers hide filled in (the hole band inside
   the layer's bounding box + margin; the farthest layer completely), context eroded at the boundary.
5. Layer depth (Eq. 4-5): depth predicted on the cumulative overlay of layers i..L, remapped into
   [d_i, d_{i+1}]; with a depth file or the weak heuristic, visible pixels keep the canvas depth.
6. Scene: all layers lifted into one point cloud (RGB; the paper's learned feature encoder/decoder has no
   public weights and is not used).
7. Motion (§3.4): an Eulerian flow on the canvas animates the points with symmetric splatting
   (scenes/layered_points.py), a seamless loop of ``loop_frames`` frames.
8. Camera: autocruise (cameras/autocruise.py) or any other trajectory.
9. Render every frame with the bilinear point renderer.

Ablations (the rows of the paper's Table 2): ``outpaint=False``, ``layer_inpaint=False`` and
``per_frame=True`` (render-refine-repeat like InfiniteNature-Zero: every frame's holes are inpainted
and added to the cloud instead of inpainting layers up front).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from wanderview.backends.protocols import to_depth
from wanderview.cameras.autocruise import autocruise
from wanderview.cameras.camera import Camera
from wanderview.cameras.trajectories import make_trajectory
from wanderview.errors import ConfigError
from wanderview.geometry.edges import normalized_disparity
from wanderview.geometry.fill import fill_depth_from_background
from wanderview.geometry.ldi import (
    assign_layers,
    discontinuity_mask,
    layer_edges,
    merge_connected_layers,
    remap_layer_depth,
)
from wanderview.geometry.masks import dilate
from wanderview.methods import makeit4d_steps as steps
from wanderview.methods.common import ModelLoading, RunResult, describe_backend, scene_scale
from wanderview.methods.motion import MotionOptions, read_motion
from wanderview.methods.runtime import MethodRun
from wanderview.scenes.layered_points import EulerianAnimation, LayeredPointCloud


@dataclass(frozen=True)
class Config(MotionOptions, ModelLoading):
    """Everything a makeit4d run needs. Defaults are the paper's where it states them; the motion
    options (--motion, --motion-mask, ...) are methods/motion.MotionOptions's."""

    image: Path
    """The input image."""
    depth: Path | None = None
    """Depth of the input image (.npy, 16-bit PNG, PFM); None = predict it with ``depth_model``."""
    depth_kind: Literal["depth", "disparity"] = "depth"
    """'depth' (z-depth) or 'disparity' (depth = scale / value) for the depth file."""
    depth_scale: float = 1.0
    """Multiplier applied to stored depth values."""
    mask_invalid_depth: bool = False
    """Treat NaN/inf/zero/negative depth in the file as unknown (filled from the background) instead of
    refusing the file."""
    depth_model: str = "heuristic"
    """Depth backend spec (the paper: DPT; heuristic = a weak CPU prior, hf:<id> = a real model)."""
    inpainter: str = "patchmatch"
    """Inpainting backend for outpainting and layer inpainting (the paper: Stable Diffusion inpainting;
    patchmatch/selfsup on CPU; hf:<id> = a diffusers inpainting model)."""
    prompt: str = ""
    """Text for inpainters that read one (text-driven generation, paper Fig. 6)."""
    negative_prompt: str | None = None
    """Negative text for diffusion inpainters."""
    inpaint_steps: int = 50
    """Denoising steps of hf: inpainters."""
    outpaint: bool = True
    """Outpaint the input on a larger canvas first (ablation: False)."""
    canvas_scale: float = 1.5
    """Canvas side / input side (per side)."""
    placement: Literal["center", "bottom"] = "center"
    """Where the input sits on the canvas: 'center' or 'bottom' (bottom-centre, the paper's layout)."""
    num_layers: int | None = 3
    """L, the number of depth layers before merging (None: use ``layer_threshold``)."""
    layer_threshold: float | None = None
    """Ward distance threshold on normalised disparity instead of a layer count (3D-Cinemagraphy: 5)."""
    cluster_stride: int = 10
    """Every this many pixels (per axis) is clustered."""
    merge_jump: float = 0.04
    """Relative disparity step between neighbouring pixels that counts as a depth discontinuity."""
    merge_max_discontinuous: float = 0.25
    """Neighbouring layers whose shared boundary is discontinuous on at most this fraction are merged."""
    layer_inpaint: bool = True
    """Fill what nearer layers hide in every layer (Eq. 3; ablation: False)."""
    layer_margin: int = 32
    """How far (pixels) a layer's hole band reaches behind nearer layers from the layer's pixels at a
    depth discontinuity (and at most this far beyond its bounding box)."""
    context_erode: int = 3
    """Pixels of a layer next to nearer layers hidden from the inpainter too (mixed edge colours)."""
    layer_depth: Literal["auto", "remap", "keep"] = "auto"
    """'remap' (Eq. 4-5), 'keep' (visible pixels keep the canvas depth, holes the background
    continuation clamped to the layer) or 'auto' (remap for neural depth models without a depth file)."""
    frames: int = 100
    """N, the number of frames (the paper's trajectories have 100)."""
    loop_frames: int | None = None
    """Period of the seamless motion loop (None = ``frames``)."""
    trajectory: str = "autocruise"
    """'autocruise' or any other trajectory spec / camera file."""
    speed: float = 0.005
    """Autocruise step per frame, in units of the near depth (10th percentile of the input's depth)."""
    fly_out: bool = False
    """Autocruise backward: fly out of the image (paper Fig. 7)."""
    look_lerp: float = 0.05
    """Autocruise: per-frame lerp of the look direction toward its target (InfiniteNature)."""
    move_lerp: float = 0.2
    """Autocruise: per-frame lerp of the move direction toward its target (InfiniteNature)."""
    horizon: float = 0.4
    """Autocruise: wanted horizon height (fraction of the frame from the top)."""
    near_fraction: float = 0.2
    """Autocruise: wanted fraction of near ground in view."""
    per_frame: bool = False
    """Ablation: render-refine-repeat (InfiniteNature-Zero) instead of inpainted layers."""
    fov: float = 55.0
    """Horizontal field of view of the input in degrees (when no camera file or ``focal`` is given)."""
    focal: float | None = None
    """Focal length of the input in pixels (overrides ``fov``)."""
    cx: float | None = None
    """Principal point x of the input in pixels (None = the image centre)."""
    cy: float | None = None
    """Principal point y of the input in pixels (None = the image centre)."""
    width: int | None = None
    """Frame width (default: from the input, capped by ``max_side``)."""
    height: int | None = None
    """Frame height (default: from the input, capped by ``max_side``)."""
    max_side: int = 512
    """Inputs larger than this (longer side) are downscaled (the paper evaluates at 512 x 512)."""
    max_pixels: int = 4096 * 4096
    """Images with more pixels are refused before decoding."""
    gif: bool = False
    """Also write video.gif (the loop)."""
    seed: int = 0
    """Seed of every random choice."""
    fps: int = 24
    """Video frame rate."""
    checkpoint_every: int = 10
    """Save resume state every this many frames (and after the last): the frame index, and with
    ``per_frame`` the points added so far (the layered scene itself is recomputed, same seed)."""


def _check(config: Config) -> None:
    if config.placement not in ("center", "bottom"):
        raise ConfigError(f"--placement must be 'center' or 'bottom', got {config.placement!r}")
    if config.layer_depth not in ("auto", "remap", "keep"):
        raise ConfigError(f"--layer-depth must be auto, remap or keep, got {config.layer_depth!r}")
    if config.num_layers is not None and config.num_layers < 1:
        raise ConfigError(f"--layers must be at least 1, got {config.num_layers}")
    if config.layer_threshold is not None and not config.layer_threshold > 0:
        raise ConfigError(f"--layer-threshold must be positive, got {config.layer_threshold}")
    if not 1.0 <= config.canvas_scale <= 4.0:
        raise ConfigError(f"--canvas-scale must be between 1 and 4, got {config.canvas_scale}")
    if config.frames < 1 or (config.loop_frames is not None and config.loop_frames < 1):
        raise ConfigError("--frames and --loop-frames must be at least 1")
    config.check_motion()
    if config.inpainter == "none" and (config.outpaint or config.layer_inpaint or config.per_frame):
        raise ConfigError("--inpainter none needs --no-outpaint and --no-layer-inpaint")
    if config.depth_kind not in ("depth", "disparity"):
        raise ConfigError(f"--depth-kind must be 'depth' or 'disparity', got {config.depth_kind!r}")
    if not config.speed > 0 or config.cluster_stride < 1:
        raise ConfigError("--speed and --cluster-stride must be positive")
    if config.layer_margin < 0 or config.context_erode < 0:
        raise ConfigError("--layer-margin and --context-erode must not be negative")


def build_layers(config: Config, canvas, depth, inpainter, depth_model, manifest, from_file: bool):
    """Steps 3-5: the layered depth image [(rgb (3,H,W), alpha (1,H,W) bool, depth (1,H,W))], nearest first,
    and a description {edges d_0..d_L, count, layer_depth mode}."""
    edges = layer_edges(
        depth,
        config.num_layers if config.layer_threshold is None else None,
        config.layer_threshold,
        config.cluster_stride,
    )
    labels = assign_layers(depth, edges)
    # the farthest depth cluster before merging: what the sky preset moves (a far ground that meets
    # the sky without a depth jump may merge with it, but stays still)
    far_cluster = labels == len(edges) - 2
    labels, edges = merge_connected_layers(
        labels, depth, edges, config.merge_jump, config.merge_max_discontinuous
    )
    count = len(edges) - 1
    mode = config.layer_depth
    if mode == "auto":
        mode = "remap" if getattr(depth_model, "module", None) is not None and not from_file else "keep"
    inpaint_layers = config.layer_inpaint and not config.per_frame  # per-frame fills frames instead
    # holes open only behind depth discontinuities: where two layers meet smoothly (a ground plane
    # crossing a layer edge) nothing is hidden, so nothing is filled and no sliver is duplicated
    edge = discontinuity_mask(depth, config.merge_jump)
    rgbs, alphas = [], []
    for i in range(count):
        own, nearer = labels == i, labels < i
        if i == count - 1:
            band = nearer
        else:
            reach = dilate(own & edge, 2 * config.layer_margin + 1)
            band = nearer & reach & steps.box_mask(own, config.layer_margin)
        rgb = canvas
        if inpaint_layers and bool(band.any()):
            hidden = dilate(nearer, 2 * config.context_erode + 1) if config.context_erode else nearer
            with manifest.timer("layer_inpaint"):
                filled = (
                    inpainter.inpaint(
                        canvas, hidden, config.prompt, config.negative_prompt, seed=config.seed + 1 + i
                    )
                    .to(canvas)
                    .clamp(0, 1)
                )
            # the ring of own pixels was only hidden from the inpainter's context: it keeps its colour
            rgb = torch.where(hidden & ~own, filled, canvas)
            alphas.append(own | band)
        else:
            alphas.append(own)
        rgbs.append(rgb)
    depths = []
    overlay = rgbs[-1]
    overlays = [None] * count
    for i in reversed(range(count)):  # Eq. 4: the cumulative overlay of layers i..L
        overlay = torch.where(alphas[i], rgbs[i], overlay)
        overlays[i] = overlay
    for i in range(count):
        if mode == "remap":
            with manifest.timer("layer_depth"):
                pred = to_depth(depth_model.predict(overlays[i]), depth_model.output)
            depths.append(remap_layer_depth(pred, alphas[i], edges[i], edges[i + 1]))
        else:
            behind = torch.where(labels >= i, depth, torch.full_like(depth, float("inf")))
            filled = fill_depth_from_background(behind, labels < i)
            depths.append(torch.where(labels == i, depth, filled.clamp(edges[i], edges[i + 1])))
    layers = [(rgbs[i], alphas[i], depths[i]) for i in range(count)]
    # sky preset: the far cluster and what the farthest layer has behind nearer layers
    sky = far_cluster | (alphas[-1] & (labels < count - 1))
    return layers, {"layer_edges": edges, "layers": count, "layer_depth": mode}, sky


def run(
    config: Config, out_dir: Path, *, overwrite: bool = False, resume: bool = False, quiet: bool = False
) -> RunResult:
    """Make an animated flythrough of ``config.image`` into the run folder ``out_dir``."""
    _check(config)
    rt = MethodRun(
        "makeit4d",
        config,
        out_dir,
        overwrite=overwrite,
        resume=resume,
        quiet=quiet,
        inputs=[config.image, config.depth, config.motion_mask, config.motion_video],
        seed=config.seed,
        device=config.device,
        checkpoint_every=config.checkpoint_every,
    )
    if config.trajectory != "autocruise":
        make_trajectory(config.trajectory, 2, Camera.from_fov(55.0, 64, 64))  # a bad path fails before work
    depth_model, inpainter = steps.make_backends(config, rt, quiet)

    # the input, its camera, and every motion source are read and checked before anything is written
    rgb, file_depth, camera = steps.load_input(config)
    H, W = rgb.shape[1:]
    flow_source = read_motion(config, config.image, H, W, seed=config.seed, max_pixels=config.max_pixels)
    steps.prepare_inpainter(inpainter, rgb, file_depth, depth_model, camera, config, rt)

    # 1. outpaint (Eq. 1) on the canvas; 2. its depth
    scale = config.canvas_scale if config.outpaint else 1.0
    canvas_cam, offset = steps.canvas_camera(camera, scale, config.placement)
    with rt.timer("outpaint"):
        canvas, known = steps.outpaint(rgb, canvas_cam, offset, inpainter, config, rt.device)
    with rt.timer("depth"):
        depth = steps.canvas_depth(canvas, known, offset, file_depth, depth_model, rt.device)

    # 3-5. layered depth image, layer inpainting, layer depth; 6. the point cloud
    from_file = file_depth is not None
    painter = steps.OnDevice(inpainter, depth_model, rt.device)
    layers, layer_info, sky = build_layers(config, canvas, depth, painter, painter, rt.manifest, from_file)
    cloud = LayeredPointCloud.from_layers(canvas_cam, layers)

    # 7. motion
    flow, moving_layers = steps.canvas_flow(flow_source, offset, canvas_cam, len(layers), sky)
    loop = config.loop_frames or config.frames
    with rt.timer("motion"):
        animation = EulerianAnimation(cloud, flow, loop, moving_layers=moving_layers)

    # 8. camera path
    input_depth = steps.crop(depth, offset, H, W)
    if config.trajectory == "autocruise":
        unit = scene_scale(input_depth, quantile=0.1)
        cameras = autocruise(
            camera,
            normalized_disparity(input_depth),
            config.frames,
            config.speed * unit,
            config.look_lerp,
            config.move_lerp,
            config.horizon,
            config.near_fraction,
            fly_out=config.fly_out,
        )
    else:
        cameras = make_trajectory(
            config.trajectory, config.frames, camera, scene_scale=scene_scale(input_depth)
        )
    num_frames = len(cameras)  # a camera file sets its own frame count

    rt.begin(
        backends={
            "depth": describe_backend(depth_model, config.depth_model, from_file=from_file),
            "inpainter": describe_backend(inpainter, config.inpainter),
            "features": {
                "spec": "rgb",
                "description": "points carry RGB; the paper's learned "
                "feature encoder/decoder has no public weights and is not used",
            },
        }
    )
    steps.write_scene_files(rt, cloud, layers, flow, canvas)
    info = {
        "input_K": camera.K.tolist(),
        "canvas_K": canvas_cam.K.tolist(),
        "canvas_size": [canvas_cam.width, canvas_cam.height],
        "canvas_offset": list(offset),
        **layer_info,
        "points": len(cloud),
        "moving_points": animation.num_moving,
        "loop_frames": loop,
        "motion": flow_source[0],
    }

    # 9. render every frame (per_frame: each frame's holes are filled and added to the cloud)
    state = rt.resume_state()
    if state is not None and config.per_frame:
        cloud.load_state_dict(state["cloud"])
    for i in rt.frames(num_frames, start=rt.resume_frame(state)):
        frame, frame_depth, holes = steps.render_frame(config, animation, cameras[i], i, loop, painter, rt)
        rt.write_frame(i, frame, frame_depth, holes)
        rt.checkpoint(
            i, lambda: {"cloud": cloud.state_dict()} if config.per_frame else {}, last=i == num_frames - 1
        )

    rt.write_video(num_frames, fps=config.fps)
    rt.write_cameras(cameras)
    if config.gif:
        steps.write_loop_gif(rt, num_frames, config.fps)
    rt.manifest.notes.extend(steps.camera_notes(camera, canvas_cam))
    rt.rundir.write_json("makeit4d.json", info)
    return rt.finish(num_frames, scene="points.ply")
