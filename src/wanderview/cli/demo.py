"""`wanderview demo`: the main job on embedded data, no downloads.

The Middlebury 2014 motorcycle photo ships inside scikit-image with its ground-truth disparity;
turned into metric depth with the published calibration it is a real photo with exact depth,
so the demo shows what photo3d does without any model.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import tempfile
from pathlib import Path

import numpy as np

from wanderview.cli._text import count
from wanderview.cli.common import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="3D photo video of the Middlebury motorcycle (real photo + true depth, CPU, no downloads)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-o", "--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    p.add_argument("--frames", type=positive_int, default=48, help="number of frames (default 48)")
    p.add_argument("--trajectory", default="swing", help="camera path (default swing)")
    p.add_argument("--inpainter", default="telea", help="inpainting backend (default telea)")
    p.add_argument(
        "--scene", choices=["mesh", "points"], default="mesh",
        help="3D representation: a triangle mesh of the photo (default) or a point cloud",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing wanderview run folder")
    p.add_argument("--resume", action="store_true", help="continue a killed demo run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wanderview" / "demo"


def _write_inputs(folder: Path, sample) -> tuple[Path, Path]:
    """The motorcycle photo and its depth as files photo3d reads (each written atomically)."""
    from wanderview.io.images import atomic_output, write_image

    image_path, depth_path = folder / "motorcycle.png", folder / "motorcycle_depth.npy"
    folder.mkdir(parents=True, exist_ok=True)
    if not image_path.is_file():
        write_image(image_path, sample.left)
    if not depth_path.is_file():
        with atomic_output(depth_path) as tmp:
            np.save(tmp, sample.left_depth[0].numpy())
    return image_path, depth_path


@contextlib.contextmanager
def _demo_inputs(sample):
    """Yield (image, depth) paths of the demo's inputs.

    They live in a cache folder (``$XDG_CACHE_HOME/wanderview/demo``): the same files every time, so
    ``--resume`` continues with the very inputs it started with and nothing temporary is left when
    the demo is killed. Where the cache cannot be written, a temporary folder is used and removed
    even on SIGTERM (turned into a normal exit so the clean-up runs).
    """
    try:
        cached = _write_inputs(_cache_folder(), sample)
    except OSError:
        cached = None
    if cached is not None:
        yield cached
        return
    previous = signal.getsignal(signal.SIGTERM)

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, _exit)
    except ValueError:  # not the main thread: the default handler stays
        previous = None
    try:
        with tempfile.TemporaryDirectory(prefix="wanderview-demo-") as tmp:
            yield _write_inputs(Path(tmp), sample)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    from wanderview.data.samples import middlebury_pair
    from wanderview.methods import photo3d

    sample = middlebury_pair()
    with _demo_inputs(sample) as (image_path, depth_path):
        config = photo3d.Config(
            image=image_path,
            depth=depth_path,
            mask_invalid_depth=True,  # the ground truth marks unknown disparity with inf
            inpainter=args.inpainter,
            scene=args.scene,
            trajectory=args.trajectory,
            frames=args.frames,
            # the full calibrated intrinsics: the principal point is not the image centre
            focal=float(sample.left_camera.fx),
            cx=float(sample.left_camera.cx),
            cy=float(sample.left_camera.cy),
            max_side=10_000,
        )
        result = photo3d.run(config, args.out, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    print(f"demo: {count(result.num_frames, 'frame')} of the Middlebury motorcycle; video: {result.video}")
    return 0
