"""`wanderview demo`: the main job on embedded data, no downloads.

The Middlebury 2014 motorcycle photo ships inside scikit-image with its ground-truth disparity;
turned into metric depth with the published calibration it is a real photo with exact depth,
so the demo shows what photo3d does without any model.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

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
    p.add_argument("--scene", choices=["mesh", "points"], default="mesh")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--resume", action="store_true", help="continue a killed demo run")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.data.samples import middlebury_pair
    from wanderview.io.images import write_image
    from wanderview.methods import photo3d

    sample = middlebury_pair()
    with tempfile.TemporaryDirectory(prefix="wanderview-demo-") as tmp:
        image_path, depth_path = Path(tmp) / "motorcycle.png", Path(tmp) / "motorcycle_depth.npy"
        write_image(image_path, sample.left)
        np.save(depth_path, sample.left_depth[0].numpy())
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
    print(f"demo: {result.num_frames} frames of the Middlebury motorcycle; video: {result.video}")
    return 0
