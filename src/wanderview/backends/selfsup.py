"""The self-supervised inpainter of photo3d (Wang et al.): an M-UNet trained on cycle-rendered pairs.

Specs (``--inpainter``):
- ``selfsup`` — a small pixel-space M-UNet that starts from the **prior shipped in the package**
  (``backends/weights/selfsup_prior.safetensors``: trained by ``wanderview train-inpainter`` on 20
  permissively licensed photos, rebuilt by ``scripts/selfsup_prior.py``) and is **finetuned at run
  time on the input image's own cycle-rendered pairs** (the paper's pretrained + per-image
  structure, at CPU scale). photo3d calls :meth:`prepare` once before the video.
  ``selfsup:prior=none`` trains from scratch (the paper's "Ours (Scratch)"); ``prior=FILE`` loads
  another safetensors file of the same network. Still weak next to a pretrained diffusion model.
- ``selfsup:hf:<sd-inpainting id or path>`` — UNet, autoencoder and text encoder from a Stable
  Diffusion inpainting checkpoint, zero-initialised Masked Enhanced Blocks inserted, finetuned on
  the input image's pairs in :meth:`prepare`.
- ``selfsup:<folder>`` — a model saved by ``wanderview train-inpainter`` (no training in prepare
  unless ``finetune_steps`` is given).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.errors import BackendError, ConfigError
from wanderview.optim.munet import MUNetConfig
from wanderview.optim.selfsup_pairs import CycleConfig, make_pairs, save_pairs
from wanderview.optim.selfsup_train import (
    META_FILE,
    PixelInpaintDiffusion,
    SampleConfig,
    TrainConfig,
    train,
)

SCRATCH_DESCRIPTION = (
    "self-supervised M-UNet diffusion inpainter trained from scratch on the single input image at test "
    "time (cycle-rendered pairs, no pretrained weights), refining a PatchMatch fill; weak next to a "
    "pretrained diffusion model"
)
PRIOR_DESCRIPTION = (
    "self-supervised M-UNet diffusion inpainter: a small prior shipped with wanderview (trained on 20 "
    "permissively licensed photos), finetuned at run time on the input image's cycle-rendered pairs; "
    "it refines a PatchMatch fill (SDEdit-style DDIM, samples averaged). Weak next to a pretrained "
    "Stable Diffusion inpainter (selfsup:hf:<id>)"
)
# The shipped prior: weights + a json with its network config and provenance (scripts/selfsup_prior.py).
PRIOR_FILE = Path(__file__).parent / "weights" / "selfsup_prior.safetensors"


class SelfSupInpainter:
    """Inpainter protocol: ``inpaint(image (3,H,W), mask (1,H,W) bool True=fill, prompt, negative_prompt,
    seed) -> (3,H,W)``, known pixels returned bit-for-bit; plus ``prepare(image, depth, camera)``.

    Args:
        diffusion: a :class:`PixelInpaintDiffusion` or ``SDInpaintDiffusion``.
        description: the one line shown in ``--help`` and the manifest.
        is_weak_default: True for the from-scratch model.
        train_config: training settings used by :meth:`prepare` (None = no training there).
        cycle: ranges of the random cameras of the cycle-rendered pairs.
        sample: sampling settings of :meth:`inpaint`.
        pairs_per_image: number of cycle-rendered pairs made from the input image.
        save_pairs_dir: if set, :meth:`prepare` writes the pairs there as PNGs.
        progress: show the training progress bar.
        seed: seed of the pairs and the training.
    """

    def __init__(
        self,
        diffusion,
        description: str,
        is_weak_default: bool,
        train_config: TrainConfig | None = TrainConfig(),
        cycle: CycleConfig = CycleConfig(),
        sample: SampleConfig = SampleConfig(),
        pairs_per_image: int = 24,
        save_pairs_dir: str | Path | None = None,
        progress: bool = True,
        seed: int = 0,
    ):
        self.diffusion = diffusion
        self.description = description
        self.is_weak_default = is_weak_default
        self.train_config = train_config
        self.cycle = cycle
        self.sample = sample
        self.pairs_per_image = pairs_per_image
        self.save_pairs_dir = save_pairs_dir
        self.progress = progress
        self.seed = seed
        self.trained = train_config is None
        self.losses: list[float] = []

    def is_trained(self) -> bool:
        """Trainable: True once prepare has trained (or a saved model was loaded)."""
        return self.trained

    def prepare(
        self,
        image: torch.Tensor,
        depth: torch.Tensor,
        camera: Camera,
        checkpoint_dir: str | Path | None = None,
        prompt: str = "",
    ) -> None:
        """Train on the image's own cycle-rendered pairs.

        image: (3,H,W) in [0,1]; depth: (1,H,W) z-depth (inf = unknown); camera: the image's camera.
        With ``checkpoint_dir`` the training state is saved there and a rerun skips finished training.
        """
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
        if depth.shape != (1, *image.shape[1:]):
            raise ValueError(
                f"depth must be (1, {image.shape[1]}, {image.shape[2]}), got {tuple(depth.shape)}"
            )
        if self.train_config is None:
            return
        pool = make_pairs(
            image.float().cpu(),
            depth.float().cpu(),
            camera.to("cpu"),
            self.pairs_per_image,
            self.cycle,
            seed=self.seed,
        )
        if self.save_pairs_dir is not None:
            save_pairs(self.save_pairs_dir, pool)
        config = self.train_config
        if self.diffusion.kind == "sd":  # crops must be whole latent cells of the UNet's coarsest level
            config = replace(config, crop=max(64, config.crop // 64 * 64))
        self.losses = train(
            self.diffusion,
            [pool],
            config,
            prompts=[prompt],
            seed=self.seed,
            checkpoint_dir=checkpoint_dir,
            progress=self.progress,
        )
        self.trained = True

    def inpaint(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        prompt: str = "",
        negative_prompt: str | None = None,
        seed: int = 0,
    ) -> torch.Tensor:
        """image: (3,H,W) in [0,1]; mask: (1,H,W) bool, True = fill -> (3,H,W); known pixels unchanged."""
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
        if mask.shape != (1, *image.shape[1:]):
            raise ValueError(f"mask must be (1, {image.shape[1]}, {image.shape[2]}), got {tuple(mask.shape)}")
        if not self.trained:
            raise BackendError(
                "the selfsup inpainter must be trained on the input image first (call prepare)"
            )
        mask = mask.bool()
        if not mask.any():
            return image.clone()
        if self.sample.init == "none":
            out = self.diffusion.inpaint(image, mask, prompt, negative_prompt, seed, self.sample)
        else:
            init = classical_fill(self.sample.init, image, mask)
            out = self.diffusion.inpaint(image, mask, prompt, negative_prompt, seed, self.sample, init=init)
        out = out.to(image.device, image.dtype)
        return torch.where(mask, out, image)  # known pixels bit-for-bit, whatever the network did


INITS = ("none", "telea", "patchmatch")
# Default sampling of the pixel M-UNet (measured, issue #18; README): SDEdit-style from a PatchMatch
# fill noised to t = 0.2·T, deterministic DDIM, 8 fills averaged. From pure noise (init=none) the
# small network's single samples carry speckle that costs ~2 dB and ~0.15 SSIM; a PatchMatch start
# keeps the copied texture's structure, and the average of 8 fills estimates the conditional mean
# that PSNR/SSIM reward.
PIXEL_SAMPLE = SampleConfig(init="patchmatch", strength=0.2, samples=8)
# Per-image finetuning of the shipped prior (measured in the README's benchmark section).
PRIOR_FINETUNE = TrainConfig(steps=600, lr=1e-3)


def load_prior(path: str | Path, device: str | torch.device = "cpu") -> PixelInpaintDiffusion:
    """A :class:`PixelInpaintDiffusion` with the weights of a prior file (``NAME.safetensors`` beside
    ``NAME.json``, which holds the ``munet`` network config), as ``scripts/selfsup_prior.py export``
    writes them."""
    from safetensors.torch import load_file

    path = Path(path)
    info_path = path.with_suffix(".json")
    if not path.is_file() or not info_path.is_file():
        raise BackendError(f"selfsup prior {path} needs the file and {info_path.name} beside it")
    info = json.loads(info_path.read_text())
    diffusion = PixelInpaintDiffusion(MUNetConfig.from_dict(info["munet"]), device)
    try:
        diffusion.model.load_state_dict(load_file(str(path), device=str(device)))
    # Wrong network (RuntimeError) or a damaged file (safetensors' own error type): one sentence.
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackendError(
            f"selfsup prior {path} does not fit the network in {info_path.name}: {first}"
        ) from None
    return diffusion


def classical_fill(name: str, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The classical fill the diffusion sampling starts from. image: (3,H,W); mask: (1,H,W) bool."""
    from wanderview.backends.classical import OpenCVInpainter, PatchMatchInpainter

    if name == "telea":
        return OpenCVInpainter("telea").inpaint(image, mask)
    if name == "patchmatch":
        return PatchMatchInpainter().inpaint(image, mask)
    raise ConfigError(f"selfsup init must be one of {', '.join(INITS)}, got {name!r}")


