"""``--executor ray``: jobs as Ray actor tasks, one actor per backend configuration.

- ``--address auto`` / ``ray://host:port`` joins a running cluster; without ``--address`` a local
  cluster is started for the run, bound to 127.0.0.1 only (no dashboard), and shut down after it.
- Jobs are grouped by backend configuration (method, backend specs, device, dtype, resources). A
  group's jobs run on actors of that group, each actor a long-lived worker process that keeps its
  imports and its loaded model weights (``weights.py``) from job to job. Each job is one task on an
  actor; the actor declares the job's resources: ``num_cpus`` (``--cpus-per-job``), ``num_gpus``
  (1 when the job's ``--device`` is cuda, or auto on a cluster with GPUs; ``--gpus-per-job``),
  ``memory`` (``--memory-per-job``), or the job's own ``resources:``.
- At most ``workers`` actors are alive at once (default: what the cluster's CPUs allow), and per
  group no more than the cluster can place side by side; an actor whose group has no queued job
  left is killed at once, giving its resources to the next group.
- The workers write the run folders themselves: every ``out`` (and every input) must be a path that
  each node reaches, i.e. shared storage mounted at the same path. The driver reads the folders
  only to report.
- A worker that dies (killed, out of memory, node lost) fails the attempt; the job is retried on a
  new actor and resumes its run folder. Ctrl-C kills the actors; their jobs resume next time.
"""

from __future__ import annotations

import os
import time
from collections import deque

from tqdm import tqdm

from wanderview.batch.jobs import Job, JobsError
from wanderview.batch.runner import Batch, Record
from wanderview.errors import BackendError

WAIT_S = 0.5


def import_ray():
    """The ray module, or a BackendError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BackendError("--executor ray needs Ray: pip install 'wanderview[batch]'") from None
    return ray


def start_local_cluster(num_cpus: int | None = None, num_gpus: int | None = None):
    """Start a local Ray cluster bound to 127.0.0.1 (no dashboard); returns the ray module."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray resolves "127.0.0.1" to the machine's outward address unless this is off; with it off the
    # GCS, raylet and workers listen on loopback only.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray = import_ray()
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # the environment variable is read at import time
    try:
        ray.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            configure_logging=False,
        )
    except Exception as err:  # Ray's own start-up errors: one sentence
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackendError(f"could not start a local Ray cluster ({why})") from None
    return ray


def connect(address: str | None, num_cpus: int | None = None) -> tuple[object, bool]:
    """(ray, whether this call started the cluster); an existing connection is reused."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    if address is None:
        return start_local_cluster(num_cpus), True
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as err:  # ConnectionError and Ray's own errors: one sentence
        raise BackendError(
            f"cannot connect to the Ray cluster at {address} ({str(err).splitlines()[0]})"
        ) from None
    return ray, False


def job_resources(job: Job, cluster: dict, cpus: float, gpus: float | None, memory: float | None) -> dict:
    """The resources one job's actor declares (see the module docstring)."""
    declared = dict(job.resources)
    if "num_gpus" not in declared:
        wants_gpu = job.device.startswith("cuda") or (job.device == "auto" and cluster.get("GPU", 0) > 0)
        declared["num_gpus"] = (1.0 if gpus is None else gpus) if wants_gpu else 0.0
    declared.setdefault("num_cpus", cpus)
    if memory is not None:
        declared.setdefault("memory", memory)
    return declared


def _check_feasible(records: list[Record], needs: dict[int, dict], cluster: dict) -> None:
    problems = []
    for record in records:
        need = needs[record.job.index]
        for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory")):
            if need.get(key, 0) > cluster.get(name, 0):
                have = cluster.get(name, 0)
                problems.append(
                    f"job {record.job.name} needs {key}={need[key]:g} but the Ray cluster has "
                    f"{have:g} {name}"
                    + (" (on GPU jobs pass --device cpu to run on CPUs)" if name == "GPU" else "")
                )
    if problems:
        raise JobsError(problems)


def _worker_class(ray):
    @ray.remote(max_restarts=0)
    class BatchWorker:
        """A worker process that runs jobs one at a time, keeping loaded weights between them."""

        def __init__(self) -> None:
            from wanderview.batch.weights import WeightCache

            self.cache = WeightCache()

        def run(self, payload: dict) -> dict:
            from wanderview.batch.worker import run_job

            if payload.get("hf"):
                self.cache.install()  # imports transformers/diffusers: only for jobs that use them
            result = run_job(payload)
            result["weights"] = self.cache.stats()
            return result

    return BatchWorker


