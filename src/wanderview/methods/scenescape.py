"""scenescape: text-driven perpetual view generation with a unified mesh (Fridman et al., NeurIPS 2023).

1. First frame: generated from the prompt by the text-to-image backend, or ``image``. Its depth
   (``depth`` file or the depth backend) is lifted to the mesh M0 (two triangles per pixel quad).
2. For every next camera of the path:
   - render M(t) anti-aliased (``supersample`` x, blur, downsample); add to the holes the pixels of
     the floating-artifact fix (previous depth padded to ``pad_factor`` x by border replication and
     warped into the new camera; see ``scenes/scenescape_mesh.floating_artifact_mask``);
   - inpaint the holes: the mask is opened with a 3x3 kernel, the thin difference is filled by
     Telea and the rest by the inpainter (the ``hf:`` inpainter does this itself);
   - test-time decoder finetuning (latent-diffusion inpainters): 100 Adam steps, lr 1e-4;
   - test-time depth finetuning (neural depth models): 300 Adam steps, lr 1e-7, L1 in disparity on
     visible pixels; weights are reset after every frame;
   - mesh update: new pixels are unprojected and stitched to the visible mesh; stretched faces at
     depth edges (Sobel 0.3, normal test -0.05) are removed; every ``prune_every`` frames faces
     the rest of the path cannot see are dropped and content that has shrunk below
     ``decimate_subpixel`` pixels in every remaining view is merged (vertex clustering), so the mesh
     is bounded by the remaining views' resolution rather than the number of frames. The final
     mesh.ply is streamed to disk; mesh.glb is skipped (with a manifest note) above ``glb_max_faces``.

CPU fallback: a depth backend without a network (``heuristic``) cannot be finetuned, so the
predicted depth of the inpainted frame is aligned to the mesh's rendered depth by a least-squares
scale and shift in disparity on the visible pixels (the same alignment the neural path starts from).
With ``--no-depth-finetune`` a neural model takes this path too.

Ablations (the rows of the paper's Table 1): ``depth_finetune=False``, ``decoder_finetune=False``,
``mesh=False`` (each frame is the previous one forward-warped with z-buffered splatting, then
inpainted: no unified mesh) and ``warp_inpaint`` (no mesh and no finetuning).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from wanderview.backends.protocols import FinetunableDepth, LatentInpainter, to_depth
from wanderview.cameras.trajectories import is_camera_file, make_trajectory, parse_trajectory_spec
from wanderview.errors import ConfigError, InputError
from wanderview.geometry.fill import fill_depth_from_background
from wanderview.geometry.masks import dilate, open_mask
from wanderview.methods.common import (
    MIN_SIDE,
    ModelLoading,
    RunResult,
    crop_to_aspect,
    describe_backend,
    input_camera,
    resize_cover,
    resize_depth,
    scene_scale,
)
from wanderview.methods.new_depth import DepthFinetuning, new_content_depth
from wanderview.methods.runtime import MethodRun, input_paths
from wanderview.optim.decoder_finetune import finetune_decoder
from wanderview.render.warp import splat
from wanderview.scenes.scenescape_mesh import SceneScapeMesh, floating_artifact_mask


@dataclass(frozen=True)
class Config(ModelLoading):
    """Everything a scenescape run needs; defaults are the paper's (50 frames, 512x512, focal 500 px)."""

    prompt: str = ""
    """Text that drives the first frame and every inpainting."""
    image: Path | None = None
    """Start from this image instead of generating one (required without an image generator)."""
    depth: Path | None = None
    """Depth of ``image`` (.npy, 16-bit PNG, PFM z-depth); None = predict it with ``depth_model``."""
    negative_prompt: str | None = None
    """What the hf: inpainter and generator should avoid (classifier-free guidance)."""
    generator: str | None = None
    """Text-to-image backend spec (hf:<id or folder>) for the first frame; None = use ``image``."""
    depth_model: str = "heuristic"
    """Depth backend: heuristic (weak, CPU; aligned, not finetuned) or hf:<id> (finetuned per frame)."""
    inpainter: str = "patchmatch"
    """Inpainting backend: patchmatch (copies texture), telea, ns, none, hf:<SD-inpainting id>."""
    exemplar_min_distance: int = 24
    """With the patchmatch inpainter: copied patches come from the input image's content (not from
    earlier fills) and from at least this many pixels away from the holes (0 = anywhere, fills
    included). Patches from right beside the strips a walk reveals continue their lines into
    streaks, and copies of copies drift to flat dark noise, frame after frame."""
    diffusion_steps: int = 50
    """Denoising steps of the hf: inpainter and generator (the paper: DDIM, 50 steps)."""
    trajectory: str = "scenescape"
    """Camera path spec or camera file; the scenescape path is seeded with ``seed`` unless given.
    Named paths move in units of the first frame's depth quantile ``path_unit_quantile``."""
    path_unit_quantile: float = 0.1
    """Depth quantile that is one unit of the path (0.1: near content; the scenescape path's
    default step of 0.05 units then shrinks the nearest content by ~5 % per frame)."""
    frames: int = 50
    """Number of frames (a camera file decides it itself)."""
    width: int = 512
    """Frame width (the paper: 512); the first image is centre-cropped to width x height, then
    resized (never stretched). At least 8."""
    height: int = 512
    """Frame height (the paper: 512); see ``width``. At least 8."""
    focal: float = 500.0
    """Focal length in pixels at 512 px width (scaled with ``width``)."""
    supersample: int = 2
    """Anti-aliasing: render at this factor, blur, downsample."""
    floating_fix: bool = True
    """The floating-artifact fix (holes where the previous frame's padded depth warps in front)."""
    pad_factor: float = 1.5
    """Floating-artifact fix: the previous depth is padded to this multiple of its size."""
    mesh: bool = True
    """False = the --no-mesh ablation (frame-to-frame warping)."""
    depth_finetune: bool = True
    """Test-time depth finetuning of neural depth models (False = the ablation: align only)."""
    depth_finetune_steps: int = 300
    """Adam steps of depth finetuning per frame."""
    depth_finetune_lr: float = 1e-7
    """Learning rate of depth finetuning."""
    decoder_finetune: bool = True
    """Test-time decoder finetuning of latent-diffusion inpainters (False = the ablation)."""
    decoder_finetune_steps: int = 100
    """Adam steps of decoder finetuning per frame."""
    decoder_finetune_lr: float = 1e-4
    """Learning rate of decoder finetuning."""
    edge_threshold: float = 0.3
    """Sobel threshold on normalised disparity that marks depth discontinuities."""
    stretch_eps: float = -0.05
    """Faces on discontinuities stay only where normalize(centre - camera) . normal < stretch_eps."""
    prune_every: int = 5
    """Drop faces the remaining path cannot see every this many frames (0 = never)."""
    decimate_subpixel: float = 1.0
    """At every prune, merge mesh vertices closer than this many pixels in every remaining view
    (vertex clustering; bounds memory when the camera moves away; 0 = off)."""
    glb_max_faces: int = 4_000_000
    """mesh.glb is written only up to this many faces (trimesh's GLB export holds several copies of
    the mesh in memory); mesh.ply is always written, streamed."""
    seed: int = 0
    """Seed of every random choice (0 to 2**63 - 1); also seeds the scenescape path."""
    fps: int = 24
    """Video frame rate."""
    checkpoint_every: int = 5
    """Save resume state (the whole mesh, tens of MB) every this many frames and after the last;
    a resumed run recomputes at most this many frames."""

    @property
    def warp_inpaint(self) -> bool:
        """True for the warp-inpaint baseline (no mesh, no finetuning)."""
        return not self.mesh and not self.depth_finetune and not self.decoder_finetune