_OPTION_NAMES = {
    "device",
    "quiet",
    "progress",
    "seed",
    "steps",
    "sample_steps",
    "guidance",
    "save_pairs",
    "pairs",
    "crop",
    "finetune_steps",
    "sampler",
    "init",
    "strength",
    "samples",
    "prior",
}
# Loading options the registry passes to every backend; training runs in float32 whatever they say.
_IGNORED_OPTIONS = {"dtype", "allow_pickle", "cpu_offload", "attention_slicing"}


def _parse_rest(rest: str) -> tuple[str, dict]:
    """Split ``key=value,...`` options off a spec rest: "steps=100" -> ("", {"steps": "100"});
    "hf:ID" and folder paths pass through untouched."""
    if rest.startswith("hf:") or "=" not in rest:
        return rest, {}
    head, options = "", {}
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        if not eq:
            if head:
                raise ConfigError(f"cannot read selfsup spec part {part!r}; use selfsup:key=value,...")
            head = part
            continue
        options[key.strip().replace("-", "_")] = value.strip()
    return head, options


def _number(options: dict, key: str, kind: type):
    """options[key] as an int or float; a value that is none is one sentence, not a traceback."""
    try:
        return kind(options[key])
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"selfsup option {key} must be {what}, got {options[key]!r}") from None


