"""What every Hugging Face backend shares: where the weights are, which device and dtype, safety.

Policy (the same for every ``hf:`` backend):
- ``hf:<x>`` is a local folder when ``x`` is an existing directory, else a hub id ``owner/name``.
- Weights load lazily, on the first call that needs them.
- Only safetensors weights are loaded unless ``allow_pickle=True``; a local folder whose weight
  files are all pickles (.bin/.pt/.pth/.ckpt) is refused with a BackendError before anything loads.
- ``trust_remote_code`` is never set: only model classes shipped with transformers/diffusers run.
- Local files only, by default: a hub id must already be in the local Hugging Face cache, and it is
  resolved at backend construction (before any run folder exists, without loading weights) to its
  cached snapshot folder, so loading never touches the network. A missing model is one sentence
  naming it and the ``huggingface-cli download`` command, never 30 s of network retries. Downloads
  happen only when the user opts in with ``WANDERVIEW_DOWNLOAD=1`` (``HF_HUB_OFFLINE=1`` always wins).
- Device: ``cuda`` > ``mps`` > ``cpu`` unless given; dtype: float16 on cuda, float32 elsewhere,
  unless given. ``cpu_offload`` and ``attention_slicing`` are for small GPUs (diffusers pipelines).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from wanderview.errors import BackendError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
_DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}


@dataclass(frozen=True)
class HFOptions:
    """Loading options shared by every Hugging Face backend (all have safe defaults)."""

    device: str | None = None  # None/"auto": cuda > mps > cpu
    dtype: str | torch.dtype | None = None  # None/"auto": float16 on cuda, float32 elsewhere
    allow_pickle: bool = False  # load .bin/.pt checkpoints (pickle can run code: trusted files only)
    cpu_offload: bool = False  # diffusers model CPU offload (CUDA only)
    attention_slicing: bool = False  # diffusers attention slicing (less memory, a little slower)


def hub_offline() -> bool:
    """True when downloads are switched off (HF_HUB_OFFLINE, read now rather than at import)."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return flag or bool(constants.HF_HUB_OFFLINE)


DOWNLOAD_ENV = "WANDERVIEW_DOWNLOAD"


def downloads_allowed() -> bool:
    """True only when the user opted into downloads (``WANDERVIEW_DOWNLOAD=1``) and the hub is online."""
    opted_in = os.environ.get(DOWNLOAD_ENV, "").strip().lower() in {"1", "on", "yes", "true"}
    return opted_in and not hub_offline()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to load on: the given one, or cuda > mps > cpu when None or "auto"."""
    if device is not None and str(device) != "auto":
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise BackendError(f"unknown device {device!r}; use cpu, cuda, cuda:N, mps or auto") from err
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"device {device!r} was requested but CUDA is not available on this machine")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The given dtype, or float16 on cuda and float32 elsewhere when None or "auto"."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise BackendError(f"unknown dtype {dtype!r}; use one of float16, bfloat16, float32, auto")
    return _DTYPES[dtype]


def require(module: str, what: str) -> object:
    """Import an optional dependency or raise a BackendError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BackendError(f"{what} needs the '{module}' package: pip install 'wanderview[hf]'") from err


def fetch_hint(repo_id: str) -> str:
    return (
        f"run `huggingface-cli download {repo_id}` while online, pass a local folder as hf:/path/to/model, "
        f"or set {DOWNLOAD_ENV}=1 to let wanderview download it"
    )


def weight_files(folder: Path) -> list[Path]:
    """Every weight file under ``folder`` (safetensors and pickles)."""
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", *PICKLE_SUFFIXES)]


def check_local_weights(folder: Path, allow_pickle: bool) -> None:
    """Refuse a folder with no weights, or one whose weights are pickle-only when pickles are off."""
    files = weight_files(folder)
    if not files:
        raise BackendError(f"no model weights (.safetensors) found in {folder}")
    if allow_pickle:
        return
    # Diffusers folders hold one model per sub-folder: each must have safetensors of its own.
    pickle_only = sorted(
        {p.parent for p in files if p.suffix in PICKLE_SUFFIXES}
        - {p.parent for p in files if p.suffix == ".safetensors"}
    )
    if pickle_only:
        where = ", ".join(str(p.relative_to(folder)) or "." for p in pickle_only)
        raise BackendError(
            f"{folder} holds only pickle weights (.bin/.pt/.ckpt) in {where}; convert them to safetensors "
            "or pass --allow-pickle if you trust the files"
        )


def resolve_source(ref: str, default: str, config_file: str, allow_pickle: bool) -> str:
    """Turn the part after ``hf:`` into what ``from_pretrained`` accepts, checking it first.

    ref: local folder or hub id ('' = ``default``); config_file: the file a usable model has
    (``model_index.json`` for diffusers pipelines, ``config.json`` for transformers models).
    """
    ref = ref.strip() or default
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / config_file).is_file():
            raise BackendError(f"{path} is not a saved model folder (it has no {config_file})")
        check_local_weights(path, allow_pickle)
        return str(path)
    if ref.startswith((".", "/", "~")) or path.exists() or ref.count("/") != 1:
        raise BackendError(f"model folder {ref!r} does not exist (and it is not a hub id like owner/name)")
    if downloads_allowed():
        return ref
    return _cached_snapshot(ref, config_file, allow_pickle)


