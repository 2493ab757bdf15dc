"""`wanderview eval RUN_DIR [--gt GT_DIR] [--json] [--colmap/--no-colmap] [--clip hf:M]`: a run's metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = """\
Measure a run folder the way the papers do and write RUN_DIR/metrics.json:
  consistency        Make-It-4D: 100 x L1 between each frame and the next one warped back with the
                     run's depth and cameras (pixels hidden in the next frame are skipped)
  depth_consistency  mean relative disagreement of each frame's depth with the previous frame's
  density            fraction of pixels whose depth passes a forward-backward check (reprojection
                     < 1 px and depth within 1 %) with at least one of the 2 neighbours on each side
  colmap.*           SceneScape protocol: pycolmap SfM on CPU with the intrinsics fixed; registered
                     fraction, reprojection error (px), rotation error (deg) and translation error
                     (% of path length) after a similarity alignment, SI-RMSE (paper Eq. 7) against
                     COLMAP's sparse points
  psnr, ssim, psnr_holes, ssim_holes   with --gt (transforms.json + images, paired by index); PSNR is
                     of the mean squared error pooled over all frames (one identical frame, such as
                     the input frame 0, cannot make it inf); SSIM is the mean over frames
  lpips              "n/a: weights not available" (pretrained weights are never downloaded)
  clip_score         with --clip: prompt adherence, 100 x cosine similarity between each frame's CLIP
                     image embedding and the prompt's text embedding (the run's config.json "prompt",
                     or --prompt), mean over frames; the model is loaded like every hf: backend
                     (local folder or hub id, safetensors only, HF_HUB_OFFLINE respected)
With --stage NAME only the frames of that stage in the run's stages.json are scored and the result
goes to metrics_NAME.json (dreamjourney: --stage transition scores the camera transitions apart from
the object dynamics).
Example: wanderview eval runs/ss --json --clip hf:openai/clip-vit-base-patch32
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="3D-consistency and fidelity metrics of a run folder (writes metrics.json)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", type=Path, help="a run folder written by a wanderview command")
    p.add_argument("--gt", type=Path, default=None, help="ground-truth views: a folder with transforms.json")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--colmap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the COLMAP protocol (default: when pycolmap is installed)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="print nothing but errors (metrics.json is still written)"
    )
    p.add_argument(
        "--colmap-log", action="store_true", help="show COLMAP's own log on stderr (default: errors only)"
    )
    p.add_argument("--stage", default=None, help="score only this stage of stages.json (e.g. transition)")
    add_clip_options(p)
    p.set_defaults(func=run)


def add_clip_options(p: argparse.ArgumentParser) -> None:
    """--clip and --prompt, shared with `wanderview compare`."""
    p.add_argument(
        "--clip",
        default=None,
        metavar="hf:MODEL",
        help="CLIP model for clip_score: hf:<hub id or local folder> (e.g. hf:openai/clip-vit-base-patch32)",
    )
    p.add_argument("--prompt", default=None, help="score against this prompt instead of the run's own")


def clip_scorer(args: argparse.Namespace):
    """The loaded ClipScorer for --clip, or None; a missing model fails here, before any metric runs."""
    if args.clip is None:
        return None
    from wanderview.metrics.clip import ClipScorer

    return ClipScorer(args.clip).load()


def run(args: argparse.Namespace) -> int:
    # metrics are imported here so that `wanderview --help` never pays for them
    from wanderview.metrics.report import check_run_folder, evaluate_run, format_table, write_metrics

    # cheap checks first: a bad folder or an unwritable metrics.json fails before COLMAP or CLIP run
    check_run_folder(args.run_dir, writable=True)
    scorer = clip_scorer(args)
    metrics = evaluate_run(
        args.run_dir, gt_dir=args.gt, use_colmap=args.colmap, clip=scorer, prompt=args.prompt,
        colmap_log_level=0 if args.colmap_log else 2, stage=args.stage,
    )  # fmt: skip
    write_metrics(args.run_dir, metrics, f"metrics_{args.stage}.json" if args.stage else "metrics.json")
    if args.json:
        print(json.dumps(metrics, allow_nan=False))
    elif not args.quiet:
        print(format_table({args.run_dir.name or str(args.run_dir): metrics}))
    return 0
