"""`wanderview scenescape [--prompt TEXT] [--image IMG] ...`: SceneScape perpetual view generation."""

from __future__ import annotations

import argparse
from pathlib import Path

from wanderview.cli.common import (
    add_common_options,
    add_model_options,
    model_options,
    positive_int,
    resolve_device,
)

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
    p = sub.add_parser(
        "scenescape",
        help="text or image -> a long 3D-consistent walkthrough (SceneScape)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--prompt", default="", help="text for the first frame and every inpainting")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument(
        "--image", type=Path, default=None, help="start from this image (required without --generator)"
    )
    p.add_argument("--depth", type=Path, default=None, help="z-depth of --image (.npy, 16-bit PNG, PFM)")
    p.add_argument(
        "--generator",
        default=None,
        help="text-to-image model for the first frame, e.g. hf:stabilityai/stable-diffusion-2-1",
    )
    p.add_argument(
        "--depth-model",
        default="heuristic",
        help="heuristic (weak CPU default; aligned, not finetuned) or hf:<id or folder> "
        "(e.g. hf:Intel/dpt-large; finetuned per frame)",
    )
    p.add_argument(
        "--inpainter",
        default="patchmatch",
        help="patchmatch (default), telea, ns, none, or hf:<stable-diffusion inpainting id or folder>",
    )
    p.add_argument(
        "--exemplar-min-distance",
        type=int,
        default=24,
        help="with --inpainter patchmatch, copy patches only from the input image's content and from at "
        "least this many pixels away from the holes (default 24; 0 = anywhere, earlier fills included, "
        "which turns a long walk's border into streaks and flat dark noise)",
    )
    p.add_argument(
        "--diffusion-steps",
        type=positive_int,
        default=50,
        help="denoising steps of hf: inpainters and generators (default 50, the paper's DDIM steps)",
    )
    p.add_argument(
        "--focal",
        type=float,
        default=500.0,
        help="focal length in pixels at 512 px width, scaled with --width (default 500)",
    )
    p.add_argument(
        "--path-unit-quantile",
        type=float,
        default=0.1,
        help="named paths move in units of this quantile of the first frame's depth (default 0.1: "
        "near content, so each frame reveals a similar strip; 0.5 = the median)",
    )
    p.add_argument("--supersample", type=positive_int, default=2, help="anti-aliasing factor (default 2)")
    p.add_argument("--no-floating-fix", action="store_true", help="skip the floating-artifact fix")
    p.add_argument("--no-depth-finetune", action="store_true", help="ablation: no test-time depth finetuning")
    p.add_argument(
        "--no-decoder-finetune", action="store_true", help="ablation: no test-time decoder finetuning"
    )
    p.add_argument(
        "--no-mesh",
        action="store_true",
        help="ablation: warp the previous frame (z-buffered splatting) instead of a unified mesh",
    )
    p.add_argument("--warp-inpaint", action="store_true", help="baseline: no mesh and no finetuning")
    p.add_argument("--depth-finetune-steps", type=int, default=300, help="Adam steps per frame (default 300)")
    p.add_argument("--depth-finetune-lr", type=float, default=1e-7, help="(default 1e-7)")
    p.add_argument(
        "--decoder-finetune-steps", type=int, default=100, help="Adam steps per frame (default 100)"
    )
    p.add_argument("--decoder-finetune-lr", type=float, default=1e-4, help="(default 1e-4)")
    p.add_argument(
        "--prune-every",
        type=int,
        default=5,
        help="drop mesh faces the rest of the path cannot see every N frames (0 = never; default 5)",
    )
    p.add_argument(
        "--decimate-subpixel",
        type=float,
        default=1.0,
        help="when pruning, merge content smaller than this many pixels in every remaining view "
        "(bounds memory on long backward paths; 0 = off; default 1.0)",
    )
    p.add_argument(
        "--glb-max-faces",
        type=int,
        default=4_000_000,
        help="skip mesh.glb (mesh.ply is always written) above this many faces (default 4000000)",
    )
    add_common_options(p, frames=50, trajectory="scenescape")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.methods import scenescape

    baseline = args.warp_inpaint
    config = scenescape.Config(
        prompt=args.prompt, image=args.image, depth=args.depth, negative_prompt=args.negative_prompt,
        generator=args.generator, depth_model=args.depth_model, inpainter=args.inpainter,
        exemplar_min_distance=args.exemplar_min_distance,
        trajectory=args.trajectory, frames=args.frames, width=args.width or 512, height=args.height or 512,
        focal=args.focal, path_unit_quantile=args.path_unit_quantile, supersample=args.supersample,
        floating_fix=not args.no_floating_fix,
        mesh=not (args.no_mesh or baseline), depth_finetune=not (args.no_depth_finetune or baseline),
        depth_finetune_steps=args.depth_finetune_steps, depth_finetune_lr=args.depth_finetune_lr,
        decoder_finetune=not (args.no_decoder_finetune or baseline),
        decoder_finetune_steps=args.decoder_finetune_steps, decoder_finetune_lr=args.decoder_finetune_lr,
        prune_every=args.prune_every, decimate_subpixel=args.decimate_subpixel,
        glb_max_faces=args.glb_max_faces, diffusion_steps=args.diffusion_steps, seed=args.seed,
        fps=args.fps, **model_options(args, resolve_device(args.device)),
    )  # fmt: skip
    result = scenescape.run(config, args.out, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    print(f"wrote {result.num_frames} frames; video: {result.video}")
    return 0
