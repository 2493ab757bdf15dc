"""Job options to a method command's argv, through the command's own argparse actions.

Keys are an action's dest or its long option without dashes (underscores or dashes both work);
positionals are given by name. Booleans become flags (``BooleanOptionalAction``: ``--x``/``--no-x``;
a ``store_false`` keyed by its dest: ``x: false`` gives ``--no-x``), counts repeat, lists fill
``nargs`` or repeat an ``append`` option.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from typing import Any


def method_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-parsers of the commands that write run folders (they take -o/--out and --resume)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                dests = {a.dest for a in sub._actions}
                if {"out", "resume"} <= dests:
                    found[name] = sub
    return found


def option_index(sub: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Job key (dest, or long option without dashes, both with underscores) -> action."""
    index = {}
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction) or action.dest == argparse.SUPPRESS:
            continue
        index[action.dest] = action
        for opt in action.option_strings:
            if opt.startswith("--"):
                index.setdefault(opt[2:].replace("-", "_"), action)
    return index


def long_option(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def is_flag(action: argparse.Action) -> bool:
    return isinstance(
        action, argparse._StoreTrueAction | argparse._StoreFalseAction | argparse._StoreConstAction
    )


def option_tokens(key: str, value: Any, action: argparse.Action) -> list[str]:
    """The argv tokens of one job option; raises ValueError with a sentence for a wrong value."""
    opt = f"--{key.replace('_', '-')}" if f"--{key.replace('_', '-')}" in action.option_strings else None
    if isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise ValueError(f"option {key} is a switch: give true or false, not {value!r}")
        base = next(o for o in action.option_strings if not o.startswith("--no-"))
        if opt is not None and opt.startswith("--no-") and opt != base:
            value = not value  # keyed by the negative form: no_mesh: true is --no-mesh
        return [base if value else "--no-" + base[2:]]
    if is_flag(action):
        if not isinstance(value, bool):
            raise ValueError(f"option {key} is a flag: give true or false, not {value!r}")
        flag = opt or long_option(action)
        # keyed by dest, a store_false flag (--no-x storing x=False) is given by x: false
        wanted = (
            value if (opt is not None or not isinstance(action, argparse._StoreFalseAction)) else not value
        )
        return [flag] if wanted else []
    if isinstance(action, argparse._CountAction):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"option {key} counts: give a whole number, not {value!r}")
        return [long_option(action)] * value
    values = value if isinstance(value, list) else [value]
    if any(isinstance(v, bool) for v in values):
        raise ValueError(f"option {key} takes a value, not true/false (quote it if you mean the text)")
    if any(isinstance(v, dict | list) for v in values):
        raise ValueError(f"option {key} takes plain values, not {value!r}")
    texts = [str(v) for v in values]
    if not action.option_strings:  # positional
        return texts
    if isinstance(action, argparse._AppendAction):
        return [t for text in texts for t in (long_option(action), text)]
    if len(texts) > 1 and action.nargs in (None, "?"):
        raise ValueError(f"option {key} takes one value, got a list (use grid: to make one job per value)")
    return [opt or long_option(action), *texts]


def parse_like_cli(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    """Parse like the CLI does; on a usage error return (None, its message without the prefix)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return parser.parse_args(argv), ""
        except SystemExit:
            pass
    text = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "invalid arguments"
    text = text.split(": error: ", 1)[-1]
    return None, text.split(" (see ", 1)[0]
