"""What ``wanderview models`` lists: every backend of every kind, usable here or not, and how to get it.

Nothing here touches the network: dependencies are checked with ``importlib.util.find_spec`` and
Hugging Face weights with ``huggingface_hub.snapshot_download(local_files_only=True)`` (the local
cache only, as the ``hf:`` backends themselves resolve them).
GPU memory figures are approximate, for the default settings (fp16/bf16 at the model's usual
resolution), taken from the model cards and parameter counts; CPU offload lowers them.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

KINDS = ("depth", "inpaint", "image", "video", "text-video", "vlm")
KIND_TITLES = {
    "depth": "depth models (--depth-model)",
    "inpaint": "inpainters (--inpainter)",
    "image": "text-to-image generators (--generator)",
    "video": "video models (dreamjourney / fourreal --video-model)",
    "text-video": "text-to-video models (fourreal --text-video-model)",
    "vlm": "vision-language models (dreamjourney --vlm)",
}
_HF_DEPS = ("torch", "transformers", "safetensors")
_DIFFUSERS_DEPS = ("torch", "diffusers", "transformers", "safetensors")


@dataclass(frozen=True)
class CatalogEntry:
    """One backend a user can name on the command line."""

    kind: str  # one of KINDS
    spec: str  # what to pass, e.g. "telea" or "hf:Intel/dpt-large"
    description: str
    dependencies: tuple[str, ...] = ()  # importable modules it needs
    hub_id: str | None = None  # Hugging Face weights it needs
    config_file: str = "config.json"  # file whose presence in the cache marks the weights as fetched
    gpu_memory: str = "none (CPU)"
    is_weak_default: bool = False


ENTRIES: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        "depth",
        "heuristic",
        "ground plane + sky + backdrop prior; weak stand-in for a depth model",
        ("cv2",),
        is_weak_default=True,
    ),
    CatalogEntry("depth", "file", "depth map supplied by the user (--depth FILE)"),
    CatalogEntry(
        "depth",
        "hf:depth-anything/Depth-Anything-V2-Small-hf",
        "Depth Anything V2 Small (24.8M params, relative disparity; default hf: depth model)",
        _HF_DEPS,
        "depth-anything/Depth-Anything-V2-Small-hf",
        gpu_memory="~1 GB",
    ),
    CatalogEntry(
        "depth",
        "hf:Intel/dpt-large",
        "DPT-Large / MiDaS v3 (343M params, relative disparity)",
        _HF_DEPS,
        "Intel/dpt-large",
        gpu_memory="~2 GB",
    ),
    CatalogEntry(
        "inpaint", "none", "no inpainting: holes stay empty and are recorded in masks/", is_weak_default=True
    ),
    CatalogEntry(
        "inpaint",
        "telea",
        "OpenCV Telea fast-marching fill (smooth, no new detail)",
        ("cv2",),
        is_weak_default=True,
    ),
    CatalogEntry(
        "inpaint", "ns", "OpenCV Navier-Stokes fill (smooth, no new detail)", ("cv2",), is_weak_default=True
    ),
    CatalogEntry(
        "inpaint",
        "patchmatch",
        "PatchMatch exemplar fill (copies texture from the image)",
        ("patchmatch",),
        is_weak_default=True,
    ),
    CatalogEntry(
        "inpaint",
        "selfsup",
        "photo3d's inpainter: a small shipped prior finetuned on the input image itself, refining a "
        "PatchMatch fill (no downloads)",
        ("torch", "safetensors", "wanderview.backends.selfsup"),
        is_weak_default=True,
    ),
    CatalogEntry(
        "inpaint",
        "hf:stabilityai/stable-diffusion-2-inpainting",
        "Stable Diffusion 2 inpainting (default hf: inpainter; SceneScape's model)",
        _DIFFUSERS_DEPS,
        "stabilityai/stable-diffusion-2-inpainting",
        "model_index.json",
        "~5 GB fp16 at 512x512 (~3 GB with --cpu-offload)",
    ),
    CatalogEntry(
        "image",
        "hf:stabilityai/stable-diffusion-2-1-base",
        "Stable Diffusion 2.1 base text-to-image",
        _DIFFUSERS_DEPS,
        "stabilityai/stable-diffusion-2-1-base",
        "model_index.json",
        "~4 GB fp16 at 512x512",
    ),
    CatalogEntry(
        "video",
        "hf:stabilityai/stable-video-diffusion-img2vid-xt",
        "Stable Video Diffusion XT image-to-video (25 frames, no text)",
        _DIFFUSERS_DEPS,
        "stabilityai/stable-video-diffusion-img2vid-xt",
        "model_index.json",
        "~16-20 GB fp16 at 1024x576 (less with small decode chunks / --cpu-offload)",
    ),
    CatalogEntry(
        "video",
        "hf:THUDM/CogVideoX-5b-I2V",
        "CogVideoX 5B image-to-video with a text prompt (720x480)",
        _DIFFUSERS_DEPS,
        "THUDM/CogVideoX-5b-I2V",
        "model_index.json",
        "~26 GB bf16 (from ~5 GB with CPU offload, per the model card)",
    ),
    CatalogEntry(
        "text-video",
        "hf:Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        "Wan 2.1 1.3B text-to-video (fourreal's reference video from --prompt)",
        _DIFFUSERS_DEPS,
        "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        "model_index.json",
        "~8 GB bf16 at 832x480 (8.19 GB per the Wan 2.1 README)",
    ),
    CatalogEntry(
        "vlm",
        "hf:Qwen/Qwen2-VL-2B-Instruct",
        "Qwen2-VL 2B chat (default hf: vision-language model; its processor needs torchvision)",
        _HF_DEPS,
        "Qwen/Qwen2-VL-2B-Instruct",
        gpu_memory="~5 GB bf16",
    ),
    CatalogEntry(
        "vlm",
        "hf:llava-hf/llava-1.5-7b-hf",
        "LLaVA 1.5 7B chat",
        _HF_DEPS,
        "llava-hf/llava-1.5-7b-hf",
        gpu_memory="~15 GB fp16",
    ),
    CatalogEntry(
        "vlm",
        "openai:<model>",
        "any OpenAI-compatible chat server (OpenAI, Ollama, vLLM, llama.cpp)",
        gpu_memory="on the server",
    ),
)


@dataclass(frozen=True)
class Availability:
    """Whether an entry can run on this machine now, and if not, what to do."""

    usable: bool
    status: str  # short words for the table: "ready", "weights not cached", ...
    action: str = ""  # what to run or set to make it usable ("" when ready)


def _missing_modules(modules: tuple[str, ...]) -> list[str]:
    missing = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def weights_cached(hub_id: str, config_file: str) -> bool:
    """True when the model's snapshot in the local Hugging Face cache has its config file and
    safetensors weights: the same test an ``hf:`` backend makes before it loads (no network)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return False
    try:
        folder = Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or an unreadable cache
        return False
    return (folder / config_file).is_file() and any(p.suffix == ".safetensors" for p in folder.rglob("*"))


