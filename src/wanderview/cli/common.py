"""Command-line options generated from a method's Config dataclass, plus the options every method
command shares.

A method command is a few lines::

    def register(sub):
        p = sub.add_parser("photo3d", help="...", description=HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_config_options(p, photo3d.Config, positional=("image",))
        p.set_defaults(func=run)

    def run(args):
        config = config_from_args(photo3d.Config, args, "photo3d")
        result = photo3d.run(config, args.out, overwrite=args.overwrite, resume=args.resume,
                             quiet=args.quiet)

Every Config field becomes ``--field-name`` (underscores as dashes) with the field's attribute
docstring as its help and its default in the help; the type decides the parsing: ``int``, ``float``
(finite), ``str``, ``Path``, ``Literal[...]`` (choices), ``X | None`` (as X) and ``bool``
(``--name`` / ``--no-name``). A field and its option can therefore never disagree. ``--config
RUN/config.json`` starts from a saved run's options; any option given on the line overrides it.

Why a small generator and not tyro: it keeps argparse, so the auto-discovered sub-commands, the
one-sentence usage errors with exit code 2 and the existing flag names (``--no-mesh``, ``-o``) stay
as they are, it adds no dependency, and ``--config`` merging needs to know which options the user
actually typed, which ``default=argparse.SUPPRESS`` gives directly.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import math
import textwrap
import threading
import types
import typing
from pathlib import Path
from typing import Any, Literal

from wanderview.errors import ConfigError, InputError

# Config fields shown under "common options" (with -o, --config, --resume, --overwrite, --quiet).
COMMON_FIELDS = ("frames", "trajectory", "seed", "device", "width", "height", "fps", "checkpoint_every")
# Fields of methods.common.ModelLoading, shown under "model loading".
MODEL_FIELDS = ("dtype", "allow_pickle", "cpu_offload", "attention_slicing")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


_PARSE_LOCK = threading.Lock()


@functools.cache
def _parse_class(klass: type) -> ast.Module:
    """The AST of a class's source, parsed once per process.

    CPython 3.11's AST builder keeps its recursion depth in interpreter state rather than per
    thread and, after some earlier failures, can raise "SystemError: AST constructor recursion
    depth mismatch" (gh-106905, fixed in later releases): parse one at a time and retry once.
    """
    source = textwrap.dedent(inspect.getsource(klass))
    with _PARSE_LOCK:
        try:
            return ast.parse(source)
        except SystemError:
            return ast.parse(source)


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass and its bases: the string literal right after each
    field, joined into one line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = _parse_class(klass)
        except (OSError, TypeError, SystemError):  # no source, or the 3.11 AST bug: empty help, not an error
            continue
        body = tree.body[0].body
        for node, after in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                    docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def _as_help(doc: str, fields: dict[str, Any]) -> str:
    """A field docstring as option help: ``field`` becomes --field, other ``code`` loses its quotes."""
    import re

    def replace(match: re.Match) -> str:
        name = match.group(1)
        return _flag(name) if name in fields else name

    return re.sub(r"``([^`]+)``", replace, doc)


def _unwrap_optional(hint: Any) -> Any:
    """``X | None`` -> X; anything else unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _argument(hint: Any, default: Any) -> dict[str, Any]:
    """argparse keywords (type, choices, action, metavar) for a field's type hint."""
    hint = _unwrap_optional(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(hint) is Literal:
        choices = list(typing.get_args(hint))
        kind = type(choices[0])
        return {"type": _int if kind is int else (_float if kind is float else str), "choices": choices}
    if hint is int:
        return {"type": _int, "metavar": "N"}
    if hint is float:
        return {"type": _float, "metavar": "X"}
    if hint is Path:
        return {"type": Path, "metavar": "PATH"}
    return {"type": str, "metavar": "TEXT"}


def _default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return repr(value) if isinstance(value, str) else str(value)


def add_config_options(
    parser: argparse.ArgumentParser,
    config_cls: type,
    *,
    positional: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
) -> None:
    """Add one option per field of ``config_cls`` (see the module docstring) and the shared
    options -o/--out, --config, --resume, --overwrite, --quiet.

    Args:
        positional: fields taken as optional positional arguments (e.g. photo3d's IMAGE); they may
            also come from --config.
        skip: fields the command sets itself (no option).
    """
    hints = typing.get_type_hints(config_cls)
    docs = field_docs(config_cls)
    common = parser.add_argument_group("common options")
    model = parser.add_argument_group("model loading (hf: backends)")
    common.add_argument(
        "-o", "--out", type=Path, required=True, help="run folder to write (see README: run folder)"
    )
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="RUN/config.json",
        help="start from a saved run's options; options given here override them",
    )
    for field in dataclasses.fields(config_cls):
        if field.name in skip or not field.init:
            continue
        has_default = field.default is not dataclasses.MISSING
        default = field.default if has_default else None
        kwargs = _argument(hints[field.name], default)
        help_text = _as_help(docs.get(field.name, ""), hints)
        if has_default:
            help_text += f" (default {_default_text(default)})"
        help_text = help_text.replace("%", "%%")
        if field.name in positional:  # optional here: it may come from --config instead
            kwargs.pop("metavar", None)
            name = field.name
            parser.add_argument(name, nargs="?", default=None, help=help_text, metavar=name.upper(), **kwargs)
            continue
        group = common if field.name in COMMON_FIELDS else model if field.name in MODEL_FIELDS else parser
        group.add_argument(
            _flag(field.name), dest=field.name, default=argparse.SUPPRESS, help=help_text, **kwargs
        )
    common.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run from its last checkpoint (only with the options it was started with)",
    )
    common.add_argument(
        "--overwrite", action="store_true", help="replace an existing non-empty output folder"
    )
    common.add_argument("--quiet", action="store_true", help="no progress bars")


