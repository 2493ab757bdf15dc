"""Spec strings to backends: one plain dict per kind, one ``make_*`` function per kind.

A spec is ``NAME`` or ``NAME:REST``; ``NAME`` picks the factory in the kind's dict and ``REST`` is
passed to it (a hub id or folder for ``hf:``, a model name for ``openai:``, a depth file for
``file:``). Factories import their heavy dependencies lazily, so listing or choosing a classical
backend never imports diffusers or transformers.

Options understood by the Hugging Face backends: ``device``, ``dtype``, ``allow_pickle``,
``cpu_offload``, ``attention_slicing``; other keyword options go to the backend's constructor
(e.g. ``steps=``, ``outpaint_margin=``, ``depth=`` for ``file``).
"""

from __future__ import annotations

from collections.abc import Callable

from wanderview.errors import BackendError

_HF_OPTION_NAMES = ("device", "dtype", "allow_pickle", "cpu_offload", "attention_slicing")


def _split_options(options: dict) -> tuple[object, dict]:
    """Separate the shared loading options (an HFOptions) from backend-specific keywords."""
    from wanderview.backends.hf_common import HFOptions

    hf = {k: options[k] for k in _HF_OPTION_NAMES if options.get(k) is not None}
    rest = {k: v for k, v in options.items() if k not in _HF_OPTION_NAMES}
    return HFOptions(**hf), rest


def _no_rest(name: str, rest: str) -> None:
    if rest:
        raise BackendError(f"backend {name!r} takes no argument, got {name}:{rest}")


def _ignore_hf(options: dict) -> dict:
    """Embedded backends run on the CPU and load nothing: the loading options do not apply."""
    return {k: v for k, v in options.items() if k not in _HF_OPTION_NAMES}


# --- depth -----------------------------------------------------------------------------------
def _heuristic_depth(rest: str, **options):
    from wanderview.backends.heuristic_depth import HeuristicDepth

    _no_rest("heuristic", rest)
    return HeuristicDepth(**_ignore_hf(options))


def _file_depth(rest: str, **options):
    from wanderview.backends.classical import FileDepth

    options = _ignore_hf(options)
    return FileDepth(depth=options.pop("depth", None), path=rest or options.pop("path", None), **options)


def _hf_depth(rest: str, **options):
    from wanderview.backends.hf_depth import HFDepthModel

    hf, extra = _split_options(options)
    return HFDepthModel(rest, hf, **extra)


# --- inpainting ------------------------------------------------------------------------------
def _none_inpainter(rest: str, **options):
    from wanderview.backends.classical import NoInpainter

    _no_rest("none", rest)
    return NoInpainter()


def _opencv(method: str) -> Callable:
    def factory(rest: str, **options):
        from wanderview.backends.classical import OpenCVInpainter

        _no_rest(method, rest)
        return OpenCVInpainter(method, **_ignore_hf(options))

    return factory


def _patchmatch(rest: str, **options):
    from wanderview.backends.classical import PatchMatchInpainter

    _no_rest("patchmatch", rest)
    return PatchMatchInpainter(**_ignore_hf(options))


def _selfsup(rest: str, **options):
    try:
        from wanderview.backends.selfsup import make_selfsup_inpainter
    except ImportError as err:
        raise BackendError("the 'selfsup' inpainter is not available in this installation") from err
    return make_selfsup_inpainter(rest, **options)


def _hf_inpainter(rest: str, **options):
    from wanderview.backends.hf_inpaint import HFInpainter

    hf, extra = _split_options(options)
    return HFInpainter(rest, hf, **extra)


# --- generators and vision-language ----------------------------------------------------------
def _hf_image(rest: str, **options):
    from wanderview.backends.hf_image import HFImageGenerator

    hf, extra = _split_options(options)
    return HFImageGenerator(rest, hf, **extra)


def _hf_video(rest: str, **options):
    from wanderview.backends.hf_video import HFVideoGenerator

    hf, extra = _split_options(options)
    return HFVideoGenerator(rest, hf, **extra)


def _hf_text_video(rest: str, **options):
    from wanderview.backends.hf_text_video import HFTextVideoGenerator

    hf, extra = _split_options(options)
    return HFTextVideoGenerator(rest, hf, **extra)


def _hf_vlm(rest: str, **options):
    from wanderview.backends.vlm import HFVisionLanguage

    hf, extra = _split_options(options)
    return HFVisionLanguage(rest, hf, **extra)


def _openai_vlm(rest: str, **options):
    from wanderview.backends.vlm import OpenAIVisionLanguage

    return OpenAIVisionLanguage(rest, **_ignore_hf(options))


DEPTH_MODELS: dict[str, Callable] = {"heuristic": _heuristic_depth, "file": _file_depth, "hf": _hf_depth}
INPAINTERS: dict[str, Callable] = {
    "none": _none_inpainter,
    "telea": _opencv("telea"),
    "ns": _opencv("ns"),
    "patchmatch": _patchmatch,
    "selfsup": _selfsup,
    "hf": _hf_inpainter,
}
IMAGE_GENERATORS: dict[str, Callable] = {"hf": _hf_image}
VIDEO_GENERATORS: dict[str, Callable] = {"hf": _hf_video}
TEXT_VIDEO_GENERATORS: dict[str, Callable] = {"hf": _hf_text_video}
VISION_LANGUAGE: dict[str, Callable] = {"hf": _hf_vlm, "openai": _openai_vlm}

# How each spec is written in help texts and error messages.
_ARGUMENT_HINTS = {
    "hf": "hf:<hub-id-or-path>",
    "openai": "openai:<model>",
    "file": "file[:<depth-file>]",
    "selfsup": "selfsup[:<options>]",
}


def valid_specs(registry: dict[str, Callable]) -> list[str]:
    """The spec forms a registry accepts, for help texts and errors."""
    return [_ARGUMENT_HINTS.get(name, name) for name in registry]


def _make(kind: str, registry: dict[str, Callable], spec: str, options: dict):
    if not isinstance(spec, str) or not spec.strip():
        raise BackendError(f"empty {kind} spec; valid: {', '.join(valid_specs(registry))}")
    name, _, rest = spec.strip().partition(":")
    factory = registry.get(name)
    if factory is None:
        raise BackendError(f"unknown {kind} {spec!r}; valid: {', '.join(valid_specs(registry))}")
    return factory(rest, **options)


def make_depth_model(spec: str, **options):
    """A DepthModel for ``spec`` (heuristic, file[:path], hf:<id-or-path>)."""
    return _make("depth model", DEPTH_MODELS, spec, options)


def make_inpainter(spec: str, **options):
    """An Inpainter for ``spec`` (none, telea, ns, patchmatch, selfsup[:...], hf:<id-or-path>)."""
    return _make("inpainter", INPAINTERS, spec, options)


def make_image_generator(spec: str, **options):
    """An ImageGenerator for ``spec`` (hf:<id-or-path>)."""
    return _make("image generator", IMAGE_GENERATORS, spec, options)


def make_video_generator(spec: str, **options):
    """A VideoGenerator for ``spec`` (hf:<id-or-path>)."""
    return _make("video model", VIDEO_GENERATORS, spec, options)


def make_text_video_generator(spec: str, **options):
    """A text-to-video generator for ``spec`` (hf:<id-or-path> of a WanPipeline or CogVideoXPipeline)."""
    return _make("text-to-video model", TEXT_VIDEO_GENERATORS, spec, options)


def make_vision_language(spec: str, **options):
    """A VisionLanguage model for ``spec`` (hf:<id-or-path>, openai:<model>)."""
    return _make("vision-language model", VISION_LANGUAGE, spec, options)
