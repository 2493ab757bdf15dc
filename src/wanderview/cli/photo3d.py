"""`wanderview photo3d IMAGE ...`: one photo to a 3D photo video."""

from __future__ import annotations

import argparse
from pathlib import Path

from wanderview.cli.common import add_common_options, add_model_options, model_options, resolve_device

HELP = """\
Lift a photo to 3D (a mesh or point cloud from its depth), render it along a camera path, fill
what each new view reveals with an inpainter, fuse the filled content back into the scene so that
later frames reuse it, and write a run folder (video.mp4, frames/, depth/, masks/, cameras.json,
the scene, config.json, manifest.json).

Depth: --depth FILE (exact), else --depth-model. The embedded default `heuristic` is a WEAK
stand-in (a ground plane rising to a horizon, sky far, refined along image edges) — pass a real
model for real photos, e.g. --depth-model hf:depth-anything/Depth-Anything-V2-Small-hf.
Inpainting: `telea`/`ns` (OpenCV, smooth fill — fine for thin disocclusions, blurry on big ones),
`patchmatch` (copies texture), `selfsup` (trained on this photo itself at run time), `none`
(holes stay empty; masks/ records them), or hf:<stable-diffusion-inpainting id or folder>.

Out-animation (--outanimate --object-mask MASK.png, or an RGBA image whose alpha is the object):
stage 1 centres the object on a canvas --canvas-scale times larger and outpaints the rest with the
inpainter and --prompt (saved as outanimate_canvas.png); stage 2 makes the 3D photo video of that
canvas with depth from --depth-model (a --depth file cannot cover the invented canvas). The
embedded inpainters only extend the object's own colours/textures; new scenery needs hf:<id>.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("photo3d", help="one photo -> a 3D photo video", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, help="input photo (PNG, JPEG, ...)")
    p.add_argument("--depth", type=Path, default=None, help="depth of the photo: .npy, 16-bit PNG or PFM")
    p.add_argument("--depth-kind", choices=["depth", "disparity"], default="depth",
                   help="the depth file holds z-depth or disparity (default depth)")
    p.add_argument("--depth-scale", type=float, default=1.0,
                   help="multiplier for stored depth values (e.g. 0.001 for millimetres; default 1)")
    p.add_argument("--mask-invalid-depth", action="store_true",
                   help="treat NaN/inf/zero/negative depth as unknown instead of refusing the file")
    p.add_argument("--depth-model", default="heuristic",
                   help="depth backend when no --depth is given: heuristic (weak default) or "
                   "hf:<id or folder>")
    p.add_argument("--inpainter", default="telea",
                   help="none, telea (default), ns, patchmatch, selfsup, hf:<id or folder>")
    p.add_argument("--foreground-guard", type=int, default=16,
                   help="hide pixels in front of a hole within this many px from the inpainter, so fills "
                   "continue the background (default 16; 0 = off)")
    p.add_argument("--prompt", default="", help="text for inpainters that use one")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--scene", choices=["mesh", "points"], default="mesh",
                   help="scene representation (default mesh)")
    p.add_argument("--fill-depth", choices=["auto", "background", "model"], default="auto",
                   help="depth of filled pixels: from the background side of the hole, or the depth model "
                   "aligned to the scene (default auto: model for hf: depth models)")
    p.add_argument("--fov", type=float, default=55.0, help="horizontal field of view in degrees (default 55)")
    p.add_argument("--focal", type=float, default=None, help="focal length in pixels (overrides --fov)")
    p.add_argument("--max-side", type=int, default=768,
                   help="downscale inputs whose longer side exceeds this many pixels (default 768)")
    p.add_argument("--max-pixels", type=int, default=4096 * 4096,
                   help="refuse images with more pixels than this, before decoding (default 4096*4096); "
                   "accepted larger images are then downscaled to --max-side")
    p.add_argument("--supersample", type=int, choices=[1, 2], default=1,
                   help="mesh anti-aliasing (default 1)")
    p.add_argument("--inpaint-steps", type=int, default=50,
                   help="denoising steps of hf: inpainters (default 50)")
    p.add_argument("--save-pairs", type=Path, default=None,
                   help="selfsup: also write the cycle-rendered training pairs to this folder as PNGs")
    p.add_argument("--outanimate", action="store_true",
                   help="outpaint a larger canvas around the object first, then animate it (see above)")
    p.add_argument("--object-mask", type=Path, default=None,
                   help="with --outanimate: mask of the object (white = object, same size as IMAGE); "
                   "default: the image's alpha channel")
    p.add_argument("--canvas-scale", type=float, default=1.5,
                   help="with --outanimate: canvas side / image side, 1 to 4 (default 1.5)")
    add_common_options(p, frames=48, trajectory="swing")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.methods import photo3d

    config = photo3d.Config(
        image=args.image, depth=args.depth, depth_kind=args.depth_kind, depth_scale=args.depth_scale,
        mask_invalid_depth=args.mask_invalid_depth, depth_model=args.depth_model, inpainter=args.inpainter,
        foreground_guard=args.foreground_guard,
        prompt=args.prompt, negative_prompt=args.negative_prompt, scene=args.scene,
        fill_depth=args.fill_depth, trajectory=args.trajectory, frames=args.frames, fov=args.fov,
        focal=args.focal, width=args.width, height=args.height, max_side=args.max_side,
        max_pixels=args.max_pixels, supersample=args.supersample, seed=args.seed,
        inpaint_steps=args.inpaint_steps, save_pairs=args.save_pairs, fps=args.fps,
        outanimate=args.outanimate, object_mask=args.object_mask, canvas_scale=args.canvas_scale,
        **model_options(args, resolve_device(args.device)),
    )
    result = photo3d.run(config, args.out, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    print(f"wrote {result.num_frames} frames; video: {result.video}")
    return 0
