"""`wanderview compare RUN_A RUN_B ... [-o compare.mp4]`: metrics side by side and a side-by-side video."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wanderview.cli.eval import add_clip_options, clip_scorer

HELP = """\
Evaluate several run folders (as `wanderview eval` does; a run's metrics.json is reused when present)
and print one table with a column per run. Also writes a frame-synchronised side-by-side video:
frame t of every run next to each other (a shorter run holds its last frame), each scaled to the
height of the first run. With --clip, every run's clip_score is (re)computed with that model, against
each run's own prompt or --prompt, and stored in its metrics.json.
Example: wanderview compare runs/ss runs/ss_no_finetune -o compare.mp4
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="metrics of several runs side by side, and a side-by-side video",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", type=Path, nargs="+", help="run folders")
    p.add_argument("-o", "--out", type=Path, default=Path("compare.mp4"), help="video (default compare.mp4)")
    p.add_argument("--no-video", action="store_true", help="only the table")
    p.add_argument("--fps", type=int, default=24, help="frame rate of the video (default 24)")
    p.add_argument("--json", action="store_true", help="print {run: metrics} as one JSON object")
    p.add_argument(
        "--colmap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the COLMAP protocol for runs without metrics.json (default: when pycolmap is installed)",
    )
    add_clip_options(p)
    p.set_defaults(func=run)


def _metrics(run_dir: Path, use_colmap: bool | None, scorer=None, prompt: str | None = None) -> dict:
    from wanderview.metrics.report import evaluate_run, load_run, replace_clip_metrics, write_metrics

    stored = run_dir / "metrics.json"
    if stored.is_file():
        run = load_run(run_dir)  # still refuse a folder that is not a run
        try:
            metrics = json.loads(stored.read_text())
        except json.JSONDecodeError:
            metrics = None  # a damaged metrics.json is recomputed below
        if isinstance(metrics, dict):
            if scorer is None:
                return metrics
            metrics = replace_clip_metrics(metrics, run, scorer, prompt)
            write_metrics(run_dir, metrics)
            return metrics
    metrics = evaluate_run(run_dir, use_colmap=use_colmap, clip=scorer, prompt=prompt)
    write_metrics(run_dir, metrics)
    return metrics


def side_by_side_frames(runs):
    """Yield (3, H, W') frames: frame t of each run, scaled to the first run's height, concatenated."""
    import torch
    import torch.nn.functional as F

    height = runs[0].frames.shape[2]
    length = max(len(r.frames) for r in runs)
    for t in range(length):
        tiles = []
        for r in runs:
            frame = r.frames[min(t, len(r.frames) - 1)]
            if frame.shape[1] != height:
                width = max(2, round(frame.shape[2] * height / frame.shape[1]))
                frame = F.interpolate(frame[None], size=(height, width), mode="bilinear", antialias=True)[0]
            tiles.append(frame.clamp(0, 1))
        yield torch.cat(tiles, dim=2)


def run(args: argparse.Namespace) -> int:
    from wanderview.errors import InputError
    from wanderview.io.video import write_video
    from wanderview.metrics.report import format_table, load_run

    names = [str(r) for r in args.runs]
    if len(set(names)) != len(names):
        raise InputError("The same run folder was given twice.")
    scorer = clip_scorer(args)
    results = {name: _metrics(path, args.colmap, scorer, args.prompt) for name, path in zip(names, args.runs)}
    if args.json:
        print(json.dumps(results, allow_nan=False))
    else:
        print(format_table(results))
    if not args.no_video:
        runs = [load_run(path) for path in args.runs]
        count = write_video(args.out, side_by_side_frames(runs), fps=args.fps)
        if not args.json:
            print(f"wrote {args.out} ({count} frames)")
    return 0
