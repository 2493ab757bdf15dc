"""Load each Hugging Face model once per worker process and give every job its own copy.

A Ray worker (an actor) runs many jobs with the same backend configuration in one process. While
the cache is installed, ``from_pretrained`` of transformers' ``PreTrainedModel`` and diffusers'
``ModelMixin`` (the two base classes every model and every pipeline component loads through)
remembers the loaded model per (class, source, arguments) and returns a deep copy: the first job
reads the weights from disk, later jobs copy them in memory. A copy, because methods change
weights at run time (SceneScape finetunes its depth model and decoder on every frame), and one job
must never see another's finetuning. Calls with ``device_map`` (accelerate's dispatch) are not
cached. The cache lives as long as the worker, i.e. one batch.
"""

from __future__ import annotations

import copy
import importlib
import os
import threading
from typing import Any

# (module, class) of the base classes whose from_pretrained every model load goes through
TARGETS = (("transformers", "PreTrainedModel"), ("diffusers", "ModelMixin"))


class WeightCache:
    """Memoises ``from_pretrained`` in this process while installed; see the module docstring.

    Attributes:
        loaded: number of models read from disk.
        reused: number of loads served from memory.
    """

    def __init__(self) -> None:
        self._store: dict[tuple, Any] = {}
        self._originals: dict[type, Any] = {}
        self._lock = threading.Lock()
        self.loaded = 0
        self.reused = 0

    def stats(self) -> dict[str, int]:
        return {"loaded": self.loaded, "reused": self.reused, "models": len(self._store)}

    @staticmethod
    def _key(cls: type, source: Any, args: tuple, kwargs: dict) -> tuple | None:
        if kwargs.get("device_map") is not None:
            return None
        where = (
            os.path.abspath(source)
            if isinstance(source, str | os.PathLike) and os.path.exists(source)
            else source
        )
        try:
            return (cls.__module__, cls.__qualname__, str(where), repr(args), repr(sorted(kwargs.items())))
        except Exception:  # an argument without a stable repr: do not cache
            return None

    def install(self) -> WeightCache:
        """Patch the base classes that are importable (idempotent); returns self."""
        for module_name, class_name in TARGETS:
            try:
                base = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):
                continue
            if base in self._originals:
                continue
            original = base.__dict__["from_pretrained"]
            self._originals[base] = original
            base.from_pretrained = classmethod(self._wrap(original.__func__))
        return self

    def uninstall(self) -> None:
        """Restore the original ``from_pretrained`` methods and drop the cached models."""
        for base, original in self._originals.items():
            base.from_pretrained = original
        self._originals.clear()
        self._store.clear()

    def _wrap(self, load):
        cache = self

        def from_pretrained(cls, source, *args, **kwargs):
            key = cache._key(cls, source, args, kwargs)
            if key is None:
                return load(cls, source, *args, **kwargs)
            with cache._lock:
                if key not in cache._store:
                    cache._store[key] = load(cls, source, *args, **kwargs)
                    cache.loaded += 1
                else:
                    cache.reused += 1
                return copy.deepcopy(cache._store[key])

        return from_pretrained
