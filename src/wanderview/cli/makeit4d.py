"""`wanderview makeit4d IMAGE ...`: one image to a long animated flythrough (Make-It-4D)."""

from __future__ import annotations

import argparse

from wanderview.cli.common import add_config_options, config_from_args

HELP = """\
Make-It-4D (Shen et al. 2023): outpaint the image on a 1.5x canvas, predict its depth, cut it into
depth layers (Ward clustering; layers that meet without a depth jump are merged), inpaint what each
layer's foreground hides, give every layer depth (Eq. 4-5), lift all layers to one point cloud, animate
it with an Eulerian motion field in 3D (symmetric splatting: a seamless loop, no holes behind moving
content), and fly through it along an autocruise path, rendering with bilinear point splats.

Writes a run folder: video.mp4, frames/, depth/, masks/, cameras.json, points.ply (static layers),
layers/ (RGBA + depth of every layer), canvas.png, flow.png + flow.npy, makeit4d.json (canvas and
input intrinsics, layer edges), config.json, manifest.json; video.gif with --gif.

Motion (the first that is given): --motion-mask M.png --motion-vector DX,DY; --motion HINTS.json
(3D-Cinemagraphy's labelme hints: polygons = what moves, lines = arrows, speed = length / 50 px per
frame); --motion-video CLIP (its median optical flow, OpenCV DIS/Farneback); --motion sky:DX,DY (the
farthest depth cluster drifts); --motion none (static: use it to measure consistency as the paper does).

CPU defaults are WEAKER than the paper's models: depth `heuristic` (a ground-plane prior; pass --depth
FILE or --depth-model hf:<id>), inpainting `patchmatch` (copies texture; hf:<stable diffusion
inpainting id> invents new content). The paper's learned feature encoder/decoder has no public weights:
points carry RGB colours (recorded in the manifest). The layered scene is built and rendered on the CPU;
only model calls run on --device.
Ablations (paper Table 2): --no-outpaint, --no-layer-inpaint, --per-frame (render-refine-repeat).
"""


def register(sub: argparse._SubParsersAction) -> None:
    from wanderview.methods import makeit4d

    p = sub.add_parser(
        "makeit4d",
        help="one image -> an animated 3D flythrough (Make-It-4D)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(p, makeit4d.Config, positional=("image",))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.methods import makeit4d

    config = config_from_args(makeit4d.Config, args, "makeit4d")
    result = makeit4d.run(config, args.out, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    print(f"wrote {result.num_frames} frame{'s' * (result.num_frames != 1)}; video: {result.video}")
    return 0
