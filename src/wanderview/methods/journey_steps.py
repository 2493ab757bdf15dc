"""The steps and plumbing of a DreamJourney, kept apart so that methods/dreamjourney.py reads like the
paper: loading the backends and the manifest's notes on fallbacks, the transition cameras, render ->
fill -> depth -> merge on a point cloud, the CPU Stage II (Eulerian animation), and the journey's
bookkeeping (frames, stages, resume state, final files).
"""

from __future__ import annotations

import math

import torch

from wanderview.backends.protocols import to_depth
from wanderview.cameras.camera import Camera
from wanderview.geometry.align import align_depth
from wanderview.geometry.fill import fill_depth_from_background
from wanderview.geometry.flow import constant_flow
from wanderview.geometry.masks import dilate, open_mask
from wanderview.scenes.layered_points import animate_image
from wanderview.scenes.points import PointScene

MOTIONS = ("linear", "rotate", "alternate")

CPU_STAGE1 = (
    "no video model: Stage I is the paper's ablation baseline (WonderJourney-style iterative 2D "
    "inpainting, depth and point-cloud merge per frame), not guided video diffusion"
)
CPU_STAGE2 = (
    "no video model: Stage II (temporal dynamics) is makeit4d's Eulerian animation ({motion}) of the "
    "view in {layers} depth layers, not image-to-video diffusion; the motion prompt does not steer it"
)
CPU_NO_MOTION = "no video model and --motion none: Stage II (temporal dynamics) skipped"


