"""dreamjourney: perpetual journeys with camera motion and object dynamics (Pan et al., DreamJourney).

Each of ``rounds`` rounds runs two stages, starting from the current view (the input image first, then
the last frame of the previous round):

Stage I - spatial transition (``frames`` frames).
  1. Lift the current view to a point cloud (depth backend, aligned to the journey's cloud after the
     first round). Choose the end camera C_T (``linear``: move back with a random sinusoidal height
     bump; ``rotate``: 0.45 rad yaw plus a small backward move; ``alternate``: linear, rotate, ...), in
     units of the first view's near depth. Render C_T, inpaint it with a prompt listing plausible
     entities (the agent's, else ``entities``) and merge its new points, depth aligned to the cloud.
  2. Render C_1..C_{T-1} with visibility masks; pre-fill their holes with Telea: the prior video.
  3. Guided sampling of the image-to-video model (optim/guided_video.py: x0_hat guidance on the known
     latent cells, ``renoise_rounds`` RePaint rounds, early stopping, view padding), prompt "a camera
     flyover, cruising steadily across the scene".
  CPU fallback (``video_model="none"``): the paper's ablation baseline, WonderJourney-style iterative
  2D inpainting - every camera of the path renders the cloud, inpaints its holes (``inpainter``),
  gives them aligned depth and merges them into the cloud.

Stage II - temporal dynamics (``dynamic_frames`` frames, camera still at C_T).
  The agent (backends/agent.py, the paper's three-step chain of thought) writes a motion prompt for
  the current view, and the video model animates it from that prompt, without guidance. Without a
  usable answer the paper's default prompt is used (and noted). CPU: skipped with a manifest note,
  because makeit4d's Eulerian animation (the planned CPU stand-in) is not in this tree yet.

The run folder: frames in time order (each stage's first frame is the previous stage's last one and is
not repeated), depth/ (the cloud's rendered depth; the static scene's for dynamics frames), masks/
(holes before filling), cameras.json, points.ply (the whole journey's cloud), agent.json, stages.json
(which frames belong to which stage and round), video.mp4, config.json, manifest.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from wanderview.backends import agent_prompts
from wanderview.backends.agent import AgentLog, imagine_entities, inpaint_prompt, motion_prompt
from wanderview.cameras.camera import Camera
from wanderview.errors import ConfigError, InputError
from wanderview.io.rundir import Manifest, RunDir
from wanderview.methods import journey_steps as steps
from wanderview.methods.common import (
    ModelLoading,
    RunResult,
    config_to_json,
    describe_backend,
    resize_cover,
    scene_scale,
)
from wanderview.optim.guided_video import GuidanceSettings, guided_sample

CPU_STAGE1 = (
    "no video model: Stage I is the paper's ablation baseline (WonderJourney-style iterative 2D "
    "inpainting, depth and point-cloud merge per frame), not guided video diffusion"
)
CPU_STAGE2 = (
    "no video model: Stage II (temporal dynamics) skipped; its CPU stand-in, makeit4d's Eulerian "
    "animation, is not available in this version"
)


@dataclass(frozen=True)
class Config(ModelLoading):
    """Everything a dreamjourney run needs; defaults are the paper's where it gives them."""

    image: Path | None = None
    """The input view."""
    rounds: int = 3
    """Rounds of Stage I + Stage II."""
    frames: int = 48
    """T: frames of each spatial transition (the paper: 48)."""
    dynamic_frames: int = 48
    """Frames of each temporal-dynamics clip (the paper: 48)."""
    dynamics: bool = True
    """False = the static journey (no Stage II)."""
    width: int = 512
    height: int = 512
    focal: float = 500.0
    """Focal length in pixels at 512 px width (scaled with ``width``)."""
    video_model: str = "none"
    """hf:<image-to-video pipeline> (Wan I2V, Wan VACE or Stable Video Diffusion), or none (CPU fallback)."""
    video_adapter: str = "auto"
    """auto (from the checkpoint's pipeline class), wan, vace or svd."""
    video_steps: int = 50
    """Denoising steps of the video model."""
    guidance_scale: float | None = None
    """Classifier-free guidance of the video model (None: the adapter's default, Wan 5.0, SVD 3.0)."""
    guidance: GuidanceSettings = GuidanceSettings()
    """Render guidance of Stage I (lr 0.025, 15 renoising rounds, early stop 20 %, 4 padded views)."""
    vlm: str | None = None
    """Vision-language agent: hf:<id or folder> or openai:<model>; None = default prompt + ``entities``."""
    entities: tuple[str, ...] = ()
    """Possible dynamic entities when there is no agent (also the fallback of an unusable answer)."""
    depth_model: str = "heuristic"
    """Depth backend (the paper: MiDaS/DPT, e.g. hf:Intel/dpt-large; heuristic is a weak CPU stand-in)."""
    inpainter: str = "patchmatch"
    """Inpainter of the end view (and of every frame on CPU): patchmatch, telea, hf:<SD inpainting>."""
    camera_motion: str = "alternate"
    """linear, rotate, or alternate (linear first)."""
    linear_distance: float = 0.5
    """Backward move of a linear transition, in near-depth units (the paper's 0.0005 is in MiDaS units)."""
    linear_height: float = 0.05
    """Largest sinusoidal height bump of a linear transition, in near-depth units."""
    rotate_angle: float = 0.45
    """Yaw of a rotate transition in radians (the paper: 0.45)."""
    rotate_distance: float = 0.1
    """Backward move of a rotate transition, in near-depth units."""
    path_unit_quantile: float = 0.1
    """Depth quantile of the first view that is one unit of motion (near content)."""
    seed: int = 0
    fps: int = 24


