"""`wanderview photo3d IMAGE ...`: one photo to a 3D photo video."""

from __future__ import annotations

import argparse

from wanderview.cli.common import add_config_options, config_from_args

HELP = """\
Lift a photo to 3D (a mesh or point cloud from its depth), render it along a camera path, fill
what each new view reveals with an inpainter, fuse the filled content back into the scene so that
later frames reuse it, and write a run folder (video.mp4, frames/, depth/, masks/, cameras.json,
the scene, config.json, manifest.json).

Depth: --depth FILE (exact), else --depth-model. The embedded default `heuristic` is a WEAK
stand-in (a ground plane rising to a horizon, sky far, refined along image edges) — pass a real
model for real photos, e.g. --depth-model hf:depth-anything/Depth-Anything-V2-Small-hf.
Inpainting: `telea`/`ns` (OpenCV, smooth fill — fine for thin disocclusions, blurry on big ones),
`patchmatch` (copies texture), `selfsup` (a small shipped prior finetuned on this photo's own
cycle-rendered holes at run time, ~1-2 min on CPU, refining a PatchMatch fill; weak next to
Stable Diffusion), `none`
(holes stay empty; masks/ records them), or hf:<stable-diffusion-inpainting id or folder>.

Out-animation (--outanimate --object-mask MASK.png, or an RGBA image whose alpha is the object):
stage 1 centres the object on a canvas --canvas-scale times larger and outpaints the rest with the
inpainter and --prompt (saved as outanimate_canvas.png); stage 2 makes the 3D photo video of that
canvas with depth from --depth-model (a --depth file cannot cover the invented canvas). The
embedded inpainters only extend the object's own colours/textures; new scenery needs hf:<id>.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from wanderview.methods import photo3d

    p = sub.add_parser(
        "photo3d",
        help="one photo -> a 3D photo video",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(p, photo3d.Config, positional=("image",))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.methods import photo3d

    config = config_from_args(photo3d.Config, args, "photo3d")
    result = photo3d.run(config, args.out, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    print(f"wrote {result.num_frames} frame{'s' * (result.num_frames != 1)}; video: {result.video}")
    return 0
