"""What a job's run folder holds, read from the run-folder layout alone (docs/design.md).

A finished run has ``OUT/manifest.json`` (written last, then the staging folder is renamed onto
``OUT``); an unfinished one has the staging folder ``.OUT.partial`` beside ``OUT``, which the
method's ``--resume`` continues.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def staging_path(out: Path) -> Path:
    """The staging folder of ``out`` (``.NAME.partial`` beside it), as the run folder code names it."""
    try:
        from wanderview.io.rundir import RunDir

        return Path(RunDir.staging_path(out))
    except (ImportError, AttributeError):  # pragma: no cover - the layout is documented; keep it working
        return out.parent / f".{out.name}.partial"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def folder_state(out: Path, method: str | None = None) -> str:
    """``finished``, ``partial``, ``new`` or ``foreign: <one sentence>`` for the run folder ``out``.

    ``foreign`` is a folder batch must not touch: a file, a non-empty folder that is no finished run,
    or a finished run of another method than ``method``.
    """
    if out.exists() and not out.is_dir():
        return f"foreign: the output path {out} is a file"
    if (out / "manifest.json").is_file():
        config = _read_json(out / "config.json")
        other = config.get("method") if isinstance(config, dict) else None
        if method is not None and other is not None and other != method:
            return f"foreign: {out} holds a finished {other} run, not {method}; choose another out"
        return "finished"
    if out.is_dir() and any(out.iterdir()):
        return (
            f"foreign: the output folder {out} exists and holds no finished run (no manifest.json); "
            "move it away or choose another out"
        )
    if staging_path(out).is_dir():
        return "partial"
    return "new"


def run_frames(out: Path) -> int | None:
    """Frames of a finished run (its manifest's count, else the files in ``frames/``)."""
    manifest = _read_json(out / "manifest.json")
    if isinstance(manifest, dict) and isinstance(manifest.get("frames"), int):
        return manifest["frames"]
    frames = out / "frames"
    return len(list(frames.glob("*.png"))) if frames.is_dir() else None


def saved_metrics(out: Path) -> dict | None:
    """``OUT/metrics.json`` written by ``wanderview eval``, or None."""
    data = _read_json(out / "metrics.json")
    return data if isinstance(data, dict) else None


def metric_value(metrics: dict | None, name: str) -> Any:
    """A dotted metric (``colmap.registered_fraction``) from eval's JSON; None when absent."""
    value: Any = metrics
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
