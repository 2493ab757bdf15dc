"""Errors a user can cause. The CLI prints their message (one sentence) and exits with code 2."""

from __future__ import annotations


class WanderviewError(Exception):
    """Base class of every error caused by user input, configuration or missing resources."""


class InputError(WanderviewError):
    """An input file or value is missing, unreadable, malformed or out of range."""


class ConfigError(WanderviewError):
    """A command-line option or config value is unknown or has the wrong type."""


class BackendError(WanderviewError):
    """A model backend is unknown, its dependencies are missing, or its weights are not available."""


class OutputError(WanderviewError):
    """The output location cannot be used (exists, is a file, is not writable)."""
