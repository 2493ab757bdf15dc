"""fourreal's video-SDS options and glue: the ``sds_*`` fields of its Config, the stage hooks of
``optim/sds.py`` built from a run's inputs, and what the manifest says about SDS."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from wanderview.optim import sds as vsds


@dataclass(frozen=True)
class SDSOptions:
    """The SDS fields of fourreal's Config (SDS runs only with ``video_model``)."""

    sds_weight: float = 5.0
    """Multi-view SDS weight (paper 5); SDS runs only with --video-model."""
    sds_temporal_weight: float = 20.0
    """Temporal SDS weight of the motion stage (paper 20); both weights 0 = SDS off."""
    sds_fraction: float = 0.25
    """SDS runs in this last part of each stage (paper: the last 5k of the 20k steps after warm-up)."""
    sds_every: int = 1
    """One SDS step every this many steps of that part (paper: every step)."""
    sds_frames: int = 16
    """Frames per SDS video (paper 16; raised to a count the model makes, Wan: 17)."""
    sds_timesteps: str = "0.98..0.02"
    """SDS noise level A..B, annealed from A to B, as fractions of the model's sampling schedule."""
    sds_side: int = 0
    """Longer side of the SDS video the model sees (0 = the working size, rounded to its multiple)."""


def sds_settings(config) -> vsds.SDSSettings | None:
    """The checked ``sds_*`` options as SDSSettings; None when SDS is off: no video model, no SDS part
    (``sds_fraction`` 0) or both weights 0. Bad values raise ConfigError (one sentence)."""
    vsds.check_options(config.sds_weight, config.sds_temporal_weight, config.sds_fraction, config.sds_every,
                       config.sds_frames, config.sds_timesteps, config.sds_side)  # fmt: skip
    off = config.sds_fraction == 0 or config.sds_weight == config.sds_temporal_weight == 0
    if not config.video_model or off:
        return None
    t_max, t_min = vsds.parse_timesteps(config.sds_timesteps)
    return vsds.SDSSettings(config.sds_weight, config.sds_temporal_weight, config.sds_fraction,
                            config.sds_every, config.sds_frames, t_max, t_min, config.sds_side,
                            prompt=config.prompt, seed=config.seed)  # fmt: skip


def stage_hooks(adapter, settings: vsds.SDSSettings | None, data: dict, schedule: dict, canonical_frame: int):
    """(CanonicalSDS or None, MotionSDS or None) for a run's ``data`` (fourreal.load_inputs) and
    ``schedule`` (fourreal.settings): each in the last ``settings.fraction`` of its stage."""
    if settings is None:
        return None, None
    canonical = None
    if settings.weight > 0:
        window = vsds.stage_window(schedule["canonical_iterations"], schedule["warmup_iterations"],
                                   settings.fraction)  # fmt: skip
        canonical = vsds.CanonicalSDS(adapter, settings, data["freeze_cameras"], data["freeze"],
                                      data["match"], *window)  # fmt: skip
    window = vsds.stage_window(schedule["motion_iterations"], 0, settings.fraction)
    motion = vsds.MotionSDS(adapter, settings, data["reference_cameras"], data["reference"], data["times"],
                            canonical_frame, data["freeze_cameras"], data["match"], *window)  # fmt: skip
    return canonical, motion


def describe(settings: vsds.SDSSettings | None, adapter) -> str:
    """The manifest's note on SDS: off and why, or what runs with which model."""
    if settings is None:
        if adapter is None:
            return "SDS is off (the paper's SDS needs a video model)"
        return "SDS is off (--sds-fraction is 0 or both SDS weights are 0)"
    s = settings
    note = (f"video SDS with the {adapter.description}: multi-view SDS (weight {s.weight:g}) in the "
            f"last {s.fraction:g} of the canonical stage, temporal (weight {s.temporal_weight:g})"
            f" and multi-view SDS in the last {s.fraction:g} of the motion stage; x0-form loss on the "
            f"model's latents, one weight for every timestep, schedule fraction annealed "
            f"{s.t_max:g} -> {s.t_min:g}")  # fmt: skip
    if adapter.device.type == "cpu":
        note += "; on the CPU (practical with tiny test models only: real video models need a GPU)"
    return note


def manifest_entry(settings: vsds.SDSSettings | None, adapter, canonical, motion) -> dict:
    """manifest.json's ``sds``: whether it ran, the model, the settings and each stage's counts."""
    if settings is None:
        return {"ran": False}
    stages = {"canonical": canonical.summary() if canonical else {"steps": 0},
              "motion": motion.summary() if motion else {"steps": 0}}  # fmt: skip
    steps = stages["canonical"]["steps"] + stages["motion"]["steps"]
    return {"ran": steps > 0, "steps": steps, "model": adapter.description, "settings": asdict(settings),
            **stages}  # fmt: skip
