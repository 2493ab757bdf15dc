"""`wanderview trajectory`: write a named camera path as transforms.json, convert or plot a camera file."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from wanderview.cli._text import count
from wanderview.errors import ConfigError

_EPILOG_HEAD = """\
SPEC is a trajectory NAME, NAME:key=value,... (e.g. orbit:angle_deg=20,depth=1.5) or a camera file
(transforms.json, RealEstate10K .txt, LLFF poses_bounds.npy). Poses are relative to a camera at the
origin looking down +z (OpenCV axes); translations are in units of --scale.

trajectories and their parameters (defaults):
"""

_EXAMPLES = """

examples:
  wanderview trajectory orbit:angle_deg=20 --frames 48 -o cams.json --plot orbit.png
  wanderview trajectory scenescape:seed=3 --frames 100 --scale 2.5 -o cams.json
  wanderview trajectory keyframes:file=keys.json --frames 120 -o smooth.json
  wanderview trajectory path/to/cameras.txt --plot cams.png     (plot any camera file as it is)
"""


def _positive_int(text: str) -> int:
    """argparse type: a whole number; values < 1 are reported as a ConfigError by run()."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def register(subparsers) -> None:
    """Add the `trajectory` sub-command."""
    from wanderview.cameras.trajectories import describe_trajectories

    parser = subparsers.add_parser(
        "trajectory",
        help="write, convert or plot a camera path",
        description="Write a named camera path as a nerfstudio transforms.json (OpenGL axes in the file), "
        "convert a camera file, and/or plot it.",
        epilog=_EPILOG_HEAD + describe_trajectories() + _EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", metavar="SPEC", help="trajectory NAME[:key=value,...] or a camera file")
    parser.add_argument("--frames", type=_positive_int, default=48, help="number of frames (default 48)")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="camera file to write: .json (transforms.json) or .txt (RealEstate10K)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG with a top and a side view of the path (.png is added when missing)")
    parser.add_argument("--width", type=_positive_int, default=512, help="image width (default 512)")
    parser.add_argument("--height", type=_positive_int, default=512, help="image height (default 512)")
    parser.add_argument("--fov", type=_positive_float, default=55.0,
                        help="horizontal field of view in degrees of the start camera (default 55)")
    parser.add_argument("--scale", type=_positive_float, default=1.0,
                        help="scene scale: the length of one trajectory unit (default 1.0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build (or read) the cameras, then write the requested files. Returns 0."""
    from wanderview.cameras.camera import Camera
    from wanderview.cameras.trajectories import is_camera_file, make_trajectory
    from wanderview.io.cameras import read_cameras, write_re10k, write_transforms_json
    from wanderview.io.rundir import check_output_file

    if args.out is None and args.plot is None:
        raise ConfigError("nothing to do: give -o FILE.json and/or --plot FILE.png")
    if args.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {args.frames}")
    if args.width < 1 or args.height < 1:
        raise ConfigError(f"--width and --height must be at least 1, got {args.width}x{args.height}")
    if not 0 < args.fov < 180:
        raise ConfigError(f"--fov must be between 0 and 180 degrees, got {args.fov}")
    out_kind = None
    if args.out is not None:
        out_kind = {".json": "json", ".txt": "txt"}.get(args.out.suffix.lower())
        if out_kind is None:
            raise ConfigError(f"-o {args.out} must end in .json (transforms.json) or .txt (RealEstate10K)")
    if args.plot is not None:
        if not args.plot.suffix:  # matplotlib would add .png itself: name the file it really writes
            args.plot = args.plot.with_name(args.plot.name + ".png")
        if args.plot.suffix.lower() != ".png":
            raise ConfigError(f"--plot {args.plot} must be a .png file")
        check_output_file(args.plot, "plot")
    if args.out is not None:
        check_output_file(args.out, "camera file")
    if args.out is not None and args.plot is not None and args.out.absolute() == args.plot.absolute():
        raise ConfigError("-o and --plot name the same file")

    if is_camera_file(args.spec):
        # a camera file is shown and converted as it is, in its own coordinates
        cameras = read_cameras(args.spec, width=args.width, height=args.height)
    else:
        start = Camera.from_fov(args.fov, args.width, args.height)
        cameras = make_trajectory(args.spec, args.frames, start, scene_scale=args.scale)

    if out_kind == "json":
        write_transforms_json(args.out, cameras, extra={"wanderview_trajectory": args.spec})
    elif out_kind == "txt":
        write_re10k(args.out, cameras, url=f"wanderview trajectory {args.spec}")
    if args.plot is not None:
        from wanderview.cameras.plot import plot_trajectory
        from wanderview.io.images import atomic_output

        with atomic_output(args.plot) as tmp:  # a killed plot never leaves half a PNG
            plot_trajectory(cameras, tmp, title=f"{args.spec}  ({count(len(cameras), 'camera')})")
    written = ", ".join(str(p) for p in (args.out, args.plot) if p is not None)
    print(f"wrote {written} ({count(len(cameras), 'camera')})")
    return 0
