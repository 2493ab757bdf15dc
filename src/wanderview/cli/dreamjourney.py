"""`wanderview dreamjourney IMAGE -o OUT [--video-model hf:M] [--vlm SPEC] ...`: DreamJourney journeys."""

from __future__ import annotations

import argparse

from wanderview.cli.common import add_config_options, config_from_args

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
  default the WEAK heuristic) and point-cloud merge per frame. Stage II on CPU is makeit4d's Eulerian
  animation, not diffusion: the view is cut into 3 depth layers and --motion sky:DX,DY (default 1,0)
  drifts the farthest one in a seamless loop of --dynamic-frames frames; makeit4d's --motion-mask with
  --motion-vector, --motion HINTS.json and --motion-video move what they mark instead (on each dynamics
  view's frame grid); --motion none or --no-dynamics skip Stage II. The manifest says all of this.
  wanderview dreamjourney photo.jpg --rounds 2 --frames 12 --dynamic-frames 12 --width 256 --height 256 \\
    -o runs/dj
GPU (the full method; Wan 2.1 I2V, Wan VACE (1.3B: a 24 GB GPU) or Stable Video Diffusion):
  wanderview dreamjourney photo.jpg -o runs/dj --video-model hf:Wan-AI/Wan2.1-I2V-14B-480P-Diffusers \\
    --depth-model hf:Intel/dpt-large --inpainter hf:stabilityai/stable-diffusion-2-inpainting \\
    --vlm openai:gpt-4o  # or hf:llava-hf/llava-1.5-7b-hf, or a local server via WANDERVIEW_OPENAI_BASE_URL
Without --vlm the motion prompt is the paper's default, naming --entities.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from wanderview.methods import dreamjourney

    p = sub.add_parser(
        "dreamjourney",
        help="image -> perpetual journey with camera motion and object dynamics (DreamJourney)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(p, dreamjourney.Config, positional=("image",))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.methods import dreamjourney

    config = config_from_args(dreamjourney.Config, args, "dreamjourney")
    options = {"overwrite": args.overwrite, "resume": args.resume, "quiet": args.quiet}
    result = dreamjourney.run(config, args.out, **options)
    print(f"wrote {result.num_frames} frames; video: {result.video}")
    return 0
