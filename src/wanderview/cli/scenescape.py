"""`wanderview scenescape [--prompt TEXT] [--image IMG] ...`: SceneScape perpetual view generation."""

from __future__ import annotations

import argparse

from wanderview.cli.common import add_config_options, config_from_args

HELP = """\
SceneScape (Fridman et al. 2023): a long walkthrough grown from one frame. Every camera of the path
renders the unified mesh built so far; what it reveals is inpainted, given depth, and stitched
into the mesh, so the scene stays 3D-consistent. Writes video.mp4, video_reversed.mp4 (the paper
shows its videos flying into the scene), frames/, depth/, masks/, cameras.json, mesh.ply +
mesh.glb, config.json and manifest.json.

CPU (embedded defaults; --image is required because there is no text-to-image model):
  wanderview scenescape --image photo.jpg --frames 30 -o runs/ss
  The `heuristic` depth model is a WEAK stand-in that cannot be finetuned: new content's depth is
  aligned to the mesh by a least-squares scale/shift instead. `patchmatch` (default) fills holes by
  copying texture of the input image (from at least --exemplar-min-distance px away) and `telea`
  smoothly; neither invents new objects like diffusion, so a long walk ends up framed by repeated
  texture of the input image.
GPU (the full algorithm, with test-time depth and decoder finetuning):
  wanderview scenescape --prompt "POV, haunted house, dark, wooden door, spider webs, skeletons" \\
    --generator hf:stabilityai/stable-diffusion-2-1 \\
    --inpainter hf:stabilityai/stable-diffusion-2-inpainting --depth-model hf:Intel/dpt-large -o runs/ss
"""


def register(sub: argparse._SubParsersAction) -> None:
    from wanderview.methods import scenescape

    p = sub.add_parser(
        "scenescape",
        help="text or image -> a long 3D-consistent walkthrough (SceneScape)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(p, scenescape.Config)
    p.add_argument("--warp-inpaint", action="store_true",
                   help="baseline: no mesh and no finetuning (= --no-mesh --no-depth-finetune "
                   "--no-decoder-finetune)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.methods import scenescape

    baseline = (
        {"mesh": False, "depth_finetune": False, "decoder_finetune": False} if args.warp_inpaint else {}
    )
    config = config_from_args(scenescape.Config, args, "scenescape", derived=("trajectory_spec",), **baseline)
    result = scenescape.run(config, args.out, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    print(f"wrote {result.num_frames} frame{'s' * (result.num_frames != 1)}; video: {result.video}")
    return 0
