"""Jobs files: read, expand grids, map options onto the method commands' own argv, validate.

A jobs file (YAML or JSON) is a list of jobs, or a mapping with ``jobs:`` and optional
``defaults:`` (options every job starts from). A job is a mapping::

    method: photo3d                      # a method command (one that writes a run folder)
    out: runs/{method}/{image.stem}-s{seed}   # -o; a str.format template over the job's options
    image: photos/a.jpg                  # positional inputs by their name
    frames: 30                           # --frames 30 (dashes or underscores: depth-model/depth_model)
    supersample: 2
    no_floating_fix: true                # booleans are flags: true adds it, false leaves it out
    options: {inpainter: patchmatch}     # optional: more options (same as writing them at the top)
    grid: {seed: [0, 1, 2]}              # optional: one job per combination (cross product)
    resources: {num_cpus: 2, num_gpus: 1, memory: 8G}   # optional: what a Ray worker declares

Every job is checked by parsing its argv with the real CLI parser (``wanderview.cli.build_parser``),
so option names, types and choices are exactly the command line's. Relative paths are relative to
the jobs file's folder: every job runs with that folder as its working directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from wanderview.batch.argv import long_option, method_parsers, option_index, option_tokens, parse_like_cli
from wanderview.batch.folders import folder_state
from wanderview.errors import ConfigError

SPECIAL_KEYS = ("method", "options", "grid", "resources")
# The batch decides these per attempt (resume a partial folder, never overwrite one).
RESERVED = {"resume": "--resume", "overwrite": "--overwrite"}
# Inputs whose files must exist before anything runs (positional path inputs are always checked).
INPUT_DESTS = {"image", "depth", "object_mask", "mask", "video", "config", "gt"}
# Option dest -> the backend registry dict whose names its spec must start with.
BACKEND_DESTS = {
    "depth_model": "DEPTH_MODELS",
    "inpainter": "INPAINTERS",
    "generator": "IMAGE_GENERATORS",
    "video_model": "VIDEO_GENERATORS",
    "text_video_model": "TEXT_VIDEO_GENERATORS",
    "vlm": "VISION_LANGUAGE",
}
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")


class JobsError(ConfigError):
    """The jobs file has problems; ``problems`` holds one sentence per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Job:
    """One run of a method command.

    Attributes:
        index: position in the expanded jobs list (0-based).
        method: the command name (e.g. ``photo3d``).
        argv: the command's arguments without the command name, ``--resume`` or ``--quiet``.
        out: absolute run folder.
        name: the out path as written after templating (the job's name in tables).
        cwd: working directory of the run (the jobs file's folder).
        options: the options as given (dest -> value), for templates and resources.
        resources: ``num_cpus``, ``num_gpus``, ``memory`` (bytes) declared by the job, or absent.
        state: folder state at validation: ``finished``, ``partial`` or ``new``.
        device: the job's ``--device`` value (decides whether it needs a GPU).
        backends: the backend-related option values (groups jobs that can share loaded weights).
    """

    index: int
    method: str
    argv: list[str]
    out: Path
    name: str
    cwd: Path
    options: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    state: str = "new"
    device: str = "auto"
    backends: tuple = ()

    def payload(self, metrics: list[str], quiet_flag: bool) -> dict:
        """What a worker needs to run one attempt (plain JSON data)."""
        return {
            "method": self.method,
            "argv": list(self.argv),
            "out": str(self.out),
            "cwd": str(self.cwd),
            "metrics": list(metrics),
            "quiet_flag": quiet_flag,
            "name": self.name,
        }


class _Text(str):
    """A string value in an ``out`` template, with the path parts of pathlib (``{image.stem}``)."""

    def __getattr__(self, attr: str) -> Any:
        if attr in ("stem", "name", "suffix", "parent", "parts"):
            value = getattr(PurePath(str(self)), attr)
            return _Text(value) if isinstance(value, str | PurePath) else value
        raise AttributeError(attr)


# ---------------------------------------------------------------------------------- reading


