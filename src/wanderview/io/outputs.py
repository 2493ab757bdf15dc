"""Output safety shared by every command: what ``--overwrite`` may delete, whether an output can be
written, and the clean-up of temporary files a killed write left (issue #11).

- :func:`check_replaceable` — ``--overwrite`` replaces only an empty folder or one this command
  recognises as its own (a wanderview run folder: ``manifest.json``), never the current folder or
  one above it, never a folder that holds one of the command's inputs.
- :func:`check_writable` / :func:`check_output_file` — refuse an output location that cannot be
  written before any work, not after it.
- :func:`remove_stale_temp_files` — ``kill -9`` skips every clean-up; resume and finalize sweep.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from wanderview.errors import OutputError

# atomic_output's temporary names (".NAME.<random>.tmp.EXT") and plain "*.tmp" files: a run killed
# during a write (kill -9 skips every cleanup) leaves one; resume and finalize sweep them.
_TEMP_NAME = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$|\.tmp$")


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed write left anywhere under ``folder``; returns them."""
    removed = []
    for path in Path(folder).rglob("*"):
        if path.is_file() and _TEMP_NAME.search(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


RUN_MARKER = "manifest.json"


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a finished wanderview run folder: its ``manifest.json`` names wanderview."""
    try:
        data = json.loads((Path(path) / RUN_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    versions = data.get("versions") if isinstance(data, dict) else None
    return isinstance(versions, dict) and "wanderview" in versions


def _contains(folder: Path, path: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (symlinks resolved)."""
    folder, path = folder.resolve(), path.resolve()
    return path == folder or folder in path.parents


def _writable(folder: Path) -> bool:
    # os.access answers for the real user (root passes everything); the rename in finalize() needs
    # write permission on the folder itself when it moves a folder to another parent.
    return os.access(folder, os.W_OK | os.X_OK)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_replaceable(
    out: str | os.PathLike,
    inputs: Sequence[str | os.PathLike] = (),
    *,
    is_ours=is_run_folder,
    what: str = "a wanderview run folder (it has no manifest.json)",
    option: str = "-o",
) -> None:
    """Raise OutputError unless ``--overwrite`` may delete ``out``: empty, or recognisably ours.

    Never the current folder or one above it, and never a folder that holds one of ``inputs``.

    Args:
        out: the folder that would be replaced.
        inputs: paths the command reads (input image, depth, camera file, model folder, ...).
        is_ours: ``is_ours(out) -> bool`` recognises a folder this command wrote.
        what: what ``out`` is not, for the message.
    """
    out = Path(out).absolute()
    if not out.is_dir() or not any(out.iterdir()):
        return
    for path in inputs:
        if path is not None and _contains(out, Path(path)):
            raise OutputError(f"The output folder {out} holds the input {path}; choose another {option}.")
    if _contains(out, Path.cwd()):
        raise OutputError(
            f"The output folder {out} is the current folder or holds it; --overwrite never deletes it, "
            f"choose another {option}."
        )
    if not is_ours(out):
        raise OutputError(
            f"The output folder {out} is not {what}; --overwrite only replaces such a folder or an empty "
            f"one, so choose another {option} or empty it yourself."
        )


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Raise OutputError unless the file ``path`` can be written: not a folder, its folder exists
    and is writable. Returns it as a Path. Checked before the work that produces it."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"The {what} {path} is a folder; give a file name.")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"The folder of the {what} {path} does not exist.")
    if not _writable(parent):
        raise OutputError(f"The folder of the {what} {path} is not writable.")
    return path


def check_writable(out: str | os.PathLike, option: str = "-o") -> None:
    """Raise OutputError unless ``out`` can be created (or replaced) and its parent written.

    Checked before any work, so a read-only location fails in a second, not after the whole run.
    """
    out = Path(out).absolute()
    parent = _nearest_existing(out.parent)
    if not parent.is_dir():
        raise OutputError(f"The output {out} cannot be created: {parent} is a file; choose another {option}.")
    if not _writable(parent):
        raise OutputError(f"The output folder {parent} is not writable; choose another {option}.")
    if out.is_dir() and not _writable(out):
        raise OutputError(f"The output folder {out} is not writable; choose another {option}.")
