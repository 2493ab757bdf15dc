"""`wanderview batch JOBS.yaml [--executor local|ray] ...`: many runs from one jobs file."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from wanderview.cli.common import positive_int

HELP = """\
Run many method commands from one jobs file (YAML or JSON), locally or on a Ray cluster.

A job uses the command's own option names (`image: photo.jpg` is the positional input,
`frames: 30` is --frames 30, `no_mesh: true` is a flag); `grid:` expands lists into every
combination, with `out` as a template over the job's options. Example:

  defaults: {frames: 30, device: cpu}
  jobs:
    - method: photo3d
      out: runs/{method}/{image.stem}-s{seed}
      grid: {image: [photos/a.jpg, photos/b.jpg], seed: [0, 1]}
      inpainter: patchmatch

Every job is parsed by the real command-line parser before anything runs: unknown methods or
options, values of the wrong type or choice, missing inputs and two jobs writing one folder are
reported one per line (exit 2, nothing run); a method's own range checks fail that job at its start.
Relative paths are relative to the jobs file's folder. A finished run
folder (its manifest.json) is skipped; an unfinished one (its .OUT.partial) resumes with --resume;
a crashed or killed attempt is retried up to --retries times and resumes; a user error (exit 2) is
reported and not retried. The batch never stops for one job. At the end: a table (job, status,
tries, seconds, frames, --metrics) and batch.json. Exit code 0 when every job finished or was
skipped, 1 when some failed, 130 after Ctrl-C (running jobs are cancelled and resume next time).

Executors: local (one process per job, --workers at once, no Ray needed) and ray (pip install
'wanderview[batch]'): without --address a local cluster bound to 127.0.0.1 is started for the run;
with --address auto or ray://HOST:PORT the jobs go to that cluster, whose nodes must have
wanderview installed and see every input and `out` folder at the same path (shared storage).
On Ray each backend configuration gets its own long-lived workers, which load model weights once.
"""

METRICS = ("consistency", "depth_consistency", "density", "colmap")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="many runs from a jobs file, locally or on Ray",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("jobs", type=Path, help="jobs file (.yaml, .yml or .json)")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="(default local)")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="jobs at once (default: 1 locally; on Ray what the cluster's CPUs allow)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="extra attempts for a job that crashed or whose worker died (default 2)",
    )
    p.add_argument(
        "--metrics",
        default="",
        help="comma-separated metrics of `wanderview eval` for the table, e.g. "
        "consistency,colmap.registered_fraction (written to each run's metrics.json)",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="where to write batch.json (default: batch.json beside the jobs file)",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and list the jobs, run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("ray executor")
    g.add_argument(
        "--address",
        default=None,
        help="auto or ray://HOST:PORT of a running cluster (default: start a local one)",
    )
    g.add_argument(
        "--ray-cpus",
        type=positive_int,
        default=None,
        help="CPUs of the local cluster (default: all of this machine's)",
    )
    g.add_argument("--cpus-per-job", type=float, default=1.0, help="num_cpus each job declares (default 1)")
    g.add_argument(
        "--gpus-per-job",
        type=float,
        default=None,
        help="num_gpus a GPU job declares (default 1; jobs with --device cpu declare 0)",
    )
    g.add_argument(
        "--memory-per-job", default=None, help="memory each job declares, e.g. 8G (default: none declared)"
    )
    p.set_defaults(func=run)


def _metric_names(text: str) -> list[str]:
    from wanderview.batch.jobs import JobsError

    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n.split(".")[0] not in METRICS]
    if bad:
        raise JobsError(
            [
                f"unknown metric {n!r}; batch reports consistency, depth_consistency, density and "
                "colmap.<name> (see wanderview eval --help)"
                for n in bad
            ]
        )
    return names


def _check_options(args: argparse.Namespace) -> float | None:
    from wanderview.batch.jobs import JobsError, parse_size

    problems = []
    if args.retries < 0:
        problems.append(f"--retries must not be negative, got {args.retries}")
    if args.cpus_per_job < 0 or (args.gpus_per_job is not None and args.gpus_per_job < 0):
        problems.append("--cpus-per-job and --gpus-per-job must not be negative")
    memory = None
    if args.memory_per_job is not None:
        try:
            memory = parse_size(args.memory_per_job)
        except ValueError as err:
            problems.append(f"--memory-per-job: {err}")
    if args.executor == "local" and (args.address or args.ray_cpus):
        problems.append("--address and --ray-cpus are options of --executor ray")
    if problems:
        raise JobsError(problems)
    return memory


def _dry_run(jobs) -> int:
    action = {"finished": "skip (finished)", "partial": "resume", "new": "run"}
    for job in jobs:
        line = shlex.join(["wanderview", job.method, *job.argv])
        print(f"{job.name}: {action.get(job.state, job.state)}\n  {line}")
    print(f"{len(jobs)} jobs")
    return 0


def run(args: argparse.Namespace) -> int:
    from wanderview.batch.jobs import JobsError, load_jobs
    from wanderview.batch.runner import Batch

    try:
        memory = _check_options(args)
        metrics = _metric_names(args.metrics)
        jobs = load_jobs(args.jobs)
    except JobsError as err:
        for problem in err.problems:
            print(f"wanderview batch: error: {problem}", file=sys.stderr)
        return 2
    if args.dry_run:
        return _dry_run(jobs)
    batch = Batch(jobs, retries=args.retries, metrics=metrics)
    report = args.report or args.jobs.absolute().parent / "batch.json"
    start = time.perf_counter()
    pending = batch.to_run()
    code = 0
    try:
        if pending and args.executor == "ray":
            from wanderview.batch.ray_executor import run_ray

            run_ray(
                batch,
                pending,
                address=args.address,
                workers=args.workers,
                num_cpus=args.ray_cpus,
                cpus_per_job=args.cpus_per_job,
                gpus_per_job=args.gpus_per_job,
                memory_per_job=memory,
                quiet=args.quiet,
            )
        elif pending:
            from wanderview.batch.local import run_local

            run_local(batch, pending, workers=args.workers or 1, quiet=args.quiet)
        else:
            batch.executor = f"{args.executor} (nothing to run)"
    except JobsError as err:  # a job the cluster cannot place: found before anything ran
        for problem in err.problems:
            print(f"wanderview batch: error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the executors cancelled their running jobs; nothing else starts
        batch.cancel_pending()
        code = 130
    batch.wall_s = time.perf_counter() - start
    batch.write_report(report)
    print(batch.table())
    print(f"report: {report}")
    if code == 130:
        print(
            "wanderview batch: interrupted; running jobs were cancelled and resume on the next call",
            file=sys.stderr,
        )
        return 130
    return 1 if batch.failed else 0
