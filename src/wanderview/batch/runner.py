"""The batch as a whole: per-job records, retries, the summary table and ``batch.json``.

The executors (``local.py``, ``ray_executor.py``) only start attempts and hand each attempt's result
to :meth:`Batch.record`, which decides whether the job is retried; everything a user reads at the
end is built here.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanderview.batch.folders import metric_value, run_frames, saved_metrics
from wanderview.batch.jobs import Job

# Statuses a job ends in; "failed" and "error" count as failures of the batch.
DONE = ("finished", "skipped")
RETRIED = "failed"  # a crash or a killed worker: the next attempt resumes the run folder


@dataclass
class Record:
    """What happened to one job: its final status and each attempt."""

    job: Job
    status: str = "pending"
    attempts: int = 0
    seconds: float = 0.0
    frames: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    history: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "job": self.job.name,
            "method": self.job.method,
            "out": str(self.job.out),
            "argv": self.job.argv,
            "status": self.status,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "frames": self.frames,
            "metrics": self.metrics,
            "error": self.error,
            "history": self.history,
        }


class Batch:
    """The records of one ``wanderview batch`` call.

    Args:
        jobs: the validated jobs.
        retries: extra attempts for a job whose attempt failed (crash, killed worker).
        metrics: dotted metric names from ``wanderview eval`` for the table.
        quiet_flag: pass ``--quiet`` to every job (their progress bars would interleave).
    """

    def __init__(
        self, jobs: list[Job], retries: int = 2, metrics: list[str] | None = None, quiet_flag: bool = True
    ) -> None:
        self.records = [Record(job) for job in jobs]
        self.retries = retries
        self.metrics = list(metrics or [])
        self.quiet_flag = quiet_flag
        self.started = time.time()
        self.wall_s: float | None = None
        self.executor = ""
        self.notes: list[str] = []

    def to_run(self) -> list[Record]:
        """Mark finished folders whose metrics are known as skipped; return the records left to run."""
        pending = []
        for record in self.records:
            out = record.job.out
            known = saved_metrics(out) if self.metrics else {}
            if record.job.state == "finished" and all(
                metric_value(known, m) is not None for m in self.metrics
            ):
                record.status, record.frames = "skipped", run_frames(out)
                record.metrics = {m: metric_value(known, m) for m in self.metrics}
            else:
                pending.append(record)
        return pending

    def payload(self, record: Record) -> dict:
        return record.job.payload(self.metrics, self.quiet_flag)

    def record(self, record: Record, result: dict) -> bool:
        """Store one attempt's result; True when the job should be attempted again."""
        record.attempts += 1
        record.seconds += float(result.get("seconds") or 0.0)
        attempt = {k: result.get(k) for k in ("status", "rc", "seconds", "resumed", "error", "pid")}
        if "weights" in result:  # Ray workers: models loaded from disk / copied from memory so far
            attempt["weights"] = result["weights"]
        record.history.append(attempt)
        record.status = result.get("status", "failed")
        record.error = result.get("error")
        if record.status in DONE:
            record.frames = result.get("frames")
            record.metrics = result.get("metrics") or {}
        return record.status == RETRIED and record.attempts <= self.retries

    def cancel_pending(self) -> None:
        for record in self.records:
            if record.status in ("pending", "running", RETRIED):
                record.status = "cancelled"

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.status not in DONE]

    # ------------------------------------------------------------------------------ reports

    def table(self) -> str:
        """The summary: one row per job (job, status, attempts, seconds, frames, metrics)."""
        header = ["job", "status", "tries", "seconds", "frames", *self.metrics]
        rows = []
        for r in self.records:
            cells = [
                r.job.name,
                r.status,
                str(r.attempts),
                f"{r.seconds:.1f}",
                "-" if r.frames is None else str(r.frames),
            ]
            cells += [_cell(r.metrics.get(m)) for m in self.metrics]
            rows.append(cells)
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        errors = [f"  {r.job.name}: {r.error}" for r in self.records if r.error and r.status not in DONE]
        counts = ", ".join(f"{n} {s}" for s, n in self.counts().items())
        return "\n".join(
            [*lines, *(["errors:", *errors] if errors else []), f"{len(self.records)} jobs: {counts}"]
        )

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for r in self.records:
            result[r.status] = result.get(r.status, 0) + 1
        return result

    def to_json(self) -> dict:
        return {
            "executor": self.executor,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.started)),
            "wall_s": None if self.wall_s is None else round(self.wall_s, 3),
            "host": platform.node(),
            "retries": self.retries,
            "metrics": self.metrics,
            "counts": self.counts(),
            "notes": self.notes,
            "jobs": [r.to_json() for r in self.records],
        }

    def write_report(self, path: Path) -> Path:
        """Write ``batch.json`` atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