def _check(config: Config) -> None:
    if config.image is None and not config.generator:
        raise ConfigError(
            "scenescape needs a starting image without a text-to-image model: pass --image IMG, "
            "or --generator hf:stabilityai/stable-diffusion-2-1 with --prompt"
        )
    if config.image is None and not config.prompt:
        raise ConfigError("generating the first frame needs a --prompt")
    if config.image is not None and not Path(config.image).is_file():
        raise InputError(f"the image {config.image} does not exist")
    if config.depth is not None and config.image is None:
        raise ConfigError("--depth describes the --image, so it needs --image")
    if config.frames < 1 or config.width < MIN_SIDE or config.height < MIN_SIDE:
        raise ConfigError(
            f"need frames >= 1 and a size of at least {MIN_SIDE}x{MIN_SIDE}, got {config.frames} frames, "
            f"{config.width}x{config.height}"
        )
    if config.exemplar_min_distance < 0:
        raise ConfigError(f"--exemplar-min-distance must not be negative, got {config.exemplar_min_distance}")
    if not 0.0 < config.path_unit_quantile <= 1.0:
        raise ConfigError(f"--path-unit-quantile must be in (0, 1], got {config.path_unit_quantile}")
    if config.supersample < 1 or config.pad_factor < 1.0 or config.focal <= 0:
        raise ConfigError("supersample must be >= 1, pad factor >= 1 and focal > 0")
    if min(config.depth_finetune_steps, config.decoder_finetune_steps, config.prune_every,
           config.decimate_subpixel) < 0:  # fmt: skip
        raise ConfigError("finetuning steps, prune_every and decimate_subpixel must not be negative")
    for name in ("fps", "diffusion_steps"):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")