def make_selfsup_inpainter(rest: str = "", **options) -> SelfSupInpainter:
    """The inpainter of spec ``selfsup`` (rest ""), ``selfsup:hf:<id or path>`` or ``selfsup:<folder>``;
    options may also be written in the spec: ``selfsup:steps=300,sample_steps=8``.

    Options: device, quiet/progress, seed, steps (training steps), crop, pairs (pairs per image),
    sample_steps, sampler ("ddim"/"ddpm"), guidance (classifier-free scale), save_pairs (folder),
    finetune_steps (for a saved folder), init ("patchmatch"/"telea"/"none"), strength, samples,
    prior (plain ``selfsup`` only: a prior .safetensors file, or "none" to train from scratch).
    """
    rest, spec_options = _parse_rest(rest)
    options = {k: v for k, v in {**options, **spec_options}.items() if k not in _IGNORED_OPTIONS}
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise ConfigError(f"unknown selfsup option(s) {sorted(unknown)}; known: {sorted(_OPTION_NAMES)}")
    device = options.get("device") or "auto"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    progress = bool(options.get("progress", not options.get("quiet", False)))
    prior = str(options.get("prior") or PRIOR_FILE)
    with_prior = rest == "" and prior != "none"
    train_cfg = PRIOR_FINETUNE if with_prior else TrainConfig()
    if options.get("steps") is not None:
        train_cfg = replace(train_cfg, steps=_number(options, "steps", int))
    if options.get("crop") is not None:
        train_cfg = replace(train_cfg, crop=_number(options, "crop", int))
    # The pixel models (from scratch or a train-inpainter folder) refine a classical fill by default;
    # the Stable Diffusion path keeps sampling from pure noise, as it always has.
    sample = SampleConfig() if rest.startswith("hf:") else PIXEL_SAMPLE
    if options.get("sample_steps") is not None:
        sample = replace(sample, steps=_number(options, "sample_steps", int))
    if options.get("sampler") is not None:
        if options["sampler"] not in ("ddim", "ddpm"):
            raise ConfigError(f"selfsup sampler must be ddim or ddpm, got {options['sampler']!r}")
        sample = replace(sample, sampler=options["sampler"])
    if options.get("samples") is not None:
        samples = _number(options, "samples", int)
        if samples < 1:
            raise ConfigError(f"selfsup samples must be at least 1, got {samples}")
        sample = replace(sample, samples=samples)
    if options.get("init") is not None:
        if options["init"] not in INITS:
            raise ConfigError(f"selfsup init must be one of {', '.join(INITS)}, got {options['init']!r}")
        sample = replace(sample, init=options["init"])
    if options.get("strength") is not None:
        strength = _number(options, "strength", float)
        if not 0.0 < strength <= 1.0:
            raise ConfigError(f"selfsup strength must be in (0, 1], got {strength}")
        sample = replace(sample, strength=strength)
    if options.get("guidance") is not None:
        sample = replace(sample, guidance=_number(options, "guidance", float))
    common = dict(
        sample=sample,
        progress=progress,
        seed=_number(options, "seed", int) if options.get("seed") is not None else 0,
        save_pairs_dir=options.get("save_pairs"),
        pairs_per_image=_number(options, "pairs", int) if options.get("pairs") else 24,
    )

    if rest == "":
        if not with_prior:
            return SelfSupInpainter(
                PixelInpaintDiffusion(device=device), SCRATCH_DESCRIPTION, True, train_cfg, **common
            )
        description = PRIOR_DESCRIPTION if prior == str(PRIOR_FILE) else f"{PRIOR_DESCRIPTION}; prior {prior}"
        return SelfSupInpainter(load_prior(prior, device), description, True, train_cfg, **common)
    if rest.startswith("hf:"):
        from wanderview.optim.munet_sd import SDInpaintDiffusion

        source = rest[3:]
        if not source:
            raise ConfigError("selfsup:hf: needs a Stable Diffusion inpainting hub id or folder after 'hf:'")
        if options.get("steps") is None:
            train_cfg = replace(train_cfg, steps=200, lr=1e-5, crop=256, batch_size=1, hole_weight=0.0)
        description = (
            f"self-supervised M-UNet: Stable Diffusion inpainting {source} with Masked Enhanced "
            "Blocks, finetuned on the input image's cycle-rendered pairs"
        )
        return SelfSupInpainter(SDInpaintDiffusion(source, device), description, False, train_cfg, **common)
    return _load_folder(Path(rest), device, options, train_cfg, common)


def _load_folder(
    folder: Path, device, options: dict, train_cfg: TrainConfig, common: dict
) -> SelfSupInpainter:
    if not (folder / META_FILE).is_file():
        raise BackendError(f"selfsup:{folder} is not a model folder written by `wanderview train-inpainter`")
    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("kind") == "sd":
        from wanderview.optim.munet_sd import SDInpaintDiffusion

        diffusion = SDInpaintDiffusion.load(folder, device)
    else:
        diffusion = PixelInpaintDiffusion.load(folder, device)
    steps = options.get("finetune_steps")
    config = replace(train_cfg, steps=_number(options, "finetune_steps", int)) if steps else None
    images = meta.get("images", "?")
    description = (
        f"self-supervised M-UNet trained by train-inpainter on {images} image(s) from scratch "
        f"({folder}); no pretrained weights"
    )
    return SelfSupInpainter(diffusion, description, meta.get("kind") != "sd", config, **common)