def _cached_snapshot(repo_id: str, config_file: str, allow_pickle: bool) -> str:
    """The local snapshot folder of a cached hub model, checked like a local folder (no network)."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except ImportError as err:
        raise BackendError(
            "hf: models need the 'huggingface_hub' package: pip install 'wanderview[hf]'"
        ) from (err)
    except Exception as err:  # LocalEntryNotFoundError and friends: not in the cache
        raise BackendError(
            f"model {repo_id} is not in the local Hugging Face cache (wanderview downloads only when asked); "
            f"{fetch_hint(repo_id)}"
        ) from err
    if not (folder / config_file).is_file():
        raise BackendError(f"the cached copy of {repo_id} has no {config_file}; {fetch_hint(repo_id)}")
    try:
        check_local_weights(folder, allow_pickle)
    except BackendError as err:
        reason = f"the cached copy of {repo_id} is incomplete or unusable ({err})"
        raise BackendError(f"{reason}; {fetch_hint(repo_id)}") from None
    return str(folder)


def load_error(source: str, err: Exception, allow_pickle: bool = False) -> BackendError:
    """One sentence for a failed ``from_pretrained`` (missing files, offline, no safetensors)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "safetensors" in text.lower() and not allow_pickle:
        return BackendError(f"model {source} has no safetensors weights; pass --allow-pickle if you trust it")
    if Path(source).is_dir():
        return BackendError(f"could not load the model in {source}: {text}")
    return BackendError(f"could not load model {source} ({text}); {fetch_hint(source)}")


def pipeline_class_name(source: str) -> str:
    """The ``_class_name`` in a diffusers checkpoint's model_index.json (local folder or hub cache)."""
    import json

    path = Path(source) / "model_index.json"
    if not path.is_file():
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, "model_index.json"))
        except Exception as err:
            raise load_error(source, err) from err
    return json.loads(path.read_text()).get("_class_name", "")


def safetensors_flag(allow_pickle: bool) -> bool | None:
    """``use_safetensors`` for from_pretrained: required unless pickles are allowed."""
    return None if allow_pickle else True


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator: diffusers draws noise on it and moves it, so results match across devices."""
    return torch.Generator("cpu").manual_seed(int(seed))


def round_to_multiple(value: int, multiple: int = 8) -> int:
    """Nearest positive multiple of ``multiple`` (diffusion models need sizes divisible by 8)."""
    return max(multiple, int(round(value / multiple)) * multiple)


def causal_video_frames(pipe, num_frames: int) -> int:
    """The next 1 + r*k >= ``num_frames`` (k >= 1): what a pipeline with a causal video VAE of temporal
    compression r (``pipe.vae_scale_factor_temporal``, 4 for Wan and CogVideoX) can make."""
    ratio = int(getattr(pipe, "vae_scale_factor_temporal", 4))
    return 1 + ratio * max(1, -(-(num_frames - 1) // ratio))


def transformer_video_size(pipe, height: int, width: int, multiple: int) -> tuple[int, int]:
    """(h, w) a video pipeline runs at: the asked size rounded to ``multiple``, or the only size a
    transformer with learned position embeddings supports (CogVideoX-5b: a fixed 720x480 table)."""
    config = getattr(getattr(pipe, "transformer", None), "config", None)
    if config is not None and getattr(config, "use_learned_positional_embeddings", False):
        scale = int(pipe.vae_scale_factor_spatial)
        return config.sample_height * scale, config.sample_width * scale
    return round_to_multiple(height, multiple), round_to_multiple(width, multiple)


def pipeline_video(frames, num_frames: int, height: int, width: int) -> torch.Tensor:
    """A video pipeline's ``output_type="pt"`` frames -> (num_frames, 3, height, width) float32 on the
    CPU in [0, 1]: the first video, extra frames dropped, resized back to the asked size."""
    import torch.nn.functional as F

    video = frames[0] if isinstance(frames, torch.Tensor) else torch.stack(list(frames[0]))
    video = video[:num_frames].float().cpu()
    if tuple(video.shape[-2:]) != (height, width):
        video = F.interpolate(video, size=(height, width), mode="bilinear", align_corners=False)
    return video.clamp(0, 1)


def apply_memory_options(pipe, options: HFOptions, device: torch.device):
    """Move a diffusers pipeline to ``device`` or offload it, and slice attention when asked."""
    if options.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    if options.cpu_offload and device.type == "cuda":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe


def load_diffusers_pipeline(
    class_name: str, source: str, dtype: torch.dtype, options: HFOptions, device: torch.device, what: str
):
    """Load a diffusers pipeline class by name from ``source``, safetensors unless pickle is
    allowed, placed on ``device`` with the memory options; missing weights -> one-sentence BackendError."""
    diffusers = require("diffusers", what)
    try:
        pipe = getattr(diffusers, class_name).from_pretrained(
            source,
            **diffusers_dtype_kwargs(dtype),
            use_safetensors=safetensors_flag(options.allow_pickle),
        )
    except (OSError, ValueError) as err:
        raise load_error(source, err, options.allow_pickle) from err
    return apply_memory_options(pipe, options, device)


def diffusers_dtype_kwargs(dtype: torch.dtype) -> dict:
    """``from_pretrained`` keyword for the dtype: recent diffusers renamed ``torch_dtype`` to ``dtype``."""
    try:
        from diffusers.utils import deprecation_utils

        renamed = hasattr(deprecation_utils, "_resolve_dtype")
    except ImportError:
        renamed = False
    return {"dtype": dtype} if renamed else {"torch_dtype": dtype}


def to_pil(image: torch.Tensor):
    """(3,H,W) in [0,1] -> 8-bit PIL RGB image, for pipelines that expect PIL input (IO edge only)."""
    import numpy as np
    from PIL import Image

    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a (3,H,W) tensor, got {tuple(image.shape)}")
    array = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(array)