def _check(config: Config) -> None:
    if config.image is None or not Path(config.image).is_file():
        raise InputError(f"the image {config.image} does not exist")
    if config.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {config.rounds}")
    if config.frames < 2 or config.dynamic_frames < 2:
        raise ConfigError(
            f"need at least 2 frames per stage, got {config.frames} and {config.dynamic_frames}"
        )
    if config.width < 16 or config.height < 16 or config.focal <= 0:
        raise ConfigError(f"need a size of at least 16x16 and focal > 0, got {config.width}x{config.height}")
    if config.camera_motion not in steps.MOTIONS:
        raise ConfigError(
            f"--camera-motion must be one of {', '.join(steps.MOTIONS)}, got {config.camera_motion!r}"
        )
    if config.video_steps < 1:
        raise ConfigError(f"--video-steps must be at least 1, got {config.video_steps}")


def _load_backends(config: Config):
    """Depth, inpainter, video adapter (or None) and agent (or None); bad specs fail here."""
    from wanderview.backends.registry import make_depth_model, make_inpainter, make_vision_language

    loading = config.loading_options()
    depth_model = make_depth_model(config.depth_model, **loading)
    inpainter = make_inpainter(config.inpainter, **loading)
    adapter = None
    if config.video_model != "none":
        from wanderview.backends.video_adapters import make_video_adapter

        adapter = make_video_adapter(
            config.video_model, config.video_adapter, config.video_steps, config.guidance_scale, **loading
        )
        _ = adapter.pipe  # weights that do not load fail now, before the run folder exists
    vlm = make_vision_language(config.vlm, **loading) if config.vlm else None
    return depth_model, inpainter, adapter, vlm


