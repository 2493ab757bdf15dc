"""4Real (Yu et al., NeurIPS 2024): a reference video and a freeze-time video -> deformable 3D Gaussians.

The pipeline (paper §3, supplementary §C), read top to bottom in :func:`run`:

1. inputs: the reference video (a fixed camera over time) and the freeze-time video (the camera
   moving at the canonical time, through the canonical reference frame); cameras from files or SfM;
2. canonical space: 3DGS on the freeze-time frames (from SfM points, or points triangulated by
   optical flow with given cameras), a warm-up without deformation, then the per-frame
   deformation w(x, k) jointly with the Gaussians and the small-motion loss;
3. motion: the temporal deformation w(x, t) on the reference frames with the Gaussians frozen,
   with a 2D optical-flow track loss (ours) beside the paper's regularisers;
4. outputs: ``gaussians.ply`` (canonical), ``deformation.safetensors``, ``cameras.json``,
   ``fixed_view.mp4``, ``freeze_time.mp4`` and ``video.mp4`` (``trajectory`` over ``time``).

Generative inputs (methods/fourreal_generate.py; GPU for real models): without --reference-video
it is made from --prompt (--text-video-model, or a VACE --video-model), without --freeze-video
it is made by the image-to-video --video-model from the canonical frame, extended clip by clip
to --coverage degrees. With --video-model, video SDS (``optim/sds.py``, ``methods/fourreal_sds.py``)
runs in the last ``sds_fraction`` of both stages: multi-view SDS in the canonical stage, joint
temporal and multi-view SDS in the motion stage. Not in this version (said in --help and the
manifest): the Δs scale offsets of the paper's fields, and the motion stage's extra GS growth and
joint fine-tuning (supplementary §C 2b–2c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from wanderview.cameras.camera import Camera
from wanderview.errors import ConfigError, InputError
from wanderview.methods import fourreal_generate as generate
from wanderview.methods import fourreal_inputs as inputs
from wanderview.methods import fourreal_outputs as outputs
from wanderview.methods import fourreal_sds
from wanderview.methods.common import ModelLoading, RunResult
from wanderview.methods.fourreal_sds import SDSOptions
from wanderview.methods.runtime import MethodRun

PAPER = {"canonical_iterations": 23000, "warmup_iterations": 3000, "motion_iterations": 10000,
         "deform_depth": 8, "deform_width": 256, "deform_skip": 4, "max_gaussians": 500_000,
         "min_densify_interval": 100}  # fmt: skip
CPU = {"canonical_iterations": 2400, "warmup_iterations": 600, "motion_iterations": 1200,
       "deform_depth": 4, "deform_width": 64, "deform_skip": 2, "max_gaussians": 5_000,
       "min_densify_interval": 10}  # fmt: skip
"""The smaller CPU schedule: about 1/10 of the paper's iterations, at most 5000 Gaussians, a 4x64
MLP (skip after layer 2) instead of 8x256 (skip at 4), and densification every 10 steps (the 5000
cap stops the blow-up that the static fitter's floor of 100 guards against; README has the time)."""


MIN_INIT_POINTS = 100
"""Fewer SfM or triangulated points than this (wrong cameras, textureless frames): random init."""


@dataclass(frozen=True)
class Config(ModelLoading, SDSOptions):
    """Everything a fourreal run needs (defaults: the paper's on CUDA, the CPU schedule elsewhere)."""

    reference_video: Path | None = None
    """The reference video (MP4, or a folder of frames sorted by name): a fixed camera over time."""
    freeze_video: Path | None = None
    """The freeze-time video (MP4 or folder): the camera moving at the canonical time; one of its
    frames must match the canonical reference frame."""
    reference_cameras: Path | None = None
    """transforms.json of the reference video (per-frame 'time' honoured); none = a fixed camera,
    times evenly spaced in [0, 1]."""
    freeze_cameras: Path | None = None
    """transforms.json of the freeze-time video; none = SfM (pycolmap) on its frames."""
    prompt: str = ""
    """Text of the scene: the reference video's prompt when it is generated; the freeze-time
    video's prompt is made from it (methods/fourreal_prompts.py)."""
    video_model: str = ""
    """hf:<id or folder> of an image-to-video model (Wan I2V, Wan VACE, SVD; GPU) that makes the
    freeze-time video when none is given (VACE: also the reference video from --prompt) and runs
    the video SDS of both stages (the sds_* options)."""
    video_adapter: Literal["auto", "wan", "vace", "svd"] = "auto"
    """Family of --video-model (auto: from the checkpoint's pipeline class)."""
    text_video_model: str = ""
    """hf:<id or folder> of a text-to-video WanPipeline/CogVideoXPipeline for the reference video
    (none: the --video-model when it is VACE)."""
    video_steps: int | None = None
    """Denoising steps of the video models (none: their defaults, Wan 50, SVD 25)."""
    guidance_scale: float | None = None
    """Classifier-free guidance of the video models (none: their defaults)."""
    reference_frames: int = 16
    """Frames of a generated reference video (16, the paper's video model's clip)."""
    coverage: float = 60.0
    """Degrees of view the generated freeze-time video is extended to (two-view estimate)."""
    max_clips: int = 6
    """At most this many freeze-time clips (the manifest says the coverage reached)."""
    clip_frames: int = 16
    """Frames per freeze-time clip (the paper's 16; rounded up to a count the model makes, Wan 17)."""
    context_frames: int = 8
    """Frames of the video a VACE clip is conditioned on (the paper's 8; first-frame models: 1)."""
    canonical_frame: int = 0
    """Index of the reference frame that is the canonical time."""
    fov: float = 60.0
    """Horizontal field of view (degrees) when no camera file gives intrinsics."""
    width: int | None = None
    """Working width (none = the videos', downscaled to max_side)."""
    height: int | None = None
    """Working height (none = the videos', downscaled to max_side)."""
    max_side: int = 256
    """Videos whose longer side exceeds this are downscaled when width/height are not given."""
    schedule: Literal["auto", "paper", "cpu"] = "auto"
    """Iteration counts and MLP size: paper (GPU), cpu (the smaller CPU schedule) or auto (paper on
    CUDA, cpu otherwise); fields below that are set override it."""
    canonical_iterations: int | None = None
    """Canonical-stage steps, warm-up included (paper 23000 = 3000 + 20000; cpu 2400)."""
    warmup_iterations: int | None = None
    """Steps before the per-frame deformation starts (paper 3000; cpu 600)."""
    motion_iterations: int | None = None
    """Temporal-deformation steps (paper 10000; cpu 1200)."""
    deform_depth: int | None = None
    """ReLU layers of both deformation MLPs (paper 8; cpu 4)."""
    deform_width: int | None = None
    """Units per layer (paper 256; cpu 64)."""
    deform_skip: int | None = None
    """Layer that sees the input again (paper 4; cpu 2)."""
    max_gaussians: int | None = None
    """Density control stops adding Gaussians beyond this (paper 500000 here; cpu 5000)."""
    init_points: int = 3000
    """Initial Gaussians when neither SfM nor triangulation gives points (random in the frusta)."""
    sh_degree: int = 3
    """Maximum SH degree of the Gaussians."""
    motion_weight: float = 0.1
    """Weight of the small-motion loss of the per-frame field (paper 0.01; ours 0.1, with
    frame_position_frequencies: at 0.01 the field absorbed a consistent orbit's view differences and
    the held-out canonical views fell from 33.3 dB without the field to 27.3 dB; README)."""
    frame_position_frequencies: int = 3
    """Positional-encoding frequencies of x in the per-frame field w(x, k) (paper 10; ours 3: a
    generated video's inconsistencies are smooth warps, and 10 frequencies gave every Gaussian its own
    per-view offset; with 3 and weight 0.1 the field gains 0.6 dB on a jittered orbit, README)."""
    motion_curriculum: float = 0.0
    """Fraction of the motion steps over which reference frames are added, nearest the canonical
    time first (0 = all at once, the paper's). Without the track loss it made the short schedule learn
    motion at all (a photometric loss only pulls a Gaussian toward image content it overlaps); with
    the tracks all frames at once does better (box pixels 32.2 / 31.8 / 24.4 dB against 31.6 / 29.9 /
    23.0 at 0.5, README)."""
    motion_lr_end: float = 1e-4
    """Final learning rate of the temporal field, decayed from 1e-3 (paper 1e-5 after 10000 steps;
    1e-4 lets the last of a short schedule's steps still move)."""
    time_frequencies: int = 2
    """Positional-encoding frequencies of t in w(x, t) (few: the motion is smooth in time, and a
    smooth encoding lets the field extrapolate from near to far frames)."""
    temporal_position_frequencies: int = 4
    """Positional-encoding frequencies of x in w(x, t) (the paper's L = 10 made neighbouring Gaussians
    of one object move independently; 4 keeps an object's motion coherent)."""
    track_weight: float = 0.01
    """Weight (per pixel) of the motion stage's 2D track loss: visible Gaussians follow the optical-flow
    tracks of their canonical pixels through the reference video (ours, not the paper's: a photometric
    loss cannot move an object beyond its canonical footprint; 0 = off)."""
    trajectory: str = "orbit"
    """Camera path of video.mp4 from the canonical camera: NAME[:key=value] or a camera file."""
    frames: int = 48
    """Frames of video.mp4, fixed_view.mp4 and freeze_time.mp4."""
    time: str = "0..1"
    """Time of video.mp4: T (every frame) or A..B (a ramp)."""
    seed: int = 0
    """Seed of every random choice."""
    fps: int = 24
    """Video frame rate."""


def settings(config: Config, device: torch.device) -> dict:
    """The schedule actually used: ``schedule`` defaults with the fields that were set."""
    name = config.schedule if config.schedule != "auto" else ("paper" if device.type == "cuda" else "cpu")
    base = PAPER if name == "paper" else CPU
    chosen = {k: v if getattr(config, k, None) is None else getattr(config, k) for k, v in base.items()}
    return {"schedule": name, **chosen}


def _check(config: Config) -> None:
    generate.check_generative(config)
    if not 0 < config.fov < 180:
        raise ConfigError(f"--fov must be between 0 and 180 degrees, got {config.fov}")
    for name in ("frames", "init_points", "fps", "max_side"):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    outputs.parse_times(config.time, 2)
    if not 0 <= config.motion_curriculum <= 1:
        raise ConfigError(f"--motion-curriculum must be in [0, 1], got {config.motion_curriculum}")
    if not 0 < config.motion_lr_end <= 1e-3:
        raise ConfigError(f"--motion-lr-end must be in (0, 1e-3], got {config.motion_lr_end}")
    if not (config.track_weight >= 0 and math.isfinite(config.track_weight)):
        raise ConfigError(f"--track-weight must be a finite number ≥ 0, got {config.track_weight}")
    frequencies = (config.time_frequencies, config.temporal_position_frequencies,
                   config.frame_position_frequencies)  # fmt: skip
    if min(frequencies) < 0:
        raise ConfigError("--time-frequencies, --temporal-position-frequencies and "
                          "--frame-position-frequencies must be at least 0")  # fmt: skip
    if not (config.motion_weight >= 0 and math.isfinite(config.motion_weight)):
        raise ConfigError(f"--motion-weight must be a finite number ≥ 0, got {config.motion_weight}")
    if not 0 <= config.sh_degree <= 3:
        raise ConfigError(f"--sh-degree must be 0..3, got {config.sh_degree}")


def load_inputs(config: Config) -> dict:
    """Frames at the working size, cameras in the canonical frame, times and initial points."""
    ref = inputs.read_frames(config.reference_video, "reference video")
    frz = inputs.read_frames(config.freeze_video, "freeze-time video")
    if ref.shape[2:] != frz.shape[2:]:
        raise InputError(f"The reference video is {ref.shape[3]}x{ref.shape[2]} but the freeze-time video is "
                         f"{frz.shape[3]}x{frz.shape[2]}; give both at one size.")  # fmt: skip
    if not 0 <= config.canonical_frame < len(ref):
        raise ConfigError(f"--canonical-frame must be in 0..{len(ref) - 1}, got {config.canonical_frame}")
    H, W = inputs.working_size(ref.shape[2], ref.shape[3], config.max_side, (config.width, config.height))
    full = (frz, ref[config.canonical_frame])  # SfM needs the detail that the working size drops
    ref, frz = inputs.resize_frames(ref, H, W), inputs.resize_frames(frz, H, W)
    c = config.canonical_frame
    match = inputs.canonical_match(frz, ref[c])
    K = Camera.intrinsics_from_fov(config.fov, W, H)
    times = [i / max(len(ref) - 1, 1) for i in range(len(ref))]
    ref_cams = Camera(K.expand(len(ref), 3, 3), torch.eye(4).expand(len(ref), 4, 4), W, H)
    if config.reference_cameras is not None:
        file = inputs.read_camera_file(config.reference_cameras, len(ref), H, W, "reference")
        ref_cams, times = inputs.anchored(file.cameras, c), file.times or times
        K = ref_cams.K[c]
    points = colors = sfm = frz_cams = None
    if config.freeze_cameras is not None:
        file = inputs.read_camera_file(config.freeze_cameras, len(frz), H, W, "freeze")
        frz_cams = inputs.anchored(file.cameras, match)
        points, colors, sfm = inputs.triangulated_points(frz, frz_cams)
    ref_cams = inputs.agree_on_canonical(ref_cams, c, frz_cams, match, config.reference_cameras is not None)
    if frz_cams is None:
        Hf, Wf = full[0].shape[2:]
        K_full = K.clone()
        K_full[0] *= Wf / W
        K_full[1] *= Hf / H
        frz_cams, points, colors, sfm = inputs.sfm_cameras(*full, K_full, config.seed)
        frz_cams = frz_cams.scaled(W, H)
    return {"reference": ref, "freeze": frz, "reference_cameras": ref_cams, "freeze_cameras": frz_cams,
            "times": times, "match": match, "points": points, "colors": colors, "sfm": sfm}  # fmt: skip


def initial_scene(data: dict, config: Config, max_points: int):
    """Canonical Gaussians from SfM points, or with given cameras from points triangulated by
    optical flow (merged, at most ``max_points``), else random points in the freeze-time frusta."""
    from wanderview.scenes.deformable import DeformableGaussianScene
    from wanderview.scenes.gaussians import GaussianScene

    if data["points"] is not None and len(data["points"]) >= MIN_INIT_POINTS:
        points, colors = inputs.thin_points(data["points"], data["colors"], max_points, config.seed)
        source = "SfM points" if config.freeze_cameras is None else "triangulated points"
        how = f"{source} ({len(data['points'])} observations -> {len(points)} merged, cap {max_points})"
    else:
        d, count = inputs.orbit_distance(data["freeze_cameras"]), min(config.init_points, max_points)
        points, colors = inputs.frustum_points(data["freeze_cameras"], data["freeze"], count,
                                               0.3 * d, 2.5 * d, config.seed)  # fmt: skip
        how = f"random in the freeze-time frusta ({count}, depth {0.3 * d:.2f}..{2.5 * d:.2f})"
        if data["points"] is not None:
            how += f": only {len(data['points'])} points were triangulated"
    base = GaussianScene.from_points(points, colors, max_sh_degree=config.sh_degree)
    return DeformableGaussianScene.wrap(base), how


def run(config: Config, out_dir: str | Path, *, overwrite: bool = False, resume: bool = False,
        quiet: bool = False) -> RunResult:  # fmt: skip
    """Run 4Real's reconstruction and write the run folder (see the module docstring)."""
    from wanderview.optim.deformation import FrameDeformation
    from wanderview.optim.fourreal_fit import (
        FrameDeformationFitter,
        MotionConfig,
        TemporalFitter,
        new_temporal_field,
    )
    from wanderview.optim.gaussian_fit import FitConfig, camera_extent

    _check(config)
    sds = fourreal_sds.sds_settings(config)  # None: SDS off
    if resume:
        raise ConfigError("fourreal cannot --resume yet; start the run again (with --overwrite).")
    rt = MethodRun("fourreal", config, out_dir, overwrite=overwrite, quiet=quiet, seed=config.seed,
                   device=config.device, inputs=[config.reference_video, config.freeze_video,
                   config.reference_cameras, config.freeze_cameras])  # fmt: skip
    s = settings(config, rt.device)
    video_model = generate.load_video_model(config, rt.device)  # one object: generation (and SDS)
    text_model = generate.load_text_video_model(config, rt.device, video_model)
    generating = config.reference_video is None or config.freeze_video is None
    if generating:
        given = generate.given_reference(config)
        rt.begin(backends={"video": video_model, "text_video": text_model})
        config = generate.generate_videos(rt, config, video_model, text_model, given)
    with rt.timer("inputs"):
        try:
            data = load_inputs(config)
        except InputError as err:  # e.g. SfM on generated frames: an assumed orbit, else say where they are
            if not generating:
                raise
            config = generate.sfm_fallback(rt, config, err)
            data = load_inputs(config)
        scene, init_how = initial_scene(data, config, s["max_gaussians"])
    videos = "videos generated (see backends.generation)" if generating else "both videos were given"
    notes = [f"{videos}; {fourreal_sds.describe(sds, video_model)}",
             "deformation fields predict (dx, dq); the paper's ds scale offsets are left out",
             "motion stage: no extra GS growth and no joint fine-tuning (paper supplementary C 2b-2c)",
             f"motion stage (ours, not the paper's): 2D optical-flow track loss weight "
             f"{config.track_weight:g}, curriculum {config.motion_curriculum:g}, w(x, t) with "
             f"{config.time_frequencies} t and "
             f"{config.temporal_position_frequencies} x frequencies, lr 1e-3 -> {config.motion_lr_end:g}",
             f"per-frame field (ours, not the paper's 0.01 and L = 10): small-motion weight "
             f"{config.motion_weight:g}, {config.frame_position_frequencies} x frequencies",
    ]  # fmt: skip
    if s["schedule"] == "cpu":
        notes.append("CPU schedule (weaker than the paper's): {canonical_iterations} canonical / "
                     "{warmup_iterations} warm-up / {motion_iterations} motion steps, {deform_depth}x"
                     "{deform_width} MLPs, <= {max_gaussians} Gaussians densified every "
                     "{min_densify_interval} steps (the paper: 23000 / 3000 / 10000, 8x256, every "
                     "100)".format(**s))  # fmt: skip
    rt.manifest.notes.extend(notes)
    found = {"init": {"how": init_how}, "sfm": data["sfm"], "schedule": s}
    if generating:
        rt.manifest.backends.update({k: v for k, v in found.items() if v is not None})
    else:
        rt.begin(backends={"video": video_model, **found})
    frz, frz_cams = data["freeze"], data["freeze_cameras"]
    extent = camera_extent(frz_cams)
    means = scene.means.detach()
    lo, hi = means.quantile(0.02, dim=0), means.quantile(0.98, dim=0)
    frame_field = FrameDeformation(len(frz), data["match"], (lo + hi) / 2, float((hi - lo).max() / 2),
                                   s["deform_depth"], s["deform_width"], s["deform_skip"],
                                   config.frame_position_frequencies)  # fmt: skip
    fit = FitConfig(iterations=s["canonical_iterations"], seed=config.seed, max_gaussians=s["max_gaussians"],
                    min_densify_interval=s["min_densify_interval"])  # fmt: skip
    sds_canonical, sds_motion = fourreal_sds.stage_hooks(video_model, sds, data, s, config.canonical_frame)
    fitter = FrameDeformationFitter(scene, frz_cams, frz, fit, frame_field, s["warmup_iterations"],
                                    config.motion_weight, extent=extent, sds=sds_canonical)  # fmt: skip
    with rt.timer("canonical"):
        fitter.fit(progress=not quiet)
    scene.frames = frame_field.eval()
    ref, ref_cams, times = data["reference"], data["reference_cameras"], data["times"]
    scene.temporal = new_temporal_field(scene, times[config.canonical_frame], s["deform_depth"],
                                        s["deform_width"], s["deform_skip"],
                                        config.temporal_position_frequencies,
                                        config.time_frequencies)  # fmt: skip
    motion_config = MotionConfig(iterations=s["motion_iterations"], lr_end=config.motion_lr_end,
                                 curriculum=config.motion_curriculum, track_weight=config.track_weight,
                                 seed=config.seed)  # fmt: skip
    tracks = None
    if config.track_weight > 0:
        from wanderview.geometry.flow import chained_tracks

        with rt.timer("tracks"):
            tracks = chained_tracks(ref, config.canonical_frame)
    motion = TemporalFitter(scene, ref_cams, ref, times, motion_config, tracks=tracks,
                            sds=sds_motion)  # fmt: skip
    with rt.timer("motion"):
        motion.fit(progress=not quiet)
    scene.temporal.eval()
    rt.manifest.backends["sds"] = fourreal_sds.manifest_entry(sds, video_model, sds_canonical, sds_motion)
    rt.manifest.backends["metrics"] = outputs.training_psnr(scene, data)
    rt.manifest.backends["gaussians"] = len(scene)
    outputs.write_outputs(rt, scene, data, config, s)
    return rt.finish(config.frames, scene="gaussians.ply")