def given_options(args: argparse.Namespace, config_cls: type) -> dict[str, Any]:
    """The Config fields the user typed on the command line (others were suppressed)."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    # options are suppressed unless typed; an absent optional positional argument is None
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def read_config_file(
    path: Path, config_cls: type, method: str, derived: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The field values stored in a run's ``config.json`` (paths as Path).

    Args:
        derived: keys a run records besides its fields (e.g. scenescape's ``trajectory_spec``);
            they are skipped.
    Raises:
        InputError: unreadable file, another method's config, or a key that is no option.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err).split("\n")[0]
        raise InputError(f"--config {path} cannot be read as a run's config.json ({reason})") from None
    if not isinstance(data, dict):
        raise InputError(f"--config {path} does not hold a config object")
    stored_method = data.pop("method", method)
    if stored_method != method:
        raise InputError(f"--config {path} is the config of a {stored_method} run, not {method}")
    hints = typing.get_type_hints(config_cls)
    values = {}
    for key, value in data.items():
        if key in derived:
            continue
        if key not in hints:
            raise InputError(f"--config {path} has {key!r}, which is no {method} option")
        if not _fits(value, hints[key]):
            raise InputError(f"--config {path}: {key} = {value!r} is not a valid value of {_flag(key)}")
        if _unwrap_optional(hints[key]) is Path and value is not None:
            value = Path(value)
        values[key] = value
    return values


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value can be the value of a field with this type hint."""
    if value is None:
        return _unwrap_optional(hint) is not hint or hint is type(None)
    hint = _unwrap_optional(hint)
    if typing.get_origin(hint) is Literal:
        return value in typing.get_args(hint) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def config_from_args(config_cls: type, args: argparse.Namespace, method: str, *,
                     derived: tuple[str, ...] = (), **overrides: Any):  # fmt: skip
    """Build the method's Config: its defaults, then --config, then the options typed, then
    ``overrides`` (values a command derives from its own extra flags).

    Raises:
        ConfigError: a required field (e.g. IMAGE) was given neither on the line nor in --config,
            or a value of the wrong type came from --config.
    """
    values: dict[str, Any] = {}
    if args.config is not None:
        values.update(read_config_file(args.config, config_cls, method, derived))
    values.update(given_options(args, config_cls))
    values.update(overrides)
    missing = [f.name for f in dataclasses.fields(config_cls)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               and f.name not in values]  # fmt: skip
    if missing:
        raise ConfigError(f"{method} needs {missing[0].upper()} (on the command line or in --config)")
    try:
        return config_cls(**values)
    except TypeError as err:
        raise ConfigError(f"the options do not form a {method} config ({err})") from None
