"""`wanderview compare RUN_A RUN_B ... [-o compare.mp4]`: metrics side by side and a side-by-side video."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wanderview.cli._text import count
from wanderview.cli.common import positive_int
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
    p.add_argument("--fps", type=positive_int, default=24, help="frame rate of the video (default 24)")
    p.add_argument("--json", action="store_true", help="print {run: metrics} as one JSON object")
    p.add_argument(
        "--colmap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the COLMAP protocol for runs without metrics.json (default: when pycolmap is installed)",
    )
    add_clip_options(p)
    p.set_defaults(func=run)


def _stored_metrics(run_dir: Path) -> dict | None:
    """The run's metrics.json when it holds a JSON object (a damaged one is recomputed)."""
    stored = run_dir / "metrics.json"
    if not stored.is_file():
        return None
    try:
        metrics = json.loads(stored.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return metrics if isinstance(metrics, dict) else None


def _metrics(run, use_colmap: bool | None, scorer=None, prompt: str | None = None) -> tuple[dict, bool]:
    """(metrics of a loaded run, whether they are new and must be written to its metrics.json)."""
    from wanderview.metrics.report import evaluate_run, replace_clip_metrics

    stored = _stored_metrics(run.root)
    if stored is not None:
        if scorer is None:
            return stored, False
        return replace_clip_metrics(stored, run, scorer, prompt), True
    return evaluate_run(run, use_colmap=use_colmap, clip=scorer, prompt=prompt), True


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
    from wanderview.errors import ConfigError, InputError
    from wanderview.io.rundir import check_output_file
    from wanderview.io.video import write_video
    from wanderview.metrics.report import check_run_folder, format_table, load_run, write_metrics

    # Everything is checked before anything is computed or written (issue #11): the runs, the
    # metrics.json each one will receive, the video path and the CLIP model.
    names = [str(r) for r in args.runs]
    if len({r.resolve() for r in args.runs}) != len(args.runs):
        raise InputError("The same run folder was given twice.")
    for path in args.runs:
        check_run_folder(path, writable=_stored_metrics(path) is None or args.clip is not None)
    if not args.no_video:
        if args.out.suffix.lower() != ".mp4":
            raise ConfigError(f"-o {args.out} must end in .mp4 (the side-by-side video is H.264 mp4)")
        check_output_file(args.out, "video")
    scorer = clip_scorer(args)
    runs, computed = [], []
    for path in args.runs:
        run = load_run(path)
        computed.append(_metrics(run, args.colmap, scorer, args.prompt))
        if not args.no_video:  # held for the video only, so --no-video needs one run in memory
            runs.append(run)
    for path, (metrics, new) in zip(args.runs, computed):
        if new:
            write_metrics(path, metrics)
    results = {name: metrics for name, (metrics, _) in zip(names, computed)}
    if args.json:
        print(json.dumps(results, allow_nan=False))
    else:
        print(format_table(results))
    if not args.no_video:
        frames = write_video(args.out, side_by_side_frames(runs), fps=args.fps)
        if not args.json:
            print(f"wrote {args.out} ({count(frames, 'frame')})")
    return 0