def run(
    config: Config, out_dir: Path, *, overwrite: bool = False, resume: bool = False, quiet: bool = False
) -> RunResult:
    """Generate a DreamJourney into the run folder ``out_dir`` (see the module docstring)."""
    from wanderview.io.images import read_image

    _check(config)
    if resume:
        raise ConfigError("dreamjourney cannot resume a killed run yet; start again with --overwrite")
    t_start = time.perf_counter()
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    depth_model, inpainter, adapter, vlm = _load_backends(config)
    RunDir.check(out_dir, overwrite=overwrite)
    rgb = resize_cover(read_image(config.image), config.height, config.width).to(device)
    camera = Camera.from_focal(config.focal * config.width / 512.0, config.width, config.height).to(device)

    rundir = RunDir.create(out_dir, overwrite=overwrite)
    manifest = Manifest(seed=config.seed, device=str(device))
    backends = {"depth": depth_model, "inpainter": inpainter, "video": adapter, "vlm": vlm}
    manifest.backends = {name: describe_backend(b) for name, b in backends.items() if b is not None}
    if adapter is not None:
        manifest.backends["video"]["adapter"] = adapter.name
        if config.guidance.use_last_frame and not getattr(adapter, "supports_last_frame", False):
            manifest.notes.append(f"{adapter.name}: the model takes no last frame; it sees the first only")
        if config.dynamics and not adapter.uses_prompt:
            manifest.notes.append(
                f"the {adapter.name} video model takes no text: Stage II's motion prompt is "
                "recorded but cannot steer it"
            )
    else:
        manifest.notes.append(CPU_STAGE1)
        if config.dynamics:
            manifest.notes.append(CPU_STAGE2)
    rundir.write_json("config.json", {"method": "dreamjourney", **config_to_json(config)})

    journey = _Journey(config, rundir, manifest, depth_model, inpainter, adapter, vlm, quiet)
    with manifest.timer("first_view"):
        depth = steps.depth_of(depth_model, rgb, None, None)
    unit = scene_scale(depth, config.path_unit_quantile)
    journey.write(rgb, depth, torch.zeros_like(depth, dtype=torch.bool), camera)
    for r in range(config.rounds):
        motion = _motion(config.camera_motion, r)
        rgb, depth, camera = journey.spatial_transition(r, rgb, depth, camera, motion, unit)
        if config.dynamics and adapter is not None:
            rgb, depth = journey.temporal_dynamics(r, rgb, camera)

    with manifest.timer("write"):
        journey.finish()
    manifest.frames = journey.count
    manifest.notes.append(f"journey cloud: {len(journey.cloud)} points")
    manifest.timings["total"] = time.perf_counter() - t_start
    manifest.write(rundir)
    final = rundir.finalize()
    return RunResult(final, journey.count, final / "video.mp4", final / "points.ply", dict(manifest.timings))


def _motion(choice: str, round_index: int) -> str:
    if choice != "alternate":
        return choice
    return "linear" if round_index % 2 == 0 else "rotate"


