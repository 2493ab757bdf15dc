"""`wanderview export RUN_DIR --to nerfstudio|glb|ply|splat -o OUT`: a run folder for other tools."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = """\
Export a run folder:
  nerfstudio  a dataset folder nerfstudio/gsplat train on: images/, transforms.json (OpenGL axes,
              fl_x fl_y cx cy w h, relative file_path), depth/*.npy with depth_file_path per frame
              (z-depth x 1000, 0 = unknown: nerfstudio's default depth_unit_scale_factor 1e-3 gives
              the run's units back), sparse_pc.ply (ply_file_path: splatfacto's initial points)
  glb         the scene (mesh, or points) with vertex colours, y-up, for web viewers and Blender
  ply         the scene in the run's OpenCV world axes (mesh with faces, or points)
  splat       Gaussians as the standard 3DGS PLY (SuperSplat, Gradio Model3D), or with -o NAME.splat
              the compact web .splat format; a mesh or point run is converted to one isotropic Gaussian
              per vertex/point, 0.7 of the pixel it was captured from (a conversion, not a 3DGS fit)
Example: wanderview export runs/demo --to nerfstudio -o runs/demo_ns
"""


FORMATS = ("nerfstudio", "glb", "ply", "splat")  # share.export.FORMATS, kept here so --help stays light


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run folder: nerfstudio dataset, GLB, PLY or 3DGS splats",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run folder written by a wanderview command")
    p.add_argument("--to", required=True, choices=FORMATS, help="what to write")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="output: a folder for nerfstudio, a .glb/.ply (or .splat) file otherwise")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.share.export import export_run
    from wanderview.share.run import open_run

    written = export_run(open_run(args.run_dir), args.to, args.out, overwrite=args.overwrite)
    print(f"wrote {written}")
    return 0
