"""`wanderview dreamjourney IMAGE -o OUT [--video-model hf:M] [--vlm SPEC] ...`: DreamJourney journeys."""

from __future__ import annotations

import argparse
from pathlib import Path

from wanderview.cli.common import add_model_options, model_options, positive_int, resolve_device

HELP = """\
DreamJourney (Pan et al.): a perpetual journey from one image, alternating for --rounds rounds
  Stage I  spatial transition: the view is lifted to a point cloud, the end camera's view is rendered
           and inpainted, the cloud's renders along the path guide an image-to-video model
           (x0 guidance on visible latent cells, 15 renoising rounds, early stopping in the last 20 %
           of steps, 4 padded views), prompt "a camera flyover, cruising steadily across the scene";
  Stage II temporal dynamics: a vision-language agent (--vlm) writes a motion prompt in the paper's
           three-step chain of thought, and the video model animates the view with it.
Writes video.mp4, frames/, depth/, masks/, cameras.json, points.ply (the whole journey's cloud),
agent.json (every question and answer of the agent), stages.json (frames of each stage and round),
config.json and manifest.json.

CPU (the default, --video-model none): Stage I is the paper's ablation BASELINE, not video diffusion:
  WonderJourney-style iterative 2D inpainting (--inpainter, default patchmatch), depth (--depth-model,
  default the WEAK heuristic) and point-cloud merge per frame. Stage II is SKIPPED on CPU: its stand-in,
  makeit4d's Eulerian animation, is not in this version (the manifest says so).
  wanderview dreamjourney photo.jpg --rounds 2 --frames 12 --width 256 --height 256 -o runs/dj
GPU (the full method; Wan 2.1 I2V, Wan VACE (1.3B: a 24 GB GPU) or Stable Video Diffusion):
  wanderview dreamjourney photo.jpg -o runs/dj --video-model hf:Wan-AI/Wan2.1-I2V-14B-480P-Diffusers \\
    --depth-model hf:Intel/dpt-large --inpainter hf:stabilityai/stable-diffusion-2-inpainting \\
    --vlm openai:gpt-4o  # or hf:llava-hf/llava-1.5-7b-hf, or a local server via WANDERVIEW_OPENAI_BASE_URL
Without --vlm the motion prompt is the paper's default, naming --entities.
"""


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dreamjourney",
        help="image -> perpetual journey with camera motion and object dynamics (DreamJourney)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", type=Path, help="the input view")
    p.add_argument("-o", "--out", type=Path, required=True, help="run folder to write")
    p.add_argument("--rounds", type=int, default=3, help="rounds of Stage I + Stage II (default 3)")
    p.add_argument("--frames", type=positive_int, default=48, help="frames per transition, T (default 48)")
    p.add_argument(
        "--dynamic-frames", type=positive_int, default=48, help="frames per dynamics clip (default 48)"
    )
    p.add_argument("--no-dynamics", action="store_true", help="the static journey: no Stage II")
    p.add_argument(
        "--video-model",
        default="none",
        help="none (CPU fallback, default) or hf:<Wan I2V, Wan VACE or Stable Video Diffusion id or folder>",
    )
    p.add_argument("--video-adapter", default="auto", help="auto (from the checkpoint), wan, vace or svd")
    p.add_argument("--video-steps", type=positive_int, default=50, help="denoising steps (default 50)")
    p.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="classifier-free guidance of the video model (default: Wan 5.0, SVD 3.0)",
    )
    p.add_argument("--guidance-lr", type=float, default=0.025, help="render-guidance weight (default 0.025)")
    p.add_argument(
        "--renoise-rounds", type=positive_int, default=15, help="model calls per guided step (default 15)"
    )
    p.add_argument(
        "--early-stop",
        type=_fraction,
        default=0.2,
        help="fraction of the last steps without render guidance (default 0.2)",
    )
    p.add_argument(
        "--pad-views", type=int, default=4, help="copies of the first/last view at each end (default 4)"
    )
    p.add_argument(
        "--condition-last-frame",
        action="store_true",
        help="also condition the video model on the inpainted end view (Wan first+last-frame models, "
        "e.g. Wan2.1-FLF2V; others ignore it, as the paper's first-frame model does)",
    )
    p.add_argument("--vlm", default=None, help="agent: hf:<vision-language id or folder> or openai:<model>")
    p.add_argument(
        "--entities", default="", help="comma-separated possible dynamic entities (no agent, or its fallback)"
    )
    p.add_argument(
        "--depth-model",
        default="heuristic",
        help="heuristic (weak CPU default) or hf:<id or folder>, e.g. hf:Intel/dpt-large",
    )
    p.add_argument(
        "--inpainter", default="patchmatch", help="patchmatch (default), telea, ns or hf:<SD inpainting>"
    )
    p.add_argument("--camera-motion", default="alternate", help="linear, rotate or alternate (default)")
    p.add_argument(
        "--focal", type=float, default=500.0, help="focal length in px at 512 px width (default 500)"
    )
    g = p.add_argument_group("common options")
    g.add_argument("--width", type=positive_int, default=512, help="frame width (default 512)")
    g.add_argument("--height", type=positive_int, default=512, help="frame height (default 512)")
    g.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default: auto)")
    g.add_argument("--fps", type=positive_int, default=24, help="video frame rate (default 24)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.errors import ConfigError
    from wanderview.methods import dreamjourney
    from wanderview.optim.guided_video import GuidanceSettings

    try:
        guidance = GuidanceSettings(
            lr=args.guidance_lr,
            renoise_rounds=args.renoise_rounds,
            early_stop=args.early_stop,
            pad_views=args.pad_views,
            use_last_frame=args.condition_last_frame,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    entities = tuple(e.strip() for e in args.entities.split(",") if e.strip())
    config = dreamjourney.Config(
        image=args.image,
        rounds=args.rounds,
        frames=args.frames,
        dynamic_frames=args.dynamic_frames,
        dynamics=not args.no_dynamics,
        width=args.width,
        height=args.height,
        focal=args.focal,
        video_model=args.video_model,
        video_adapter=args.video_adapter,
        video_steps=args.video_steps,
        guidance_scale=args.guidance_scale,
        guidance=guidance,
        vlm=args.vlm,
        entities=entities,
        depth_model=args.depth_model,
        inpainter=args.inpainter,
        camera_motion=args.camera_motion,
        seed=args.seed,
        fps=args.fps,
        **model_options(args, resolve_device(args.device)),
    )
    result = dreamjourney.run(config, args.out, overwrite=args.overwrite, quiet=args.quiet)
    print(f"wrote {result.num_frames} frames; video: {result.video}")
    return 0
