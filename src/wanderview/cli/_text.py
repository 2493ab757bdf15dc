"""Small wording helpers for command output (not a command: names starting with _ are skipped)."""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``"1 frame"``, ``"3 frames"``: a number with its noun in the right form."""
    return f"{number} {noun if number == 1 else (plural or noun + 's')}"