class _Journey:
    """The growing run: frames written so far, cameras, stage records, the journey cloud, the agent log."""

    def __init__(self, config, rundir, manifest, depth_model, inpainter, adapter, vlm, quiet):
        self.config, self.rundir, self.manifest = config, rundir, manifest
        self.depth_model, self.inpainter, self.adapter, self.vlm = depth_model, inpainter, adapter, vlm
        self.quiet, self.count, self.cameras, self.stages = quiet, 0, [], []
        self.cloud = None
        self.agent = AgentLog(model=getattr(vlm, "description", "none"))
        self.entities = list(config.entities)
        self.generator = torch.Generator().manual_seed(config.seed)

    def write(self, rgb, depth, holes, camera) -> None:
        self.rundir.write_frame(self.count, rgb, depth, holes)
        self.cameras.append(camera)
        self.count += 1

    def _record(self, stage: str, round_index: int, first: int, **extra) -> None:
        self.stages.append(
            {"stage": stage, "round": round_index, "start": first, "end": self.count - 1, **extra}
        )

    def spatial_transition(self, r, rgb, depth, camera, motion, unit):
        """Stage I from the current view; returns the last frame, its depth and camera."""
        config, manifest = self.config, self.manifest
        seed = config.seed + 1000 * r
        if self.vlm is not None:
            with manifest.timer("agent"):
                self.entities = imagine_entities(self.vlm, rgb, self.agent, list(config.entities))
        prompt = inpaint_prompt(self.entities)
        cams = steps.transition_cameras(
            camera,
            config.frames,
            motion,
            unit,
            distance=config.linear_distance,
            angle=config.rotate_angle,
            rotate_distance=config.rotate_distance,
            height=config.linear_height,
            rng=self.generator,
        )
        with manifest.timer("lift"):
            cloud = steps.lift(rgb, depth, camera)
            # the end view: render C_T, inpaint with the entity prompt, merge its new points
            end_rgb, end_depth, end_holes = steps.inpaint_and_merge(
                cloud, cams[-1], self.inpainter, self.depth_model, prompt, seed
            )
        first = self.count - 1
        bar = tqdm(
            total=config.frames - 1, desc=f"round {r + 1} transition", unit="frame", disable=self.quiet
        )
        if self.adapter is None:
            for i in range(1, config.frames):
                with manifest.timer("inpaint_merge"):
                    frame, frame_depth, holes = steps.inpaint_and_merge(
                        cloud, cams[i], self.inpainter, self.depth_model, prompt, seed + i
                    )
                self.write(frame, frame_depth, holes, cams[i])
                bar.update()
            extra = {"source": "iterative inpainting (CPU fallback)"}
        else:
            frames, depths, holes, extra = self._guided_clip(rgb, end_rgb, end_depth, cloud, cams, seed, bar)
            for i in range(1, config.frames):
                self.write(frames[i], depths[i], holes[i], cams[i])
            bar.update(config.frames - 1)
            frame, frame_depth = frames[-1], depths[-1]
        bar.close()
        self._record("transition", r, first, motion=motion, inpaint_prompt=prompt, **extra)
        if self.cloud is None:
            self.cloud = cloud
        else:
            steps.merge(self.cloud, cloud)
        return frame, frame_depth, cams[-1]

    def _guided_clip(self, rgb, end_rgb, end_depth, cloud, cams, seed, bar):
        """Stage I steps 2-3: the prior video from the cloud, then guided sampling."""
        T = self.config.frames
        with self.manifest.timer("render_prior"):
            views = [steps.render_view(cloud, cams[i]) for i in range(1, T - 1)]
            prior = torch.stack([rgb] + [steps.telea(v[0], v[2]) for v in views] + [end_rgb])
            visible = torch.stack(
                [torch.ones_like(rgb[:1])] + [(~v[2]).float() for v in views] + [torch.ones_like(rgb[:1])]
            )
            depths = [None] + [v[1] for v in views] + [end_depth]
            holes = [None] + [v[2] for v in views] + [torch.zeros_like(end_depth, dtype=torch.bool)]
        with self.manifest.timer("guided_sampling"):
            result = guided_sample(
                self.adapter,
                rgb,
                agent_prompts.TRANSITION_PROMPT,
                T,
                prior=prior,
                visibility=visible,
                settings=self.config.guidance,
                seed=seed,
                progress=lambda i, n: bar.set_postfix(step=f"{i}/{n}"),
            )
        extra = {
            "source": f"guided {self.adapter.name} sampling",
            "steps": result.steps,
            "guided_steps": result.guided_steps,
            "model_calls": result.model_calls,
            "renoises": result.renoises,
            "model_frames": result.model_frames,
            "known_fraction": round(result.known_fraction, 4),
            "prior_distance": [round(d, 5) for d in result.prior_distance],
        }
        return result.frames.to(rgb), depths, holes, extra

    def temporal_dynamics(self, r, rgb, camera):
        """Stage II: the agent's motion prompt, then unguided image-to-video at a still camera."""
        config, manifest = self.config, self.manifest
        with manifest.timer("agent"):
            prompt = motion_prompt(self.vlm, rgb, self.entities, self.agent)
        if self.vlm is None:
            manifest.notes.append(f"round {r + 1}: no vision-language model, default motion prompt")
        first = self.count - 1
        with manifest.timer("dynamics"):
            result = guided_sample(
                self.adapter, rgb, prompt, config.dynamic_frames, seed=config.seed + 1000 * r + 500
            )
        static_depth = steps.render_view(self.cloud, camera)[1]
        for frame in result.frames[1:].to(rgb):
            self.write(frame, static_depth, torch.zeros_like(static_depth, dtype=torch.bool), camera)
        self._record(
            "dynamics", r, first, prompt=prompt, prompt_used=self.adapter.uses_prompt, steps=result.steps
        )
        last = result.frames[-1].to(rgb)
        # the next transition lifts this frame: its depth is predicted and aligned to the cloud
        known = torch.isfinite(static_depth)
        return last, steps.depth_of(self.depth_model, last, static_depth, known)

    def finish(self) -> None:
        from wanderview.io.cameras import write_transforms_json
        from wanderview.io.video import write_video

        n = self.count
        write_video(
            self.rundir.path("video.mp4"),
            (self.rundir.read_frame(i)[0] for i in range(n)),
            fps=self.config.fps,
        )
        write_transforms_json(
            self.rundir.path("cameras.json"),
            Camera.stack(self.cameras).to("cpu"),
            [f"frames/{i:05d}.png" for i in range(n)],
        )
        self.cloud.save(self.rundir.path("points.ply"))
        self.rundir.write_json("stages.json", {"frames": n, "stages": self.stages})
        self.rundir.write_json("agent.json", self.agent.to_dict())
        self.manifest.notes.extend(f"agent: {note}" for note in self.agent.notes)
