"""`wanderview app [--port 7860] [--host 127.0.0.1] [--runs-dir DIR]`: the Gradio app."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = """\
A web app (needs the [app] extra: pip install 'wanderview[app]'): upload an image or type a prompt,
pick the method, its backends (only those usable here are offered) and a camera path (plotted before
you run), run it with a progress bar, then watch the video, turn the scene in a 3D view and download
the run folder as a zip. Runs queue one at a time; the page stays responsive meanwhile.
CPU defaults: 12 frames at 192 px (longer side) with the embedded backends, which are WEAK stand-ins
for the neural models; raise both sliders and pick hf: models on a GPU.
The server listens on 127.0.0.1 only (this machine); --host 0.0.0.0 makes it reachable from the network.
Example: wanderview app --port 7860 --runs-dir runs/app
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="a web app (Gradio) that runs a method and shows its video and scene",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="folder for the runs' output folders (default: a new temporary folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wanderview.share.app import import_gradio
    from wanderview.share.viewer import is_loopback

    import_gradio()
    if not is_loopback(args.host):
        print(f"warning: serving on {args.host}: the app is reachable from the network, "
              "not only this machine", file=sys.stderr)
    from wanderview.share.app_ui import launch

    launch(args.runs_dir, host=args.host, port=args.port, block=True)
    return 0
