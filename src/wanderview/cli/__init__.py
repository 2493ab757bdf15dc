"""`wanderview <command>`: the command-line front end.

Each command lives in its own module of this package and exposes ``register(subparsers)``, which
adds a sub-parser whose ``func(args) -> int`` runs it. Commands are discovered here, so adding a
command never edits this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from wanderview.errors import WanderviewError

# Commands appear in --help in this order; discovered modules not named here follow alphabetically.
_ORDER = ["demo", "photo3d", "scenescape", "trajectory", "models", "train_inpainter", "eval", "compare"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one sentence (no usage dump) and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_modules() -> list[str]:
    found = [
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name != "common"
    ]
    return sorted(found, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every discovered command."""
    from wanderview import __version__

    parser = _Parser(
        prog="wanderview",
        description="Turn one image or one prompt into a long, camera-controlled, 3D-consistent scene video.",
    )
    parser.add_argument("--version", action="version", version=f"wanderview {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (2 for any user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return int(exit_.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except WanderviewError as err:
        print(f"wanderview: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wanderview: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
