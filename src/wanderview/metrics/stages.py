"""Which frames of a run belong to a stage (``stages.json``, written by dreamjourney), so that
``wanderview eval --stage transition`` scores the camera transitions apart from the dynamics."""

from __future__ import annotations

import json
from pathlib import Path

from wanderview.errors import InputError


def stage_frames(run_dir: str | Path, stage: str) -> list[int]:
    """Sorted frame indices of every ``stage`` entry of RUN_DIR/stages.json (ends included).

    Raises InputError when the run has no stages.json, it is malformed, or no entry is that stage.
    """
    path = Path(run_dir) / "stages.json"
    if not path.is_file():
        raise InputError(f"{run_dir} has no stages.json, so --stage cannot select frames")
    try:
        entries = json.loads(path.read_text())["stages"]
        frames = {
            i for e in entries if e["stage"] == stage for i in range(int(e["start"]), int(e["end"]) + 1)
        }
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path} is not a valid stages file ({err})") from None
    if not frames:
        kinds = sorted({str(e.get("stage")) for e in entries if isinstance(e, dict)})
        raise InputError(f"{path} has no {stage!r} stage (it has: {', '.join(kinds) or 'none'})")
    return sorted(frames)