def availability(entry: CatalogEntry) -> Availability:
    """Check one entry: dependencies importable, weights in the local cache, endpoint configured."""
    missing = _missing_modules(entry.dependencies)
    if missing:
        wanderview_only = all(m.startswith("wanderview.") for m in missing)
        if wanderview_only:
            return Availability(False, "not in this installation", "")
        return Availability(False, f"missing {', '.join(missing)}", "pip install 'wanderview[hf]'")
    if entry.hub_id and not weights_cached(entry.hub_id, entry.config_file):
        return Availability(False, "weights not cached", f"huggingface-cli download {entry.hub_id}")
    if entry.spec.startswith("openai:"):
        if os.environ.get("WANDERVIEW_OPENAI_BASE_URL") or os.environ.get("OPENAI_BASE_URL"):
            return Availability(True, "server configured")
        if os.environ.get("OPENAI_API_KEY"):
            return Availability(True, "OpenAI key set")
        return Availability(
            False,
            "no server configured",
            "set WANDERVIEW_OPENAI_BASE_URL (e.g. http://127.0.0.1:11434/v1) or OPENAI_API_KEY",
        )
    return Availability(True, "ready")


def catalog(kind: str | None = None) -> list[tuple[CatalogEntry, Availability]]:
    """Every entry (of one kind when given) with its availability here."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return [(entry, availability(entry)) for entry in ENTRIES if kind is None or entry.kind == kind]
