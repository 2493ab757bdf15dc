"""Options every method command shares, and helpers to turn them into config values."""

from __future__ import annotations

import argparse
from pathlib import Path

from wanderview.errors import ConfigError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_common_options(parser: argparse.ArgumentParser, *, frames: int, trajectory: str) -> None:
    """Add -o/--out, --frames, --trajectory, --seed, --device, --width/--height, --fov, --fps,
    --resume, --overwrite and --quiet to a method's sub-parser."""
    g = parser.add_argument_group("common options")
    g.add_argument(
        "-o", "--out", type=Path, required=True, help="run folder to write (see README: run folder)"
    )
    g.add_argument("--frames", type=positive_int, default=frames, help=f"number of frames (default {frames})")
    g.add_argument(
        "--trajectory",
        default=trajectory,
        help=f"camera path: NAME, NAME:key=value,..., or a camera file (default {trajectory!r}; "
        "`wanderview trajectory --help` lists the names)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto (default: auto)")
    g.add_argument("--width", type=positive_int, default=None, help="frame width (default: from the input)")
    g.add_argument("--height", type=positive_int, default=None, help="frame height (default: from the input)")
    g.add_argument("--fps", type=positive_int, default=24, help="video frame rate (default 24)")
    g.add_argument("--resume", action="store_true", help="continue a killed run from its last finished frame")
    g.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def resolve_device(name: str) -> str:
    """'auto' -> cuda > mps > cpu; anything else is checked to exist."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"--device {name!r} is not a device name; use cpu, cuda, cuda:N, mps or auto"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was asked for but this torch build sees no CUDA device")
    return str(device)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Loading options shared by every Hugging Face backend (ignored by the embedded CPU backends)."""
    g = parser.add_argument_group("model loading (hf: backends)")
    g.add_argument(
        "--dtype",
        choices=["float16", "bfloat16", "float32"],
        default=None,
        help="weights dtype (default: float16 on CUDA, float32 elsewhere)",
    )
    g.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow .bin/.ckpt pickle checkpoints (they can run code; safetensors only by default)",
    )
    g.add_argument("--cpu-offload", action="store_true", help="offload idle sub-models to CPU (small GPUs)")
    g.add_argument("--attention-slicing", action="store_true", help="slice attention to save GPU memory")


def model_options(args: argparse.Namespace, device: str) -> dict:
    """The keyword options every ``make_*`` backend factory accepts."""
    return {
        "device": device,
        "dtype": args.dtype,
        "allow_pickle": args.allow_pickle,
        "cpu_offload": args.cpu_offload,
        "attention_slicing": args.attention_slicing,
    }
