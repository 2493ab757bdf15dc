"""Many runs from one jobs file: ``wanderview batch JOBS.yaml`` (docs/design.md, "Batch runs").

- ``jobs.py``     read a YAML/JSON jobs file, expand grids, map options to each command's argv,
                  validate every job with the real CLI parser before anything runs
- ``argv.py``     job keys to argv tokens through the command's own argparse actions
- ``folders.py``  finished / unfinished / foreign run folders, from the run-folder layout alone
- ``worker.py``   one attempt of one job in a worker process (skip, resume, run, metrics)
- ``runner.py``   per-job records, retries, the summary table and ``batch.json``
- ``local.py``    ``--executor local``: one process per attempt, ``--workers N`` at once, no Ray
- ``ray_executor.py``  ``--executor ray``: actors per backend configuration, declared resources
- ``weights.py``  a worker process loads each Hugging Face model once and copies it per job

Ray is optional (``pip install 'wanderview[batch]'``) and imported only by the Ray executor.
"""

from wanderview.batch.jobs import Job, JobsError, load_jobs
from wanderview.batch.runner import Batch, Record

__all__ = ["Batch", "Job", "JobsError", "Record", "load_jobs"]
