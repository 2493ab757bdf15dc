"""fourreal's generative inputs (4Real §3.2): the reference video from text, the freeze-time video.

1. **Reference video** (when ``--reference-video`` is absent): ``--text-video-model`` (a diffusers
   ``WanPipeline`` / ``CogVideoXPipeline``, backends/hf_text_video.py), else the ``--video-model``
   itself when it is Wan VACE: VACE with no conditioning frames (every frame masked) is text-to-video.
   Prompt: the user's, unchanged.
2. **Freeze-time video** (when ``--freeze-video`` is absent): the image-to-video adapter of
   ``--video-model`` (backends/video_adapters.py; sampled by optim/guided_video.py without a prior)
   conditioned on the canonical reference frame, prompt from methods/fourreal_prompts.py, extended
   autoregressively, one clip forward then one backward, until :func:`view_coverage` of the whole
   video reaches ``--coverage`` degrees or ``--max-clips`` clips were made:

   - forward: the next clip is conditioned on the last frame(s) of the video and its new frames are
     appended;
   - backward, VACE: the first ``context_frames`` frames of the video are the *last* frames of the
     clip (VACE conditions on any frame positions, like the paper's masked Snap Video), so the model
     makes the frames leading up to them, and they are prepended;
   - backward, first-frame models (Wan I2V, SVD): a clip from the first frame whose frames are
     reversed and prepended. Ours: the condition frame is mirrored left-right and the clip mirrored
     back, because a model that turns one way for an image turns the other way for its mirror image;
     without it both directions often orbit the same way and the backward clip folds back over the
     forward one instead of adding views.

   Frames known before a clip (the canonical frame, the context) are kept as they are and the
   model's copies of them dropped, so the real canonical frame is the freeze-time video's match frame
   (the paper puts the reference frame in place of the generated first frame).

Both videos are made at the working size (the model runs at it rounded to its multiple) and are
written into the run folder as PNG frames (lossless, for the canonical-frame match) and MP4s, then
read by ``load_inputs`` like given videos (SfM cameras for the freeze-time video, as for a given one).
Where SfM fails on generated frames (always, for the tests' random models), the freeze-time cameras
fall back to an assumed orbit (:func:`orbit_cameras`): the coverage estimate's chained rotations,
each camera on its optical axis through a point 1 unit in front of the canonical camera; the
manifest says so. Real models need a GPU; the tests use tiny random ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from wanderview.errors import BackendError, ConfigError
from wanderview.methods import fourreal_inputs as inputs
from wanderview.methods.fourreal_prompts import freeze_time_prompt
from wanderview.metrics.coverage import view_coverage

# sampling without a prior's guidance (VACE's known frames condition it; nothing steers it)
_PLAIN = {"early_stop": 1.0, "pad_views": 0, "renoise_rounds": 1}
GENERATED = "generated"
"""Folder of the generated videos inside the run folder."""
ORBIT_CAMERAS = f"{GENERATED}/freeze_orbit_cameras.json"
"""Assumed cameras of the generated freeze-time video, used where SfM fails (:func:`orbit_cameras`)."""


def check_generative(config) -> None:
    """The combinations of videos, prompt and models that cannot work (checked before any model loads)."""
    ref, frz = config.reference_video, config.freeze_video
    if ref is None and not config.prompt:
        raise ConfigError("fourreal needs --reference-video, or --prompt and a video model to generate it.")
    if ref is None and not (config.video_model or config.text_video_model):
        raise ConfigError(
            "Without --reference-video, the reference video is generated from --prompt by a video "
            "model (--text-video-model, or a VACE --video-model; GPU): give one of them."
        )
    if frz is None and not config.video_model:
        raise ConfigError(
            "Without --freeze-video, fourreal generates it with an image-to-video --video-model "
            "hf:<id> (GPU); give one of them."
        )
    if ref is None and frz is not None:
        raise ConfigError(
            "A given --freeze-video must pass through a frame of the reference video: give "
            "--reference-video too, or neither to generate both."
        )
    if ref is not None and config.text_video_model:
        raise ConfigError(
            "--text-video-model makes the reference video, which --reference-video already gives."
        )
    if not 0 < config.coverage <= 360:
        raise ConfigError(f"--coverage must be in (0, 360] degrees, got {config.coverage}")
    for name, low in (("max_clips", 1), ("clip_frames", 2), ("context_frames", 1), ("reference_frames", 2)):
        if getattr(config, name) < low:
            raise ConfigError(
                f"--{name.replace('_', '-')} must be at least {low}, got {getattr(config, name)}"
            )
    if config.video_steps is not None and config.video_steps < 1:
        raise ConfigError(f"--video-steps must be at least 1, got {config.video_steps}")
    if ref is None and not 0 <= config.canonical_frame < config.reference_frames:
        raise ConfigError(
            f"--canonical-frame must be in 0..{config.reference_frames - 1} (--reference-frames), "
            f"got {config.canonical_frame}"
        )
    if config.context_frames >= config.clip_frames:
        raise ConfigError(
            f"--context-frames ({config.context_frames}) must be below --clip-frames "
            f"({config.clip_frames}): a clip must make new frames"
        )


def load_video_model(config, device: torch.device):
    """The image-to-video adapter of ``--video-model`` (None without one), its weights loaded.

    run() opens it once: the freeze-time generation and the video SDS use this one object. A bad spec
    or missing weights fail here, before the run folder exists.
    """
    if not config.video_model:
        return None
    from wanderview.backends.video_adapters import make_video_adapter

    adapter = make_video_adapter(
        config.video_model,
        config.video_adapter,
        config.video_steps,
        config.guidance_scale,
        **config.loading_options(device),
    )
    _ = adapter.pipe
    return adapter


def load_text_video_model(config, device: torch.device, adapter):
    """The text-to-video generator of ``--text-video-model`` (None without one or when the reference
    video is given); refuses a prompt-only run whose --video-model cannot make video from text."""
    if config.reference_video is not None:
        return None
    if not config.text_video_model:
        if adapter is not None and adapter.name != "vace":
            raise BackendError(
                f"The {adapter.name} model {adapter.source} cannot make a video from text "
                "(of the image-to-video models only VACE can); give --text-video-model "
                "hf:<id> or --reference-video."
            )
        return None
    from wanderview.backends.registry import make_text_video_generator

    extra = {
        k: v
        for k, v in (("steps", config.video_steps), ("guidance_scale", config.guidance_scale))
        if v is not None
    }
    model = make_text_video_generator(config.text_video_model, **config.loading_options(device), **extra)
    _ = model.pipe
    return model


def generation_size(config) -> tuple[int, int]:
    """(H, W) of a reference video made from text: --width/--height, else 16:9 with the longer side
    --max-side (a text-to-video model has no input to take a size from)."""
    width = config.width or (round(config.height * 16 / 9) if config.height else config.max_side)
    return config.height or max(8, round(width * 9 / 16)), width


def _sample(
    adapter, known: dict[int, torch.Tensor], num_frames: int, prompt: str, seed: int, size: tuple[int, int]
) -> torch.Tensor:
    """One clip (num_frames, 3, H, W) in [0, 1] whose frame positions ``known`` are given (3, H, W).

    VACE conditions on any positions (grey, masked frames elsewhere; none known = text-to-video);
    the other adapters only on position 0. ``size``: (H, W).
    """
    from wanderview.optim.guided_video import GuidanceSettings, guided_sample

    if adapter.name != "vace":
        if set(known) != {0}:
            raise ValueError(f"the {adapter.name} adapter conditions on the first frame only")
        return guided_sample(adapter, known[0], prompt, num_frames, seed=seed).frames
    prior = torch.full((num_frames, 3, *size), 128 / 255)  # VACE's grey for the frames to generate
    visible = torch.zeros(num_frames, 1, *size)
    for i, image in known.items():
        prior[i], visible[i] = image, 1.0
    return guided_sample(
        adapter,
        prior[0],
        prompt,
        num_frames,
        prior=prior,
        visibility=visible,
        settings=GuidanceSettings(**_PLAIN),
        seed=seed,
    ).frames


def vace_text_to_video(
    adapter, prompt: str, num_frames: int, height: int, width: int, seed: int
) -> torch.Tensor:
    """VACE with every frame masked: text to (num_frames, 3, height, width) in [0, 1]."""
    return _sample(adapter, {}, num_frames, prompt, seed, (height, width))


@dataclass
class FreezeVideo:
    """The generated freeze-time video and how it was made."""

    frames: torch.Tensor
    """(F, 3, H, W) in [0, 1]; frame ``match`` is the canonical frame itself."""
    match: int
    coverage_deg: float
    clips: list[dict] = field(default_factory=list)
    """Per clip: direction, new frames, the coverage after it."""
    rotations: torch.Tensor | None = None
    """(F, 3, 3) camera-to-canonical rotations of the frames (the two-view estimate, chained)."""


def extend_freeze_video(
    adapter,
    canonical: torch.Tensor,
    prompt: str,
    K: torch.Tensor,
    *,
    coverage: float,
    max_clips: int,
    clip_frames: int,
    context_frames: int,
    seed: int,
    progress=None,
) -> FreezeVideo:
    """Generate clips around ``canonical`` (3, H, W) until the views cover ``coverage`` degrees.

    K: (3, 3) intrinsics of the frames (for the coverage estimate); clip_frames: frames per clip
    (rounded up to a count the model makes); context_frames: frames a VACE clip is conditioned on
    (first-frame models: 1). ``progress``: a callable(clip, max_clips). See the module docstring.
    """
    n = adapter.frame_count(clip_frames)
    size = tuple(canonical.shape[1:])
    frames, match, clips, reached = [canonical.float().cpu()], 0, [], 0.0
    vace = adapter.name == "vace"
    for k in range(max_clips):
        forward = k % 2 == 0
        c = min(context_frames if vace else 1, len(frames), n - 1)
        if forward:
            clip = _sample(adapter, dict(enumerate(frames[-c:])), n, prompt, seed + k, size)
            new = list(clip[c:].cpu())
            frames = frames + new
        else:
            if vace:
                clip = _sample(
                    adapter, {n - c + i: f for i, f in enumerate(frames[:c])}, n, prompt, seed + k, size
                )
                new = list(clip[: n - c].cpu())
            else:  # mirrored condition, mirrored back, reversed: it ends where the video starts
                clip = _sample(adapter, {0: frames[0].flip(-1)}, n, prompt, seed + k, size).flip(-1)
                new = list(clip[1:].flip(0).cpu())
            frames, match = new + frames, match + len(new)
        measured = view_coverage(torch.stack(frames), K)
        reached = measured.degrees
        clips.append(
            {
                "direction": "forward" if forward else "backward",
                "new_frames": len(new),
                "coverage_deg": round(reached, 2),
            }
        )
        if progress is not None:
            progress(k + 1, max_clips)
        if reached >= coverage:
            break
    R = torch.from_numpy(measured.rotations)
    rotations = (R[match].T @ R).float()  # re-expressed in the canonical camera's frame
    return FreezeVideo(torch.stack(frames), match, reached, clips, rotations)


def orbit_cameras(rotations: torch.Tensor, K: torch.Tensor, width: int, height: int, distance: float = 1.0):
    """Cameras (F,) with the given camera-to-canonical rotations (F, 3, 3) on an orbit around the point
    ``distance`` in front of the canonical camera (identity pose), each looking at it as its optical
    axis says: the assumed cameras of a generated freeze-time video where SfM fails."""
    from wanderview.cameras.camera import Camera

    pivot = torch.tensor([0.0, 0.0, distance])
    poses = torch.eye(4).repeat(len(rotations), 1, 1)
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = pivot - distance * rotations[:, :, 2]  # the pivot on every optical axis
    return Camera(K.expand(len(rotations), 3, 3), poses, width, height)


def given_reference(config) -> tuple[torch.Tensor, bool] | None:
    """The given reference video at the working size (V, 3, H, W) and whether it was resized, when the
    freeze-time video is to be generated from it (None otherwise); read before the run folder exists,
    so that a bad video or --canonical-frame fails first."""
    if config.reference_video is None or config.freeze_video is not None:
        return None
    ref = inputs.read_frames(config.reference_video, "reference video")
    if not 0 <= config.canonical_frame < len(ref):
        raise ConfigError(f"--canonical-frame must be in 0..{len(ref) - 1}, got {config.canonical_frame}")
    H, W = inputs.working_size(ref.shape[2], ref.shape[3], config.max_side, (config.width, config.height))
    if config.reference_cameras is not None:  # a wrong frame count fails now, not after generating
        inputs.read_camera_file(config.reference_cameras, len(ref), H, W, "reference")
    return inputs.resize_frames(ref, H, W), tuple(ref.shape[2:]) != (H, W)


def generate_videos(rt, config, adapter, text_model, given: tuple[torch.Tensor, bool] | None):
    """Make the missing videos, write them under ``generated/`` in the run folder, record them in
    the manifest, and return ``config`` with the video paths pointing at them.

    given: the given reference video from :func:`given_reference` (None when it is generated).
    """
    from wanderview.cameras.camera import Camera
    from wanderview.io.images import write_image

    made, info = {}, {}
    if config.reference_video is None:
        H, W = generation_size(config)
        with rt.timer("generate_reference"):
            if text_model is not None:
                ref = text_model.generate(config.prompt, config.reference_frames, H, W, seed=config.seed)
            else:
                ref = vace_text_to_video(adapter, config.prompt, config.reference_frames, H, W, config.seed)
        made["reference"] = ref
        info["reference"] = {
            "model": (text_model or adapter).description,
            "prompt": config.prompt,
            "frames": len(ref),
            "size": [W, H],
        }
    else:
        ref, resized = given
        H, W = ref.shape[2:]
        if resized:  # the freeze video is made at the working size: so is this copy
            made["reference"] = ref
            info["reference"] = {"resized_copy_of": str(config.reference_video), "size": [W, H]}
    if config.freeze_video is None:
        prompt = freeze_time_prompt(config.prompt)
        K = Camera.intrinsics_from_fov(config.fov, W, H)
        if config.reference_cameras is not None:  # its intrinsics are the canonical camera's
            file = inputs.read_camera_file(config.reference_cameras, len(ref), H, W, "reference")
            K = file.cameras.K[config.canonical_frame]
        bar = rt.progress(range(config.max_clips), "freeze-time clips", unit="clip")
        with rt.timer("generate_freeze"):
            frz = extend_freeze_video(
                adapter,
                ref[config.canonical_frame],
                prompt,
                K,
                coverage=config.coverage,
                max_clips=config.max_clips,
                clip_frames=config.clip_frames,
                context_frames=config.context_frames,
                seed=config.seed + 1,
                progress=lambda *_: next(bar, None),
            )
        made["freeze"] = frz.frames
        if config.freeze_cameras is None:  # for when SfM fails on the generated frames
            from wanderview.io.cameras import write_transforms_json

            write_transforms_json(rt.path(ORBIT_CAMERAS), orbit_cameras(frz.rotations, K, W, H))
        info["freeze"] = {
            "model": adapter.description,
            "prompt": prompt,
            "prompt_used": adapter.uses_prompt,
            "frames": len(frz.frames),
            "match": frz.match,
            "clips": frz.clips,
            "coverage_deg": round(frz.coverage_deg, 2),
            "target_deg": config.coverage,
        }
        if frz.coverage_deg < config.coverage:
            rt.manifest.notes.append(
                f"freeze-time video: {len(frz.clips)} clips (--max-clips) reached {frz.coverage_deg:.1f} "
                f"of the {config.coverage:g} degrees asked (two-view estimate, metrics/coverage.py)"
            )
        if not adapter.uses_prompt:
            rt.manifest.notes.append(
                f"the {adapter.name} video model takes no text: the freeze-time prompt "
                "is recorded but cannot steer it"
            )
    paths = {}
    for name, video in made.items():
        with rt.timer("write"):
            for i, frame in enumerate(video):
                write_image(rt.path(f"{GENERATED}/{name}/{i:05d}.png"), frame)
        rt.write_video(name=f"{GENERATED}/{name}.mp4", frames=list(video), fps=config.fps)
        paths[f"{name}_video"] = rt.path(f"{GENERATED}/{name}")
        info[name]["folder"] = f"{GENERATED}/{name}"
    rt.manifest.backends["generation"] = info
    return dataclasses.replace(config, **paths)


def sfm_fallback(rt, config, err: Exception):
    """After ``load_inputs`` failed with ``err`` on generated videos: ``config`` with the assumed orbit
    cameras of the generated freeze-time video, and the manifest note; or, when there are none (the
    freeze video was given, or its cameras were), ``err`` again, saying where the generated videos are.
    """
    from wanderview.errors import InputError

    if config.freeze_cameras is not None or not rt.path(ORBIT_CAMERAS).is_file():
        raise InputError(f"{err} (generated videos: {rt.path(GENERATED)})") from None
    rt.manifest.notes.append(
        f"SfM failed on the generated freeze-time video ({str(err).rstrip('.')}); its cameras are an assumed "
        f"orbit ({ORBIT_CAMERAS}): the two-view rotations of the coverage estimate, around a point 1 unit "
        "in front of the canonical camera (random or static frames give one pose for all)"
    )
    rt.manifest.backends["freeze_cameras"] = {"sfm_failed": str(err), "assumed_orbit": ORBIT_CAMERAS}
    return dataclasses.replace(config, freeze_cameras=rt.path(ORBIT_CAMERAS))
