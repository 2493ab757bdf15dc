"""`wanderview fourreal --reference-video V --freeze-video F -o OUT` (or `--prompt` with video models):
a 4D deformable-splat scene."""

from __future__ import annotations

import argparse

from wanderview.cli.common import add_config_options, config_from_args

HELP = """\
4Real (Yu et al. 2024): reconstruct a 4D scene as deformable 3D Gaussian splats from a reference
video (a fixed camera over time) and a freeze-time video (the camera moving at the canonical time,
passing through the canonical reference frame). Canonical Gaussians are fitted to the freeze-time
frames with a per-frame deformation (zero at the canonical frame, small-motion loss); a temporal
deformation is then fitted to the reference video (norm, difference, local-rigidity and rotation
losses over 20 neighbours). Writes gaussians.ply (canonical, standard 3DGS PLY),
deformation.safetensors, cameras.json (both videos, per-frame time), fixed_view.mp4,
freeze_time.mp4, video.mp4 (--trajectory over --time) with frames/, config.json, manifest.json.
`wanderview render RUN --time T|A..B` re-renders it at any time.

Cameras: --reference-cameras / --freeze-cameras (transforms.json, relative to their first camera,
per-frame "time" honoured); without a freeze camera file, SfM (pycolmap) estimates them. Both
files must agree on the canonical camera's intrinsics; a freeze file alone also gives them to the
fixed reference camera; SfM needs a fixed reference camera (its scale is arbitrary).

GENERATIVE PATH (real models need a GPU; the tests run tiny random ones on CPU):
  --prompt TEXT and no --reference-video: the reference video is made from the prompt as given,
    by --text-video-model hf:<id> (WanPipeline or CogVideoXPipeline, e.g.
    Wan-AI/Wan2.1-T2V-1.3B-Diffusers) or else by a VACE --video-model with no frames to condition
    on (text to video); --reference-frames frames at --width x --height (default 16:9, the longer
    side --max-side).
  no --freeze-video: the image-to-video --video-model hf:<id> (Wan I2V, Wan VACE, SVD; family
    from the checkpoint or --video-adapter) makes it from the canonical reference frame with the
    prompt "Camera circulating around <prompt without action verbs>, time elapse." (the paper's
    prompt engineering), clip by clip, forward then backward, each clip conditioned on the video's
    last (forward) or first (backward) frames (VACE: --context-frames of them; Wan I2V and SVD: one,
    the backward clip made from the mirrored frame and reversed), until a two-view estimate of the
    view coverage reaches --coverage degrees or --max-clips clips are made (the manifest says the
    coverage reached). The real canonical frame is the freeze video's match frame.
  Both are written to generated/ (PNG frames and MP4) and read like given videos; their cameras
  come from SfM as usual (or --freeze-cameras, for a video of the frame count the clips give);
  where SfM fails on generated frames, the freeze-time cameras are an assumed orbit around a point
  1 unit ahead with the estimated rotations (generated/freeze_orbit_cameras.json; manifest note).
  Refused with one sentence: no prompt and no reference video; a prompt with no model that makes
  video from text (Wan I2V and SVD cannot); a --freeze-video without --reference-video;
  --text-video-model with --reference-video; --coverage outside (0, 360].
  e.g. wanderview fourreal --prompt "a corgi running in a garden" \\
         --video-model hf:Wan-AI/Wan2.1-VACE-1.3B-diffusers --width 832 --height 480 -o run

VIDEO SDS: with --video-model hf:<image-to-video model> (Wan 2.1 I2V, Wan VACE or SVD; a GPU for
real models), given or generated videos, the last --sds-fraction (0.25) of each stage adds video
score distillation: multi-view SDS (--sds-weight 5) on --sds-frames (16) renders along a path from
the canonical camera to a perturbed freeze-time camera, the real canonical frame first as the
condition; in the motion stage, with equal odds per step, temporal SDS (--sds-temporal-weight 20)
on the fixed reference camera over a ramp of times, or multi-view SDS at a reference frame's time.
Renders are shifted or cropped, downsampled to the model's size (--sds-side), encoded with
gradient, noised at a fraction of the model's schedule annealed over --sds-timesteps (0.98..0.02),
and pulled toward the model's x0 prediction (x0-form SDS on latents, one weight for every
timestep). The manifest records whether SDS ran and how many steps; without a video model SDS is
off (the CPU default: a 4D reconstruction of the two videos).

CPU SCHEDULE (weaker than the paper's, said in the manifest): 2400 canonical / 600 warm-up / 1200
motion steps, <= 5000 Gaussians densified every 10 steps, 4x64 deformation MLPs instead of
23000 / 3000 / 10000 and 8x256 (--schedule paper for the paper's); at 128x96 with 8 + 12 frames it
took 258 s on 2 cores here. Not the paper's, on every schedule (README has the numbers): with
--freeze-cameras the Gaussians start from points triangulated by optical flow (no SfM points);
the per-frame field uses 3 frequencies for x and small-motion weight 0.1 (--frame-position-
frequencies, --motion-weight; the paper's L = 10 and 0.01 absorbed a consistent orbit); the
motion stage pulls visible Gaussians along optical-flow tracks of the reference video
(--track-weight 0.01) and encodes t with 2 and x with 4 frequencies in w(x, t).
"""


def register(sub: argparse._SubParsersAction) -> None:
    from wanderview.methods import fourreal

    p = sub.add_parser("fourreal", help="two videos -> a 4D scene as deformable 3D Gaussian splats",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_config_options(p, fourreal.Config)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.methods import fourreal

    config = config_from_args(fourreal.Config, args, "fourreal")
    result = fourreal.run(config, args.out, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    print(f"wrote {result.scene} and {result.num_frames}-frame videos; video: {result.video}")
    return 0
