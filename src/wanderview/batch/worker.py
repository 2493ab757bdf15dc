"""One attempt of one job, in the worker's process: the method command through the real CLI.

Both executors run :func:`run_job`: the local executor in a fresh process per attempt
(``python -m wanderview.batch.worker JOB.json RESULT.json``), a Ray worker in its actor process.
The attempt looks at the run folder itself (so a worker on another node decides by what the shared
storage holds): a finished folder is skipped, an unfinished one resumes with ``--resume``.

Exit codes of the command decide the status: 0 finished, 2 ``error`` (a user mistake, e.g. a resume
whose options differ: retrying cannot help), 130 cancelled, anything else ``failed`` (retried).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from wanderview.batch.folders import folder_state, metric_value, run_frames, saved_metrics

COLMAP_METRICS = "colmap"


def _last_error(text: str) -> str:
    """The one sentence a failed command printed (its last 'error:' line, else its last line)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    chosen = (errors or lines or [""])[-1]
    return chosen.split("error: ", 1)[-1] if "error: " in chosen else chosen


def call_cli(argv: list[str], cwd: str) -> tuple[int, str, str]:
    """Run ``wanderview ARGV`` in this process with ``cwd`` as working directory.

    Returns:
        (exit code, captured stdout, captured stderr). An exception that escapes the command (a
        bug, not a user error) gives exit code 1 and its traceback as stderr.
    """
    from wanderview.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = int(main(argv) or 0)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            except KeyboardInterrupt:
                code = 130
            except Exception:  # a crash of the command: report it, the batch goes on
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(previous)
    return code, out.getvalue(), err.getvalue()


def _metrics(out: Path, names: list[str], cwd: str) -> tuple[dict, str | None]:
    """The requested metrics of a finished run, from its metrics.json or computed by ``eval``."""
    if not names:
        return {}, None
    saved = saved_metrics(out)
    if saved is None or any(metric_value(saved, n) is None for n in names):
        colmap = any(n.split(".")[0] == COLMAP_METRICS for n in names)
        code, _, err = call_cli(["eval", str(out), "--json", "--colmap" if colmap else "--no-colmap"], cwd)
        if code != 0:
            return {}, f"eval failed: {_last_error(err)}"
        saved = saved_metrics(out)
    return {n: metric_value(saved, n) for n in names}, None


def run_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one attempt of the job described by ``payload`` (see ``Job.payload``).

    Returns:
        plain data: ``status`` (finished, skipped, error, failed, cancelled), ``rc``, ``seconds``,
        ``resumed``, ``frames``, ``metrics``, ``error`` (one sentence or None), ``pid``.
    """
    start = time.perf_counter()
    out = Path(payload["out"])
    method = payload["method"]
    result: dict[str, Any] = {
        "status": "failed",
        "rc": None,
        "resumed": False,
        "frames": None,
        "metrics": {},
        "error": None,
        "pid": os.getpid(),
    }
    state = folder_state(out, method)
    if not Path(payload["cwd"]).is_dir():  # a Ray node without the shared storage
        result.update(
            status="error",
            rc=2,
            error=f"the jobs file's folder {payload['cwd']} is not visible "
            f"on this worker ({os.uname().nodename}); inputs and outputs must be on shared storage",
        )
    elif state == "finished":
        result.update(status="skipped", rc=0)
    elif state.startswith("foreign"):
        result.update(status="error", rc=2, error=state.partition(":")[2].strip())
    else:
        argv = [method, *payload["argv"]]
        if state == "partial":
            argv.append("--resume")
            result["resumed"] = True
        if payload.get("quiet_flag"):
            argv.append("--quiet")
        code, _, err = call_cli(argv, payload["cwd"])
        status = {0: "finished", 2: "error", 130: "cancelled"}.get(code, "failed")
        result.update(status=status, rc=code, error=None if code == 0 else _last_error(err))
    if result["status"] in ("finished", "skipped"):
        result["frames"] = run_frames(out)
        result["metrics"], metrics_error = _metrics(out, payload.get("metrics", []), payload["cwd"])
        if metrics_error:
            result["error"] = metrics_error
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m wanderview.batch.worker JOB.json RESULT.json``: one attempt, result as JSON."""
    # Ctrl-C is forwarded as SIGINT; a parent that ignores SIGINT (a background shell job) must not
    # make this process ignore it too
    signal.signal(signal.SIGINT, signal.default_int_handler)
    job_file, result_file = (argv if argv is not None else sys.argv[1:])[:2]
    payload = json.loads(Path(job_file).read_text(encoding="utf-8"))
    result = run_job(payload)
    tmp = Path(result_file).with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, result_file)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process by the local executor
    sys.exit(main())
