"""`wanderview models`: list the model backends, which are usable here, and how to get the rest."""

from __future__ import annotations

import argparse
import json

from wanderview.backends.catalog import KIND_TITLES, KINDS, catalog


def register(subparsers) -> None:
    """Add the `models` command."""
    parser = subparsers.add_parser(
        "models",
        help="list model backends, whether each is usable here, and how to fetch the rest",
        description=(
            "List every backend a model option accepts (--depth-model, --inpainter, --generator, "
            "and dreamjourney's --video-model and --vlm), whether it is usable on this machine "
            "(dependencies installed, "
            "weights in the local Hugging Face cache; nothing is downloaded), the GPU memory each "
            "needs (approximate, from the model cards) and the command that fetches missing weights. "
            "Any hf:<hub-id-or-folder> works, not only the defaults listed."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kind", choices=KINDS, default=None, help="list one kind only")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the catalog; returns 0."""
    rows = catalog(args.kind)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "kind": e.kind,
                        "spec": e.spec,
                        "description": e.description,
                        "usable": a.usable,
                        "status": a.status,
                        "fetch": a.action,
                        "gpu_memory": e.gpu_memory,
                        "weak_default": e.is_weak_default,
                    }
                    for e, a in rows
                ],
                indent=2,
            )
        )
        return 0
    for kind in KINDS:
        group = [(e, a) for e, a in rows if e.kind == kind]
        if not group:
            continue
        print(f"{KIND_TITLES[kind]}:")
        width = max(len(e.spec) for e, _ in group)
        for entry, avail in group:
            mark = "yes" if avail.usable else "no "
            weak = " [weak default]" if entry.is_weak_default else ""
            print(f"  {mark}  {entry.spec:<{width}}  {entry.description}{weak}")
            print(
                f"       {'':<{width}}  GPU memory: {entry.gpu_memory}; status: {avail.status}"
                + (f"; to use: {avail.action}" if avail.action else "")
            )
        print()
    print(
        "GPU memory figures are approximate. Weights are never downloaded at run time: fetch them "
        "with the command shown, or pass a local folder as hf:/path/to/model."
    )
    return 0