def read_jobs_file(path: Path) -> tuple[list[dict], dict]:
    """The raw job mappings and the defaults of a YAML/JSON jobs file.

    Raises:
        JobsError: the file is missing, not valid YAML/JSON, or not a list/mapping of jobs.
    """
    if not path.is_file():
        raise JobsError([f"the jobs file {path} does not exist"])
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ImportError:
        raise JobsError(
            ["reading a YAML jobs file needs PyYAML: pip install pyyaml (or write JSON)"]
        ) from None
    except ValueError as err:  # json.JSONDecodeError
        raise JobsError([f"{path.name} is not valid JSON ({err})"]) from None
    except Exception as err:  # yaml.YAMLError and its subclasses
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(err, "problem", None) or str(err).strip().splitlines()[0]
        raise JobsError([f"{path.name} is not valid YAML ({where}{what})"]) from None
    defaults: dict = {}
    if isinstance(data, dict) and "jobs" in data:
        defaults = data.get("defaults") or {}
        unknown = sorted(set(data) - {"jobs", "defaults"})
        if unknown:
            raise JobsError(
                [f"{path.name}: unknown top-level key(s) {', '.join(unknown)}; use jobs and defaults"]
            )
        data = data["jobs"]
    if not isinstance(data, list) or not data:
        raise JobsError([f"{path.name} must hold a non-empty list of jobs (or a mapping with 'jobs:')"])
    if not isinstance(defaults, dict):
        raise JobsError([f"{path.name}: 'defaults' must be a mapping of options"])
    return data, defaults


def expand(raw_jobs: list, defaults: dict) -> tuple[list[tuple[int, dict]], list[str]]:
    """Merge defaults and ``options:``, expand each ``grid:`` into its cross product.

    Returns:
        (list of (number of the job in the file, 1-based; merged mapping), problems).
    """
    expanded: list[tuple[int, dict]] = []
    problems: list[str] = []
    for number, raw in enumerate(raw_jobs, start=1):
        if not isinstance(raw, dict):
            problems.append(f"job {number} is not a mapping of options (got {type(raw).__name__})")
            continue
        merged = {**defaults, **{k: v for k, v in raw.items() if k not in ("options", "grid")}}
        extra = raw.get("options") or {}
        grid = raw.get("grid") or {}
        if not isinstance(extra, dict) or not isinstance(grid, dict):
            problems.append(f"job {number}: 'options' and 'grid' must be mappings")
            continue
        merged.update(extra)
        axes = []
        for key, values in grid.items():
            values = values if isinstance(values, list) else [values]
            if not values:
                problems.append(f"job {number}: grid '{key}' has no values")
            axes.append([(key, v) for v in values])
        for combo in itertools.product(*axes):
            expanded.append((number, {**merged, **dict(combo)}))
    return expanded, problems


def _format_out(template: Any, method: str, options: dict, index: int) -> str:
    if not isinstance(template, str):
        raise ValueError(f"'out' must be a folder name, not {template!r}")
    names = {k.replace("-", "_"): (_Text(v) if isinstance(v, str) else v) for k, v in options.items()}
    names.update(method=method, index=index)
    try:
        return template.format(**names)
    except KeyError as err:
        raise ValueError(
            f"the out template {template!r} names {{{err.args[0]}}}, which the job does not set"
        ) from None
    except (AttributeError, IndexError, ValueError) as err:
        raise ValueError(f"the out template {template!r} cannot be filled in ({err})") from None


