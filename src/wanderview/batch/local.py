"""``--executor local``: each attempt in its own process, at most ``workers`` at once; no Ray.

An attempt is ``python -m wanderview.batch.worker JOB.json RESULT.json`` (the method command
through the real CLI, see ``worker.py``). A process that dies without writing its result (killed,
out of memory) is a failed attempt, retried with ``--resume``. Children run in their own session so
that a Ctrl-C reaches only the driver, which forwards one SIGINT to each running job (the command
stops and keeps its staging folder for the next ``batch`` call), waits, then kills stragglers.

Threads: unless OMP_NUM_THREADS is set, each job gets ``cpu_count // workers`` of them, so N jobs do
not fight over the cores (torch's OpenMP threads spin on busy cores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from tqdm import tqdm

from wanderview.batch.runner import Batch, Record

POLL_S = 0.05
CANCEL_WAIT_S = 20.0


def _child_env(workers: int) -> dict[str, str]:
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    # the children must import this very package, also when it runs from a source tree
    src = str(Path(__file__).resolve().parents[2])
    if "site-packages" not in src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def _died(code: int) -> dict:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = f"the worker process was killed ({name})"
    else:
        why = f"the worker process exited with code {code} before reporting"
    return {"status": "failed", "rc": code, "error": why, "seconds": None}


class _Attempt:
    """A running worker process and the files it talks through."""

    def __init__(self, record: Record, batch: Batch, folder: Path, env: dict) -> None:
        self.record = record
        self.job_file = folder / f"job{record.job.index}-try{record.attempts + 1}.json"
        self.result_file = self.job_file.with_suffix(".result.json")
        self.stderr_file = self.job_file.with_suffix(".stderr.txt")
        self.job_file.write_text(json.dumps(batch.payload(record)), encoding="utf-8")
        self.start = time.perf_counter()
        # stderr goes to a file: a pipe nobody reads would block a chatty child
        with open(self.stderr_file, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "wanderview.batch.worker", str(self.job_file), str(self.result_file)],
                cwd=record.job.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    def result(self) -> dict:
        self.process.wait()
        wall = round(time.perf_counter() - self.start, 3)  # the whole process: start-up and imports too
        if self.result_file.is_file():
            return {**json.loads(self.result_file.read_text(encoding="utf-8")), "seconds": wall}
        result = _died(self.process.returncode)
        text = (
            self.stderr_file.read_text(encoding="utf-8", errors="replace")
            if self.stderr_file.is_file()
            else ""
        )
        tail = [line for line in text.splitlines() if line.strip()]
        if tail and self.process.returncode > 0:
            result["error"] += f": {tail[-1].strip()}"
        result["seconds"] = wall
        return result


def run_local(batch: Batch, records: list[Record], workers: int = 1, quiet: bool = False) -> None:
    """Run ``records`` (retries included) with at most ``workers`` processes at once.

    Raises:
        KeyboardInterrupt: after cancelling the running jobs (their staging folders stay).
    """
    batch.executor = f"local ({workers} worker{'s' if workers != 1 else ''})"
    env = _child_env(workers)
    queue = deque(records)
    running: list[_Attempt] = []
    bar = tqdm(total=len(records), desc="batch", unit="job", disable=quiet)
    with tempfile.TemporaryDirectory(prefix="wanderview-batch-") as tmp:
        try:
            while queue or running:
                while queue and len(running) < workers:
                    record = queue.popleft()
                    record.status = "running"
                    running.append(_Attempt(record, batch, Path(tmp), env))
                time.sleep(POLL_S)
                for attempt in [a for a in running if a.process.poll() is not None]:
                    running.remove(attempt)
                    if batch.record(attempt.record, attempt.result()):
                        queue.appendleft(attempt.record)
                    else:
                        bar.update(1)
        except KeyboardInterrupt:
            _cancel(batch, running)
            raise
        finally:
            bar.close()


def _cancel(batch: Batch, running: list[_Attempt]) -> None:
    """SIGINT every running job, wait for them to stop, kill what is left; record them cancelled."""
    for attempt in running:
        if attempt.process.poll() is None:
            attempt.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + CANCEL_WAIT_S
    for attempt in running:
        try:
            attempt.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            attempt.process.kill()
            attempt.process.wait()
        result = attempt.result()
        if result.get("status") not in ("finished", "skipped"):
            result.update(status="cancelled", error="cancelled by Ctrl-C; the next batch call resumes it")
        batch.record(attempt.record, result)
    batch.cancel_pending()
