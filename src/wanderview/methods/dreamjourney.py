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
  usable answer the paper's default prompt is used (and noted). CPU fallback (``video_model="none"``):
  makeit4d's Eulerian animation of the view (journey_steps.eulerian_clip; the ``motion`` options as in
  makeit4d, default ``sky:1,0``: the farthest depth layer drifts), a seamless loop of
  ``dynamic_frames`` frames; ``motion="none"`` skips it like ``dynamics=False``.

Resume: the run checkpoints after every stage (``checkpoint_every`` stages); a killed run continues
with the next stage.

The run folder: frames in time order (each stage's first frame is the previous stage's last one and
is not repeated), depth/ (the cloud's rendered depth; the static scene's for dynamics frames), masks/
(holes before filling), cameras.json, points.ply (the whole journey's cloud), agent.json, stages.json
(which frames belong to which stage and round), video.mp4, config.json, manifest.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from tqdm import tqdm

from wanderview.backends import agent_prompts
from wanderview.backends.agent import imagine_entities, inpaint_prompt, motion_prompt
from wanderview.cameras.camera import Camera
from wanderview.errors import ConfigError, InputError
from wanderview.methods import journey_steps as steps
from wanderview.methods.common import ModelLoading, RunResult, resize_cover, scene_scale
from wanderview.methods.motion import MotionOptions, read_motion
from wanderview.methods.runtime import MethodRun
from wanderview.optim.guided_video import GuidanceSettings, guided_sample


@dataclass(frozen=True)
class Config(MotionOptions, ModelLoading):
    """Everything a dreamjourney run needs; defaults are the paper's where it gives them. The motion
    options (--motion, --motion-mask, ...) are makeit4d's (methods/motion.MotionOptions); they drive
    Stage II of the CPU fallback only."""

    image: Path
    """The input view (PNG, JPEG, ...)."""
    rounds: int = 3
    """Rounds of Stage I (spatial transition) + Stage II (temporal dynamics)."""
    frames: int = 48
    """T: frames of each spatial transition, its first view included (the paper: 48)."""
    dynamic_frames: int = 48
    """Frames of each temporal-dynamics clip (the paper: 48)."""
    dynamics: bool = True
    """Stage II; --no-dynamics gives the static journey."""
    motion: str = field(default="sky:1,0", kw_only=True)
    """Stage II of the CPU fallback (no video model): 'sky:DX,DY' (the farthest depth layer drifts DX,DY
    px/frame), a labelme-style hints .json file, or 'none' (Stage II skipped); --motion-mask with
    --motion-vector and --motion-video as in makeit4d, on the frame grid of every dynamics view."""
    width: int = 512
    """Frame width."""
    height: int = 512
    """Frame height."""
    focal: float = 500.0
    """Focal length in pixels at 512 px width (scaled with ``width``)."""
    video_model: str = "none"
    """hf:<image-to-video pipeline: Wan I2V, Wan VACE (1.3B fits a 24 GB GPU) or Stable Video
    Diffusion>, or none: the CPU fallback (Stage I = the paper's iterative-inpainting ablation
    baseline, Stage II = makeit4d's Eulerian animation, see ``motion``)."""
    video_adapter: str = "auto"
    """Adapter of the video model: auto (from the checkpoint's pipeline class), wan, vace or svd."""
    video_steps: int = 50
    """Denoising steps of the video model."""
    guidance_scale: float | None = None
    """Classifier-free guidance of the video model (none: the adapter's default, Wan 5.0, SVD 3.0)."""
    guidance_lr: float = 0.025
    """Render guidance weight: the normalised gradient step on x_t is guidance_lr * sqrt(sigma_t)."""
    renoise_rounds: int = 15
    """Model calls per guided denoising step, each but the last followed by renoising (RePaint)."""
    early_stop: float = 0.2
    """Fraction of the last denoising steps that run without the render prior (early stopping)."""
    pad_views: int = 4
    """Copies of the first and the last prior view added at each end and cut after sampling."""
    visible_threshold: float = 0.8
    """A latent cell is guided when more than this fraction of its pixels is rendered."""
    condition_last_frame: bool = False
    """Also condition the video model on the inpainted end view (Wan first+last-frame models such as
    Wan2.1-FLF2V; the paper's model sees the first frame only)."""
    vlm: str | None = None
    """Vision-language agent: hf:<id or folder> or openai:<model> (any OpenAI-compatible server);
    none = the paper's default motion prompt naming ``entities``."""
    entities: str = ""
    """Comma-separated possible dynamic entities, used without an agent and when its answer is unusable."""
    depth_model: str = "heuristic"
    """Depth backend: heuristic (a WEAK built-in prior) or hf:<id or folder> (the paper: MiDaS/DPT,
    e.g. hf:Intel/dpt-large)."""
    inpainter: str = "patchmatch"
    """Inpainter of the end view (and of every frame on CPU): patchmatch, telea, ns or hf:<SD
    inpainting id or folder>."""
    camera_motion: Literal["linear", "rotate", "alternate"] = "alternate"
    """Transition camera: linear (back, with a random height bump), rotate (yaw plus a small move
    back), or alternate (linear first)."""
    linear_distance: float = 0.5
    """Backward move of a linear transition, in near-depth units (the paper's 0.0005 is in MiDaS
    units)."""
    linear_height: float = 0.05
    """Largest sinusoidal height bump of a linear transition, in near-depth units."""
    rotate_angle: float = 0.45
    """Yaw of a rotate transition in radians (the paper: 0.45)."""
    rotate_distance: float = 0.1
    """Backward move of a rotate transition, in near-depth units."""
    path_unit_quantile: float = 0.1
    """Depth quantile of the first view that is one unit of camera motion (near content)."""
    seed: int = 0
    """Seed of every random choice (per round and stage, so a resumed run gives the same frames)."""
    fps: int = 24
    """Video frame rate."""
    checkpoint_every: int = 1
    """Save resume state after every this many stages."""

    @property
    def guidance(self) -> GuidanceSettings:
        """Stage I's render-guidance settings."""
        return GuidanceSettings(
            lr=self.guidance_lr,
            renoise_rounds=self.renoise_rounds,
            early_stop=self.early_stop,
            pad_views=self.pad_views,
            visible_threshold=self.visible_threshold,
            use_last_frame=self.condition_last_frame,
        )

    @property
    def entity_list(self) -> list[str]:
        """``entities`` split at commas."""
        return [e.strip() for e in self.entities.split(",") if e.strip()]


def _check(config: Config) -> None:
    if not Path(config.image).is_file():
        raise InputError(f"the image {config.image} does not exist")
    if config.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {config.rounds}")
    if config.frames < 2 or config.dynamic_frames < 2:
        raise ConfigError(
            f"need at least 2 frames per stage, got {config.frames} and {config.dynamic_frames}"
        )
    if config.width < 16 or config.height < 16 or config.focal <= 0:
        raise ConfigError(f"need a size of at least 16x16 and focal > 0, got {config.width}x{config.height}")
    config.check_motion()
    if config.video_steps < 1:
        raise ConfigError(f"--video-steps must be at least 1, got {config.video_steps}")
    if not 0.0 <= config.early_stop <= 1.0:
        raise ConfigError(f"--early-stop must be between 0 and 1, got {config.early_stop}")
    try:
        config.guidance  # noqa: B018 - the settings check their own ranges
    except ValueError as err:
        raise ConfigError(str(err)) from None


def run(
    config: Config, out_dir: Path, *, overwrite: bool = False, resume: bool = False, quiet: bool = False
) -> RunResult:
    """Generate a DreamJourney into the run folder ``out_dir`` (see the module docstring)."""
    from wanderview.io.images import read_image

    _check(config)
    # the motion source is read and checked before anything is written
    motion = read_motion(config, config.image, config.height, config.width, seed=config.seed)
    rt = MethodRun(
        "dreamjourney",
        config,
        out_dir,
        overwrite=overwrite,
        resume=resume,
        quiet=quiet,
        inputs=[config.image, config.motion_mask, config.motion_video],
        seed=config.seed,
        device=config.device,
        checkpoint_every=config.checkpoint_every,
    )
    depth_model, inpainter, adapter, vlm = steps.load_backends(config, rt.device)
    rgb = resize_cover(read_image(config.image), config.height, config.width).to(rt.device)
    camera = Camera.from_focal(config.focal * config.width / 512.0, config.width, config.height).to(rt.device)

    rt.begin({"depth": depth_model, "inpainter": inpainter, "video": adapter, "vlm": vlm})
    if adapter is not None:
        rt.manifest.backends["video"]["adapter"] = adapter.name
    rt.manifest.notes.extend(steps.manifest_notes(config, adapter, motion[0]))
    journey = _Journey(config, rt, depth_model, inpainter, adapter, vlm)
    journey.motion = motion
    # the plan: Stage I and Stage II alternate for config.rounds rounds
    dynamics = config.dynamics and (adapter is not None or motion[0] != "none")
    plan = [
        (r, stage)
        for r in range(config.rounds)
        for stage in ("transition", "dynamics")
        if stage == "transition" or dynamics
    ]
    state = rt.resume_state()
    if state is not None:
        rgb, depth, camera, unit = journey.load_state_dict(state)
        start = int(state["step"]) + 1
    else:
        with rt.timer("first_view"):
            depth = steps.depth_of(depth_model, rgb, None, None)
        unit = scene_scale(depth, config.path_unit_quantile)
        journey.write(rgb, depth, torch.zeros_like(depth, dtype=torch.bool), camera)
        start = 0
    for k in rt.progress(range(start, len(plan)), "stages"):
        r, stage = plan[k]
        if stage == "transition":
            rgb, depth, camera = journey.spatial_transition(r, rgb, depth, camera, _motion(config, r), unit)
        else:
            rgb, depth = journey.temporal_dynamics(r, rgb, depth, camera)
        view = (rgb, depth, camera, unit)
        rt.checkpoint(k, lambda view=view: journey.state_dict(*view), last=k == len(plan) - 1)

    journey.finish()
    rt.manifest.notes.append(f"journey cloud: {len(journey.cloud)} points")
    return rt.finish(journey.count, scene="points.ply")


def _motion(config: Config, round_index: int) -> str:
    """The camera motion of a round: alternate starts with linear."""
    if config.camera_motion != "alternate":
        return config.camera_motion
    return "linear" if round_index % 2 == 0 else "rotate"


class _Journey(steps.JourneyRecord):
    """The journey's two stages on top of its record (frames, cameras, stages, cloud, agent log)."""

    def spatial_transition(self, r, rgb, depth, camera, motion, unit):
        """Stage I from the current view; returns the last frame, its depth and its camera."""
        config, rt = self.config, self.rt
        seed = config.seed + 1000 * r
        if self.vlm is not None:
            with rt.timer("agent"):
                self.entities = imagine_entities(self.vlm, rgb, self.agent, config.entity_list)
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
            rng=torch.Generator().manual_seed(seed),
        )
        with rt.timer("lift"):
            cloud = steps.lift(rgb, depth, camera)
            # the end view: render C_T, inpaint it with the entity prompt, merge its new points
            end_rgb, end_depth, _ = steps.inpaint_and_merge(
                cloud, cams[-1], self.inpainter, self.depth_model, prompt, seed
            )
        first = self.count - 1
        bar = tqdm(
            total=config.frames - 1,
            desc=f"round {r + 1} transition",
            unit="frame",
            leave=False,
            disable=rt.quiet,
        )
        if self.adapter is None:
            for i in range(1, config.frames):
                with rt.timer("inpaint_merge"):
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
        """Stage I steps 2-3: the prior video from the cloud (Telea in its holes), then guided sampling."""
        T = self.config.frames
        with self.rt.timer("render_prior"):
            views = [steps.render_view(cloud, cams[i]) for i in range(1, T - 1)]
            prior = torch.stack([rgb] + [steps.telea(v[0], v[2]) for v in views] + [end_rgb])
            ones = torch.ones_like(rgb[:1])
            visible = torch.stack([ones] + [(~v[2]).float() for v in views] + [ones])
            depths = [None] + [v[1] for v in views] + [end_depth]
            holes = [None] + [v[2] for v in views] + [torch.zeros_like(end_depth, dtype=torch.bool)]
        with self.rt.timer("guided_sampling"):
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

    def temporal_dynamics(self, r, rgb, depth, camera):
        """Stage II: the agent's motion prompt, then unguided image-to-video from a still camera
        (without a video model: the Eulerian animation)."""
        config, rt = self.config, self.rt
        if self.adapter is None:
            return self._eulerian_dynamics(r, rgb, depth, camera)
        with rt.timer("agent"):
            prompt = motion_prompt(self.vlm, rgb, self.entities, self.agent)
        if self.vlm is None:
            rt.manifest.notes.append(f"round {r + 1}: no vision-language model, the default motion prompt")
        first = self.count - 1
        with rt.timer("dynamics"):
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
        return last, steps.depth_of(self.depth_model, last, static_depth, torch.isfinite(static_depth))

    def _eulerian_dynamics(self, r, rgb, depth, camera):
        """Stage II of the CPU fallback: makeit4d's Eulerian animation of the view (the agent's prompt,
        when there is an agent, is recorded but cannot steer it)."""
        config, rt = self.config, self.rt
        extra = {"source": "Eulerian animation (CPU fallback)", "flow": config.motion}
        if self.motion[0] == "flow":
            extra["flow"] = "from --motion-mask/--motion-video/hints"
        if self.vlm is not None:
            with rt.timer("agent"):
                extra["prompt"] = motion_prompt(self.vlm, rgb, self.entities, self.agent)
            extra["prompt_used"] = False
        first = self.count - 1
        with rt.timer("dynamics"):
            clip = steps.eulerian_clip(rgb, depth, camera, self.motion, config.dynamic_frames)
        static_depth = steps.render_view(self.cloud, camera)[1]
        for frame, holes in clip[1:]:
            self.write(frame, static_depth, holes, camera)
        self._record("dynamics", r, first, loop_frames=config.dynamic_frames, **extra)
        last = clip[-1][0]
        return last, steps.depth_of(self.depth_model, last, static_depth, torch.isfinite(static_depth))