def parse_size(value: Any) -> float:
    """Bytes from a number or a text like ``512M``, ``8G``, ``1.5GiB``; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMGT" else text
    try:
        result = float(number) * scale
    except ValueError:
        raise ValueError(f"not a size: {value!r} (write e.g. 512M or 8G)") from None
    if result <= 0:
        raise ValueError(f"a size must be positive, got {value!r}")
    return result


def _resources(raw: Any) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - set(RESOURCE_KEYS):
        raise ValueError(f"'resources' takes {', '.join(RESOURCE_KEYS)}, got {raw!r}")
    result = {}
    for key, value in raw.items():
        if key == "memory":
            result[key] = parse_size(value)
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"resources.{key} must be a number >= 0, got {value!r}")
        else:
            result[key] = float(value)
    return result


def _check_values(ns: argparse.Namespace, sub: argparse.ArgumentParser, base: Path) -> list[str]:
    """Checks argparse cannot make: input files exist, backend spec names are known."""
    problems = []
    for action in sub._actions:
        value = getattr(ns, action.dest, None)
        if isinstance(value, Path) and (not action.option_strings or action.dest in INPUT_DESTS):
            if not (base / value).exists():
                problems.append(
                    f"{value} ({long_option(action) if action.option_strings else action.dest}) "
                    "does not exist"
                )
    try:
        from wanderview.backends import registry
    except ImportError:  # pragma: no cover - the registry is part of the package
        return problems
    for dest, table_name in BACKEND_DESTS.items():
        spec, table = getattr(ns, dest, None), getattr(registry, table_name, None)
        if isinstance(spec, str) and spec and isinstance(table, dict):
            if spec.partition(":")[0] not in table:
                problems.append(
                    f"--{dest.replace('_', '-')} {spec!r} is not a known backend "
                    f"(valid: {', '.join(registry.valid_specs(table))})"
                )
    return problems


def build_job(
    number: int, index: int, mapping: dict, base: Path, parser, methods
) -> tuple[Job | None, list[str]]:
    """One validated Job (or None) and the problems found, each prefixed with the job's number."""
    where = f"job {number}"
    method = mapping.get("method")
    if method not in methods:
        known = ", ".join(sorted(methods))
        return None, [f"{where}: unknown method {method!r}; batch runs {known}"]
    sub = methods[method]
    index_of = option_index(sub)
    options = {k.replace("-", "_"): v for k, v in mapping.items() if k not in SPECIAL_KEYS}
    problems = []
    try:
        resources = _resources(mapping.get("resources"))
    except ValueError as err:
        resources, problems = {}, [f"{where}: {err}"]
    if "out" not in options:
        return None, [*problems, f"{where}: no 'out' folder"]
    try:
        name = _format_out(options["out"], method, options, index)
    except ValueError as err:
        return None, [*problems, f"{where}: {err}"]
    where = f"job {number} ({name})"
    positionals, tokens, reserved = [], [], []
    for key, value in options.items():
        if key in RESERVED or key == "quiet":
            if key in RESERVED:
                reserved.append(
                    f"{where}: remove '{key}': batch resumes unfinished folders itself and never overwrites"
                )
            continue
        action = index_of.get(key)
        if action is None:
            problems.append(f"{where}: {method} has no option '{key}'")
            continue
        if value is None:
            continue
        try:
            produced = option_tokens(key, name if key == "out" else value, action)
        except ValueError as err:
            problems.append(f"{where}: {err}")
            continue
        (tokens if action.option_strings else positionals).append((action, produced))
    if problems:
        return None, problems
    # positionals in the parser's order, then options in the job's order
    order = [a for a in sub._actions if not a.option_strings]
    argv = [t for a in order for act, toks in positionals if act is a for t in toks]
    argv += [t for _, toks in tokens for t in toks]
    ns, error = parse_like_cli(parser, [method, *argv])
    if ns is None:
        return None, [*reserved, f"{where}: {error}"]
    problems = reserved + [f"{where}: {p}" for p in _check_values(ns, sub, base)]
    out = Path(os.path.normpath(base / ns.out))
    state = folder_state(out, method)
    if state.startswith("foreign"):
        problems.append(f"{where}: {state.partition(':')[2].strip()}")
    backends = tuple(
        sorted(
            (k, str(getattr(ns, k)))
            for k in (*BACKEND_DESTS, "dtype", "device", "allow_pickle", "cpu_offload", "attention_slicing")
            if hasattr(ns, k)
        )
    )
    job = Job(
        index=index,
        method=method,
        argv=argv,
        out=out,
        name=name,
        cwd=base,
        options=options,
        resources=resources,
        state=state,
        device=str(getattr(ns, "device", "auto")),
        backends=backends,
    )
    return (None if problems else job), problems


def load_jobs(path: str | os.PathLike) -> list[Job]:
    """Read, expand and validate a jobs file; every job parses with the real CLI parser.

    Raises:
        JobsError: with one sentence per problem (unknown method or option, bad value, missing
            input, two jobs writing one folder, an output folder that is not a wanderview run).
    """
    from wanderview.cli import build_parser

    path = Path(path).absolute()
    raw_jobs, defaults = read_jobs_file(path)
    expanded, problems = expand(raw_jobs, defaults)
    parser = build_parser()
    methods = method_parsers(parser)
    jobs: list[Job] = []
    owners: dict[Path, str] = {}
    for index, (number, mapping) in enumerate(expanded):
        job, found = build_job(number, index, mapping, path.parent, parser, methods)
        problems += found
        if job is None:
            continue
        if job.out in owners:
            problems.append(
                f"job {number} ({job.name}) writes the same folder as {owners[job.out]}; "
                "make 'out' differ (e.g. add {seed} to the template)"
            )
            continue
        owners[job.out] = f"job {number} ({job.name})"
        jobs.append(job)
    if problems:
        raise JobsError(problems)
    return jobs