def _yaw(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def transition_cameras(
    start: Camera,
    frames: int,
    motion: str,
    unit: float,
    *,
    distance: float,
    angle: float,
    rotate_distance: float,
    height: float,
    rng: torch.Generator,
) -> Camera:
    """The cameras C_0..C_{frames-1} of one transition, relative to ``start`` (a single camera).

    linear: move back ``distance`` units along the view axis, the intermediate cameras raised by a
    sinusoidal bump of random amplitude in [-height, height] units (zero at both ends); rotate: turn by
    ``angle`` radians (random sign) while moving back ``rotate_distance`` units. One unit = ``unit``
    (the scene's near depth). Returns a batch of ``frames`` cameras (OpenCV axes, cam_to_world).
    """
    t = torch.linspace(0.0, 1.0, frames) if frames > 1 else torch.ones(1)
    eased = t * t * (3 - 2 * t)  # starts and ends gently
    poses = []
    if motion == "linear":
        bump = (2 * torch.rand(1, generator=rng).item() - 1) * height
        for ti, ei in zip(t.tolist(), eased.tolist()):
            rel = torch.eye(4)
            rel[2, 3] = -distance * unit * ei
            rel[1, 3] = -bump * unit * math.sin(math.pi * ti)
            poses.append(rel)
    elif motion == "rotate":
        sign = 1.0 if torch.rand(1, generator=rng).item() < 0.5 else -1.0
        for ei in eased.tolist():
            rel = torch.eye(4)
            rel[:3, :3] = _yaw(sign * angle * ei)
            rel[:3, 3] = rel[:3, 2] * (-rotate_distance * unit * ei)
            poses.append(rel)
    else:
        raise ValueError(f"motion must be linear or rotate, got {motion!r}")
    c2w = start.cam_to_world.cpu() @ torch.stack(poses)
    return start.with_pose(c2w.to(start.device))


def lift(rgb: torch.Tensor, depth: torch.Tensor, camera: Camera) -> PointScene:
    """A point cloud of one RGBD view: rgb (3, H, W), depth (1, H, W) z-depth (inf = none)."""
    cloud = PointScene.empty(device=rgb.device)
    cloud.add(rgb, depth, camera)
    return cloud


def merge(into: PointScene, other: PointScene) -> None:
    """Append ``other``'s points to ``into`` (the whole journey's cloud)."""
    into.points = torch.cat([into.points, other.points.to(into.points)])
    into.colors = torch.cat([into.colors, other.colors.to(into.colors)])
    into.radii = torch.cat([into.radii, other.radii.to(into.radii)])


def render_view(cloud: PointScene, camera: Camera) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The cloud seen from ``camera``: rgb (3, H, W), depth (1, H, W) (inf in holes), holes (1, H, W) bool."""
    view = cloud.render(camera)
    holes = (view.alpha < 0.5) | ~torch.isfinite(view.depth)
    rgb = torch.where(holes, torch.zeros_like(view.rgb), view.rgb)
    depth = torch.where(holes, torch.full_like(view.depth, float("inf")), view.depth)
    return rgb, depth, holes


EXEMPLAR_MIN_DISTANCE = 24
"""PatchMatch copies patches from at least this many pixels away from the holes: patches from right
beside a revealed strip continue its edges into streaks, frame after frame (as in scenescape)."""


def fill(inpainter, rgb: torch.Tensor, holes: torch.Tensor, prompt: str, seed: int) -> torch.Tensor:
    """Inpaint (1, H, W) ``holes`` of (3, H, W) ``rgb``: thin cracks between splats by Telea, the rest
    by ``inpainter`` (a diffusion inpainter gets the whole mask: it handles it itself)."""
    from wanderview.backends.classical import OpenCVInpainter, PatchMatchInpainter

    if not bool(holes.any()):
        return rgb
    if hasattr(inpainter, "encode"):
        return inpainter.inpaint(rgb, holes, prompt, seed=seed)
    opened = open_mask(holes, 3)
    thin = holes & ~opened
    if bool(thin.any()):
        rgb = torch.where(thin, OpenCVInpainter("telea", radius=3).inpaint(rgb, holes), rgb)
    if bool(opened.any()):
        extra = {}
        if isinstance(inpainter, PatchMatchInpainter) and EXEMPLAR_MIN_DISTANCE > 0:
            extra["exclude"] = dilate(opened, 2 * EXEMPLAR_MIN_DISTANCE + 1) & ~opened
        rgb = inpainter.inpaint(rgb, opened, prompt, seed=seed, **extra)
    return rgb


def telea(rgb: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """Telea pre-fill of (1, H, W) holes in (3, H, W): the prior video of guided sampling."""
    from wanderview.backends.classical import OpenCVInpainter

    return OpenCVInpainter("telea", radius=3).inpaint(rgb, holes) if bool(holes.any()) else rgb


def depth_of(depth_model, rgb: torch.Tensor, ref_depth: torch.Tensor | None, known: torch.Tensor | None):
    """(1, H, W) z-depth of ``rgb``: the depth model, aligned (least squares in disparity) to
    ``ref_depth`` on ``known`` pixels when given; known pixels keep the reference; non-finite values
    continue the background."""
    pred = to_depth(depth_model.predict(rgb), depth_model.output).to(rgb)
    if ref_depth is None or known is None or int(known.sum()) < 16:
        depth = pred
    else:
        try:
            aligned = align_depth(pred, ref_depth, known, space="disparity")
        except ValueError:  # a constant prediction has no scale to fit
            aligned = torch.full_like(pred, float("inf"))
        # an affine fit can extrapolate to near-zero disparity: stay within 10x the farthest known depth
        aligned = aligned.clamp(max=10.0 * float(ref_depth[known].max()))
        depth = torch.where(known, ref_depth, aligned)
    missing = ~torch.isfinite(depth)
    if bool(missing.all()):
        return torch.ones_like(depth)
    return fill_depth_from_background(depth, missing) if bool(missing.any()) else depth


def inpaint_and_merge(cloud: PointScene, camera: Camera, inpainter, depth_model, prompt: str, seed: int):
    """One WonderJourney-style step: render the cloud, inpaint the holes, give them aligned depth,
    merge the new points. Returns frame (3, H, W), depth (1, H, W), holes (1, H, W) bool."""
    rgb, depth, holes = render_view(cloud, camera)
    if bool(holes.any()):
        rgb = fill(inpainter, rgb, holes, prompt, seed)
        depth = depth_of(depth_model, rgb, depth, ~holes)
        cloud.add(rgb, depth, camera, holes)
    return rgb, depth, holes


DYNAMICS_LAYERS = 3
"""Depth layers of the CPU Stage II (makeit4d's default count); the sky preset moves the farthest."""


def eulerian_clip(
    rgb: torch.Tensor, depth: torch.Tensor, camera: Camera, source: tuple[str, object], frames: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Stage II without a video model: makeit4d's Eulerian animation of one view, a seamless loop.

    Args:
        rgb: (3, H, W) the view; depth: (1, H, W) its z-depth (non-finite pixels count as the farthest);
        camera: its (single) camera, which stands still.
        source: methods/motion.read_motion's ('sky', (dx, dy)): the farthest of ``DYNAMICS_LAYERS``
            depth layers drifts (dx, dy) px/frame; or ('flow', (2, H, W)): every layer moves where the
            flow is non-zero (a mask, hints or a clip on the frame grid).
        frames: N, the clip's length and the loop's period (frame N would be frame 0 again).
    Returns:
        N (rgb (3, H, W), holes (1, H, W) bool) pairs, frame 0 the still view; holes (pixels no point
        covers) are Telea-filled in rgb.
    """
    kind, value = source
    if kind not in ("sky", "flow"):
        raise ValueError(f"the motion source must be sky or flow, got {kind!r}")
    H, W = rgb.shape[1:]
    flow = constant_flow(torch.ones(1, H, W, dtype=torch.bool), value) if kind == "sky" else value
    finite = torch.isfinite(depth)
    depth = torch.where(finite, depth, depth[finite].max() if bool(finite.any()) else torch.ones_like(depth))
    views = animate_image(
        rgb.cpu(), depth.cpu(), camera.to("cpu"), flow.cpu().float(), frames,
        far_only=kind == "sky", num_layers=DYNAMICS_LAYERS,
    )  # fmt: skip
    return [(telea(v.rgb.clamp(0, 1), v.holes).to(rgb), v.holes.to(rgb.device)) for v in views]


def load_backends(config, device: torch.device):
    """dreamjourney's depth model, inpainter, video adapter (or None) and agent (or None); bad specs
    fail here, before the run folder exists."""
    from wanderview.backends.registry import make_depth_model, make_inpainter, make_vision_language

    loading = config.loading_options(device)
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


def manifest_notes(config, adapter, motion_kind: str) -> list[str]:
    """What dreamjourney's manifest says about the fallbacks and the model's limits (``motion_kind``:
    the kind read_motion found: sky, flow or none)."""
    if adapter is None:
        if not config.dynamics:
            return [CPU_STAGE1]
        if motion_kind == "none":
            return [CPU_STAGE1, CPU_NO_MOTION]
        motion = config.motion if motion_kind == "sky" else "a flow from the --motion options"
        return [CPU_STAGE1, CPU_STAGE2.format(motion=motion, layers=DYNAMICS_LAYERS)]
    notes = []
    if config.condition_last_frame and not getattr(adapter, "supports_last_frame", False):
        notes.append(f"{adapter.name}: the model takes no last frame; it sees the first only")
    if config.dynamics and not adapter.uses_prompt:
        notes.append(
            f"the {adapter.name} video model takes no text: Stage II's motion prompt is recorded but cannot "
            "steer it"
        )
    return notes


class JourneyRecord:
    """The bookkeeping of a journey: frames written so far, their cameras, the stage records, the
    journey's cloud and the agent's log; resume state; the final files."""

    def __init__(self, config, rt, depth_model, inpainter, adapter, vlm):
        from wanderview.backends.agent import AgentLog

        self.config, self.rt = config, rt
        self.depth_model, self.inpainter, self.adapter, self.vlm = depth_model, inpainter, adapter, vlm
        self.count, self.poses, self.stages = 0, [], []
        self.cloud = None
        self.agent = AgentLog(model=getattr(vlm, "description", "none"))
        self.entities = config.entity_list
        self.K = None

    def write(self, rgb, depth, holes, camera) -> None:
        self.rt.write_frame(self.count, rgb, depth, holes)
        self.poses.append(camera.cam_to_world.cpu())
        self.K = camera.K.cpu()
        self.count += 1

    def _record(self, stage: str, round_index: int, first: int, **extra) -> None:
        self.stages.append(
            {"stage": stage, "round": round_index, "start": first, "end": self.count - 1, **extra}
        )

    def state_dict(self, rgb, depth, camera, unit) -> dict:
        """Resume state after a stage: the journey so far and the view the next stage starts from."""
        return {
            "cloud": self.cloud.state_dict(),
            "count": self.count,
            "poses": torch.stack(self.poses),
            "K": self.K,
            "stages": list(self.stages),
            "agent": self.agent.to_dict(),
            "entities": list(self.entities),
            "notes": list(self.rt.manifest.notes),
            "rgb": rgb.cpu(),
            "depth": depth.cpu(),
            "pose": camera.cam_to_world.cpu(),
            "unit": unit,
        }

    def load_state_dict(self, state: dict):
        """Restore ``state_dict``; returns (rgb, depth, camera, unit) of the next stage's start."""
        from wanderview.backends.agent import AgentLog

        device = self.rt.device
        self.cloud = PointScene.empty(device=device)
        self.cloud.load_state_dict({k: v.to(device) for k, v in state["cloud"].items()})
        self.count, self.poses, self.K = int(state["count"]), list(state["poses"]), state["K"]
        self.stages, self.entities = list(state["stages"]), list(state["entities"])
        self.agent = AgentLog(**state["agent"])
        self.rt.manifest.notes = list(state["notes"])
        camera = Camera(self.K, state["pose"], self.config.width, self.config.height).to(device)
        return state["rgb"].to(device), state["depth"].to(device), camera, float(state["unit"])

    def finish(self) -> None:
        """video.mp4, cameras.json, points.ply, stages.json and agent.json."""
        rt = self.rt
        rt.write_video(self.count, fps=self.config.fps)
        rt.write_cameras(Camera(self.K, torch.stack(self.poses), self.config.width, self.config.height))
        with rt.timer("write"):
            self.cloud.save(rt.path("points.ply"))
            rt.rundir.write_json("stages.json", {"frames": self.count, "stages": self.stages})
            rt.rundir.write_json("agent.json", self.agent.to_dict())
        rt.manifest.notes.extend(f"agent: {note}" for note in self.agent.notes)
