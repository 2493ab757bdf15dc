"""`wanderview view RUN_DIR [--port 8080] [--host 127.0.0.1]`: look at a run in the browser (viser)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = """\
Serve a run folder in a viser 3D viewer (needs the [viewer] extra: pip install 'wanderview[viewer]')
and print its URL; Ctrl-C stops it. Shown: the scene (mesh, points, or Gaussian splats with a switch
to their centres as points, since viser's splats are experimental), every frame's camera as a frustum
with the frame inside, the camera path, a frame slider that moves the view to that frame's camera, a
time slider for dynamic scenes (scene_t/, or a fourreal run: its Gaussians moved by
deformation.safetensors at the reference times), and a button that renders the current view with
wanderview's own renderer and saves it as RUN_DIR/views/view_NNN.png.
The server listens on 127.0.0.1 only (this machine); --host 0.0.0.0 makes it reachable from the network.
Example: wanderview view runs/demo --port 8080
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="look at a run folder in the browser (viser 3D viewer)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run folder written by a wanderview command")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; the next free one if taken)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.share.run import open_run
    from wanderview.share.viewer import import_viser, serve

    run_folder = open_run(args.run_dir)  # refuse a non-run folder before importing viser
    import_viser()
    return serve(run_folder, host=args.host, port=args.port)