def _trajectory_spec(config: Config) -> str:
    """The path spec with the run's seed added to a scenescape path that does not name one."""
    if is_camera_file(config.trajectory):
        return config.trajectory
    name, params = parse_trajectory_spec(config.trajectory)
    if name == "scenescape" and "seed" not in params:
        return f"{config.trajectory}{',' if ':' in config.trajectory else ':'}seed={config.seed}"
    return config.trajectory


def _first_view(config: Config, depth_model, generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb (3, H, W) and depth (1, H, W) of frame 0."""
    from wanderview.io.depth import read_depth
    from wanderview.io.images import read_image

    H, W = config.height, config.width
    if config.image is not None:
        rgb = read_image(config.image)
        if config.depth is not None:
            depth, valid = read_depth(config.depth, size=tuple(rgb.shape[1:]), mask_invalid=True)
            depth = torch.where(valid, depth, torch.full_like(depth, float("inf")))
            depth = resize_depth(crop_to_aspect(depth, H, W), H, W)
        rgb = resize_cover(rgb, H, W)
    else:
        rgb = generator.generate(config.prompt, W, H, seed=config.seed).float().clamp(0, 1)
        rgb = resize_cover(rgb, H, W)
    rgb = rgb.to(device)
    if config.depth is None:
        depth = to_depth(depth_model.predict(rgb), depth_model.output)
    depth = depth.to(device)
    if not bool(torch.isfinite(depth).any()):
        raise InputError("the first frame has no valid depth")
    return rgb, fill_depth_from_background(depth, ~torch.isfinite(depth))


def _inpaint(inpainter, image, holes, config: Config, seed: int, invented=None) -> torch.Tensor:
    """Fill (1, H, W) holes of (3, H, W); open the mask, Telea the thin part, the model the rest.

    ``invented``: (1, H, W) bool of rendered pixels that show earlier fills, not the input image;
    PatchMatch copies no patch from them (or from within ``exemplar_min_distance`` of the holes)."""
    if not bool(holes.any()) or config.inpainter == "none":
        return image
    if isinstance(inpainter, LatentInpainter):  # it does the paper's mask handling itself
        return inpainter.inpaint(image, holes, config.prompt, config.negative_prompt, seed=seed)
    from wanderview.backends.classical import OpenCVInpainter, PatchMatchInpainter

    opened = open_mask(holes, 3)
    thin = holes & ~opened
    if bool(thin.any()):
        image = torch.where(thin, OpenCVInpainter("telea", radius=3).inpaint(image, holes), image)
    if bool(opened.any()):
        extra = {}
        if isinstance(inpainter, PatchMatchInpainter) and config.exemplar_min_distance > 0:
            # Two feedback loops of a walk: patches copied from right beside a border strip continue
            # its lines into streaks, and fills copied from earlier fills drift to flat dark noise
            # (such patches match everything cheaply). Copies come from the input image, away from
            # the holes; the inpainter drops the exclusion when it leaves less than one patch.
            exclude = dilate(opened, 2 * config.exemplar_min_distance + 1) & ~opened
            if invented is not None:
                exclude |= invented & ~opened
            extra["exclude"] = exclude
        image = inpainter.inpaint(image, opened, config.prompt, config.negative_prompt, seed=seed, **extra)
    return image


def _finetune_decoder(inpainter, frame, view_rgb, holes, config: Config, rt: MethodRun) -> torch.Tensor:
    """Decode the re-encoded inpainted frame with a per-frame finetuned decoder (LatentInpainter);
    known pixels stay rendered."""
    H, W = frame.shape[1:]
    size = (max(8, round(H / 8) * 8), max(8, round(W / 8) * 8))
    frame_m = F.interpolate(frame[None], size=size, mode="bilinear", align_corners=False)[0]
    target = F.interpolate(view_rgb[None], size=size, mode="bilinear", align_corners=False)[0]
    known = F.interpolate((~holes)[None].float(), size=size, mode="nearest")[0] > 0.5
    with torch.no_grad():
        latents = inpainter.encode(frame_m[None])
    result = finetune_decoder(inpainter.decode, inpainter.decoder_module(), latents, target, known,
                              steps=config.decoder_finetune_steps, lr=config.decoder_finetune_lr)  # fmt: skip
    rt.manifest.notes.append(
        f"decoder finetune known-pixel mse {result.known_error[0]:.5f} -> {result.known_error[1]:.5f}"
    )
    decoded = F.interpolate(result.image[None], size=(H, W), mode="bilinear", align_corners=False)[0]
    return torch.where(holes, decoded.to(frame), frame)


def run(
    config: Config, out_dir: Path, *, overwrite: bool = False, resume: bool = False, quiet: bool = False
) -> RunResult:
    """Generate a SceneScape walkthrough into the run folder ``out_dir`` (docs/design.md: run folder)."""
    from wanderview.backends.registry import make_depth_model, make_image_generator, make_inpainter

    _check(config)
    spec = _trajectory_spec(config)
    rt = MethodRun("scenescape", config, out_dir, overwrite=overwrite, resume=resume, quiet=quiet,
                   inputs=input_paths(config.image, config.depth, config.trajectory, config.depth_model,
                                      config.inpainter, config.generator),
                   effective={"trajectory_spec": spec},
                   seed=config.seed, device=config.device,
                   checkpoint_every=config.checkpoint_every)  # fmt: skip
    loading = config.loading_options(rt.device)
    steps = {"steps": config.diffusion_steps}
    depth_model = make_depth_model(config.depth_model, **loading)  # frames after the first need it
    inpainter = make_inpainter(
        config.inpainter, **loading, **(steps if config.inpainter.startswith("hf:") else {})
    )
    generator = make_image_generator(config.generator, **loading, **steps) if config.image is None else None
    camera = input_camera(spec, config.width, config.height, 60.0, config.focal * config.width / 512.0)
    make_trajectory(spec, 2, camera)  # a bad path spec fails here, before anything is written
    # a user's image (and depth) is read before anything is written; generation happens later
    t_first = time.perf_counter()
    first = _first_view(config, depth_model, None, rt.device) if config.image is not None else None
    t_first = time.perf_counter() - t_first
    finetune = None
    if config.depth_finetune and isinstance(depth_model, FinetunableDepth):
        finetune = DepthFinetuning(config.depth_finetune_steps, config.depth_finetune_lr)
    use_decoder_ft = config.decoder_finetune and isinstance(inpainter, LatentInpainter)

    rt.begin({"depth": describe_backend(depth_model, config.depth_model),
              "inpainter": describe_backend(inpainter, config.inpainter),
              "generator": generator and describe_backend(generator, config.generator)})  # fmt: skip
    if finetune is None:
        rt.manifest.notes.append(
            "depth of new content: depth model aligned to the mesh (least-squares scale/shift "
            "in disparity), no depth finetuning"
        )
    if not use_decoder_ft:
        rt.manifest.notes.append("no decoder finetuning (off, or the inpainter has no latent decoder)")
    mesh = SceneScapeMesh(supersample=config.supersample, edge_threshold=config.edge_threshold,
                          stretch_eps=config.stretch_eps, device=rt.device)  # fmt: skip
    state = rt.resume_state()
    if state is not None:
        mesh.load_state_dict(state["mesh"])
        prev_rgb, prev_depth = state["prev_rgb"].to(rt.device), state["prev_depth"].to(rt.device)
        scale = float(state["scale"])
    else:
        rt.manifest.timings["first_frame"] = t_first
        with rt.timer("first_frame"):
            prev_rgb, prev_depth = first or _first_view(config, depth_model, generator, rt.device)
        # the path moves in units of the *near* depth: each frame then reveals a similar strip of
        # new content whatever the depth range (a median unit set by a far backdrop makes the
        # near floor shrink by a third per frame)
        scale = scene_scale(prev_depth, config.path_unit_quantile)
    cameras = make_trajectory(spec, config.frames, camera, scene_scale=scale).to(rt.device)
    num_frames = len(cameras)  # a camera file decides the number of frames itself

    for i in rt.frames(num_frames, start=rt.resume_frame(state)):
        torch.manual_seed(config.seed + i)
        if i == 0:
            frame, frame_depth, holes = prev_rgb, prev_depth, torch.zeros_like(prev_depth, dtype=torch.bool)
            if config.mesh:
                with rt.timer("mesh_update"):
                    mesh.add_frame(frame, frame_depth, cameras[0], ~holes, observed=True)
        else:
            frame, frame_depth, holes = _step(i, config, cameras, mesh, prev_rgb, prev_depth, inpainter,
                                              depth_model, finetune, use_decoder_ft, rt)  # fmt: skip
        rt.write_frame(i, frame, frame_depth, holes)
        prev_rgb, prev_depth = frame, frame_depth
        rt.checkpoint(i, partial(_resume_state, mesh, frame, frame_depth, scale), last=i == num_frames - 1)

    rt.write_video(num_frames, fps=config.fps)
    rt.write_video(num_frames, "video_reversed.mp4", reverse=True, fps=config.fps)
    rt.write_cameras(cameras)
    if config.mesh:
        with rt.timer("write"):
            _write_mesh(rt, config, mesh)
    rt.manifest.notes.append(f"final mesh: {len(mesh)} faces, {mesh.vertices.shape[0]} vertices")
    return rt.finish(num_frames, scene="mesh.ply" if config.mesh else None)


def _resume_state(mesh: SceneScapeMesh, prev_rgb, prev_depth, scale: float) -> dict:
    """What a resumed run needs besides the frames on disk: the mesh, the last frame, the path unit."""
    return {"mesh": mesh.state_dict(), "prev_rgb": prev_rgb.cpu(), "prev_depth": prev_depth.cpu(),
            "scale": scale}  # fmt: skip


def _step(
    i, config, cameras, mesh, prev_rgb, prev_depth, inpainter, depth_model, finetune, use_decoder_ft, rt
):
    """Frame i > 0: render (or warp), floating fix, inpaint, finetune, depth, mesh update."""
    cam, prev_cam = cameras[i], cameras[i - 1]
    face_id = invented = None
    with rt.timer("render"):
        if config.mesh:
            view = mesh.render(cam)
            face_id, invented = view.face_id, view.observed < 0.5
            view_rgb, view_depth = view.rgb, view.depth
            holes = view.holes | ~torch.isfinite(view_depth)
        else:
            view_rgb, view_depth = splat(prev_rgb, prev_depth, prev_cam, cam)
            holes = ~torch.isfinite(view_depth)
    if config.floating_fix:
        with rt.timer("floating_fix"):
            holes = holes | floating_artifact_mask(prev_depth, prev_cam, cam, view_depth, config.pad_factor)
    view_rgb = torch.where(holes, torch.zeros_like(view_rgb), view_rgb)
    view_depth = torch.where(holes, torch.full_like(view_depth, float("inf")), view_depth)
    with rt.timer("inpaint"):
        frame = _inpaint(inpainter, view_rgb, holes, config, seed=config.seed + i, invented=invented)
    if use_decoder_ft and bool(holes.any()) and config.decoder_finetune_steps > 0:
        with rt.timer("decoder_finetune"):
            frame = _finetune_decoder(inpainter, frame, view_rgb, holes, config, rt)
    with rt.timer("depth"):
        frame_depth = view_depth
        if bool(holes.any()):
            frame_depth = new_content_depth(frame, view_depth, holes, depth_model, finetune)
    if config.mesh:
        with rt.timer("mesh_update"):
            mesh.add_frame(frame, frame_depth, cam, holes, face_id)
        if config.prune_every and i % config.prune_every == 0 and i + 1 < len(cameras):
            with rt.timer("prune"):
                mesh.prune(cameras[i + 1 :])
                mesh.decimate(cameras[i + 1 :], config.decimate_subpixel)
    return frame, frame_depth, holes


def _write_mesh(rt: MethodRun, config: Config, mesh: SceneScapeMesh) -> None:
    mesh.prune(None)  # drops unused vertices; a duplicate merge (a sort of V x 3) costs GBs at 10M+
    mesh.save(rt.path("mesh.ply"))
    if len(mesh) <= config.glb_max_faces:
        mesh.save(rt.path("mesh.glb"))
    else:
        rt.manifest.notes.append(
            f"mesh.glb not written: {len(mesh)} faces exceed glb_max_faces={config.glb_max_faces}; "
            "mesh.ply holds the full mesh"
        )