def run_ray(
    batch: Batch,
    records: list[Record],
    *,
    address: str | None = None,
    workers: int | None = None,
    num_cpus: int | None = None,
    cpus_per_job: float = 1.0,
    gpus_per_job: float | None = None,
    memory_per_job: float | None = None,
    quiet: bool = False,
) -> None:
    """Run ``records`` on Ray (retries included); see the module docstring.

    Raises:
        JobsError: a job needs more than the cluster has (checked before anything runs).
        KeyboardInterrupt: after killing the actors (their jobs' staging folders stay).
    """
    ray, started = connect(address, num_cpus)
    try:
        cluster = ray.cluster_resources()
        needs = {
            r.job.index: job_resources(r.job, cluster, cpus_per_job, gpus_per_job, memory_per_job)
            for r in records
        }
        _check_feasible(records, needs, cluster)
        if workers is None:
            workers = max(1, int(cluster.get("CPU", 1) // max(cpus_per_job, 1e-3)))
        where = "local cluster on 127.0.0.1" if started else f"cluster {address or 'already connected'}"
        batch.executor = f"ray ({where}, {workers} worker{'s' if workers != 1 else ''})"
        _Scheduler(ray, batch, needs, workers, cluster, quiet).run(records)
    finally:
        if started:
            ray.shutdown()


class _Scheduler:
    """Hands jobs to actors of their group, creates and kills actors, retries failed attempts.

    Actors alive at once: at most ``workers`` in all, and per group at most as many as the cluster
    can place side by side (e.g. one per GPU), so that jobs wait for a warm actor of their group
    rather than for a new actor that could never start.
    """

    def __init__(
        self, ray, batch: Batch, needs: dict[int, dict], workers: int, cluster: dict, quiet: bool
    ) -> None:
        self.ray, self.batch, self.needs, self.workers, self.quiet = ray, batch, needs, workers, quiet
        self.cluster = cluster
        self.worker_class = _worker_class(ray)
        self.idle: dict[tuple, list] = {}
        self.alive: dict[tuple, int] = {}
        self.inflight: dict[object, tuple[Record, object, tuple, float]] = {}

    def group(self, record: Record) -> tuple:
        need = self.needs[record.job.index]
        return (record.job.method, record.job.backends, tuple(sorted(need.items())))

    def _group_cap(self, need: dict) -> int:
        caps = [
            int(self.cluster.get(name, 0) // need[key])
            for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory"))
            if need.get(key, 0) > 0
        ]
        return max(1, min(caps, default=self.workers))

    def _kill(self, key: tuple, actor) -> None:
        self.ray.kill(actor)
        self.alive[key] -= 1

    def _actor_for(self, key: tuple, record: Record, queue: deque):
        if self.idle.get(key):
            return self.idle[key].pop()
        need = self.needs[record.job.index]
        if self.alive.get(key, 0) >= self._group_cap(need):
            return None  # wait for one of the group's actors
        if sum(self.alive.values()) >= self.workers:
            # make room: kill an idle actor of a group that has no queued job
            wanted = {self.group(r) for r in queue} | {key}
            spare = next((k for k, v in self.idle.items() if v and k not in wanted), None)
            spare = spare or next((k for k, v in self.idle.items() if v), None)
            if spare is None:
                return None
            self._kill(spare, self.idle[spare].pop())
        self.alive[key] = self.alive.get(key, 0) + 1
        return self.worker_class.options(**need).remote()

    def run(self, records: list[Record]) -> None:
        queue = deque(records)
        bar = tqdm(total=len(records), desc="batch", unit="job", disable=self.quiet)
        try:
            while queue or self.inflight:
                self._submit(queue)
                ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=WAIT_S)
                for ref in ready:
                    record, actor, key, submitted = self.inflight.pop(ref)
                    result = self._result(ref, submitted)
                    if result.get("worker_died"):
                        self._kill(key, actor)
                    else:
                        self.idle.setdefault(key, []).append(actor)
                    if self.batch.record(record, result):
                        queue.appendleft(record)
                    else:
                        bar.update(1)
                self._release_idle(queue)
        except KeyboardInterrupt:
            cancelled = "cancelled by Ctrl-C; the next batch call resumes it"
            for record, _, _, submitted in self.inflight.values():
                elapsed = time.perf_counter() - submitted
                self.batch.record(record, {"status": "cancelled", "seconds": elapsed, "error": cancelled})
            self.batch.cancel_pending()
            raise
        finally:
            bar.close()
            for _, actor, key, _ in list(self.inflight.values()):
                self._kill(key, actor)
            self._release_idle(deque())

    def _release_idle(self, queue: deque) -> None:
        # An idle actor whose group has no queued job gives its resources back at once: a pending
        # actor (e.g. waiting for the only GPU) could otherwise wait for it forever.
        wanted = {self.group(r) for r in queue}
        for key in [k for k, actors in self.idle.items() if actors and k not in wanted]:
            for actor in self.idle.pop(key):
                self._kill(key, actor)

    def _submit(self, queue: deque) -> None:
        waiting: deque = deque()
        while queue and len(self.inflight) < self.workers:
            record = queue.popleft()
            key = self.group(record)
            actor = self._actor_for(key, record, queue)
            if actor is None:
                waiting.append(record)  # jobs of other groups may still start
                continue
            payload = self.batch.payload(record)
            payload["hf"] = any(str(v).startswith("hf:") for _, v in record.job.backends)
            record.status = "running"
            self.inflight[actor.run.remote(payload)] = (record, actor, key, time.perf_counter())
        queue.extendleft(reversed(waiting))

    def _result(self, ref, submitted: float) -> dict:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayActorError as err:
            why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return {
                "status": "failed",
                "worker_died": True,
                "seconds": round(time.perf_counter() - submitted, 3),
                "error": f"the Ray worker died ({type(err).__name__}: {why[:160]})",
            }
        except self.ray.exceptions.RayError as err:
            return {"status": "failed", "seconds": None, "error": f"Ray error: {type(err).__name__}"}
