"""`wanderview makeit4d IMAGE ...`: one image to a long animated flythrough (Make-It-4D)."""

from __future__ import annotations

import argparse
from pathlib import Path

from wanderview.cli.common import add_common_options, add_model_options, model_options, resolve_device

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
farthest layer drifts); --motion none (static: use it to measure consistency as the paper does).

CPU defaults are WEAKER than the paper's models: depth `heuristic` (a ground-plane prior; pass --depth
FILE or --depth-model hf:<id>), inpainting `patchmatch` (copies texture; hf:<stable diffusion
inpainting id> invents new content). The paper's learned feature encoder/decoder has no public weights:
points carry RGB colours (recorded in the manifest).
Ablations (paper Table 2): --no-outpaint, --no-layer-inpaint, --per-frame (render-refine-repeat).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "makeit4d",
        help="one image -> an animated 3D flythrough (Make-It-4D)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", type=Path, help="input image")
    g = p.add_argument_group("depth and inpainting")
    g.add_argument("--depth", type=Path, default=None, help="depth of the image: .npy, 16-bit PNG or PFM")
    g.add_argument("--depth-kind", choices=["depth", "disparity"], default="depth")
    g.add_argument("--depth-scale", type=float, default=1.0, help="multiplier for stored depth values")
    g.add_argument("--depth-model", default="heuristic", help="heuristic (weak default) or hf:<id or folder>")
    g.add_argument(
        "--inpainter",
        default="patchmatch",
        help="patchmatch (default), selfsup, telea, ns, hf:<id or folder>, none (with both ablations)",
    )
    g.add_argument("--prompt", default="", help="text for inpainters that read one")
    g.add_argument("--negative-prompt", default=None)
    g.add_argument(
        "--inpaint-steps", type=int, default=50, help="denoising steps of hf: inpainters (default 50)"
    )
    g = p.add_argument_group("canvas and layers")
    g.add_argument("--no-outpaint", dest="outpaint", action="store_false", help="ablation: no outpainting")
    g.add_argument("--canvas-scale", type=float, default=1.5, help="canvas side / image side (default 1.5)")
    g.add_argument(
        "--placement",
        choices=["center", "bottom"],
        default="center",
        help="where the image sits on the canvas (default center; bottom = the paper's layout)",
    )
    g.add_argument("--layers", type=int, default=3, help="depth layers before merging (default 3)")
    g.add_argument(
        "--layer-threshold",
        type=float,
        default=None,
        help="Ward distance threshold instead of --layers (3D-Cinemagraphy: 5)",
    )
    g.add_argument(
        "--merge-jump",
        type=float,
        default=0.04,
        help="relative disparity step counted as a depth discontinuity (default 0.04)",
    )
    g.add_argument(
        "--no-layer-inpaint",
        dest="layer_inpaint",
        action="store_false",
        help="ablation: do not fill what nearer layers hide",
    )
    g.add_argument(
        "--layer-margin", type=int, default=32, help="hole band reach around a layer, px (default 32)"
    )
    g.add_argument(
        "--layer-depth",
        choices=["auto", "remap", "keep"],
        default="auto",
        help="Eq. 4-5 remap, keep the canvas depth, or auto (remap for hf: depth without --depth)",
    )
    g.add_argument(
        "--per-frame",
        action="store_true",
        help="ablation: render-refine-repeat every frame instead of inpainted layers",
    )
    g = p.add_argument_group("motion")
    g.add_argument("--motion", default="none", help="none (default), sky:DX,DY, or a hints .json file")
    g.add_argument("--motion-mask", type=Path, default=None, help="mask of what moves (the image's size)")
    g.add_argument("--motion-vector", default=None, help="DX,DY pixels per frame inside --motion-mask")
    g.add_argument("--motion-video", type=Path, default=None, help="a clip (folder of frames or video file)")
    g.add_argument("--flow-method", choices=["dis", "farneback"], default="dis")
    g.add_argument(
        "--loop-frames", type=int, default=None, help="period of the motion loop (default --frames)"
    )
    g.add_argument("--gif", action="store_true", help="also write video.gif (the loop)")
    g = p.add_argument_group("camera")
    g.add_argument(
        "--speed",
        type=float,
        default=0.005,
        help="autocruise step per frame in units of the near depth (default 0.005)",
    )
    g.add_argument("--fly-out", action="store_true", help="autocruise backward, out of the image")
    g.add_argument("--fov", type=float, default=55.0, help="horizontal field of view in degrees (default 55)")
    g.add_argument("--focal", type=float, default=None, help="focal length in pixels (overrides --fov)")
    g.add_argument(
        "--max-side", type=int, default=512, help="downscale inputs larger than this (default 512)"
    )
    add_common_options(p, frames=100, trajectory="autocruise")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.methods import makeit4d

    config = makeit4d.Config(
        image=args.image,
        depth=args.depth,
        depth_kind=args.depth_kind,
        depth_scale=args.depth_scale,
        depth_model=args.depth_model,
        inpainter=args.inpainter,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        inpaint_steps=args.inpaint_steps,
        outpaint=args.outpaint,
        canvas_scale=args.canvas_scale,
        placement=args.placement,
        num_layers=None if args.layer_threshold is not None else args.layers,
        layer_threshold=args.layer_threshold,
        merge_jump=args.merge_jump,
        layer_inpaint=args.layer_inpaint,
        layer_margin=args.layer_margin,
        layer_depth=args.layer_depth,
        per_frame=args.per_frame,
        motion=args.motion,
        motion_mask=args.motion_mask,
        motion_vector=args.motion_vector,
        motion_video=args.motion_video,
        flow_method=args.flow_method,
        loop_frames=args.loop_frames,
        gif=args.gif,
        speed=args.speed,
        fly_out=args.fly_out,
        fov=args.fov,
        focal=args.focal,
        trajectory=args.trajectory,
        frames=args.frames,
        width=args.width,
        height=args.height,
        max_side=args.max_side,
        seed=args.seed,
        fps=args.fps,
        **model_options(args, resolve_device(args.device)),
    )
    result = makeit4d.run(config, args.out, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    print(f"wrote {result.num_frames} frames; video: {result.video}")
    return 0
