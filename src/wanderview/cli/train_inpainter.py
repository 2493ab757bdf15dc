"""`wanderview train-inpainter IMAGE_DIR -o MODEL/`: train one M-UNet on a folder of images.

The paper's protocol on a photo collection: depth from a depth backend, cycle-rendered pairs of
every image, one pixel-space M-UNet trained from scratch on all of them. The folder it writes is
loaded by ``--inpainter selfsup:MODEL/``. It is built like a run folder (``io/rundir.py``): staged in
``.MODEL.partial``, resumable with ``--resume`` only when every result-affecting option is the same,
and finished with a ``manifest.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

from wanderview.cli._text import count
from wanderview.cli.common import positive_int
from wanderview.errors import ConfigError, InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
# Options that change the trained weights; a resume must match them all (--device, --quiet may differ).
RESULT_OPTIONS = ("images", "depth_model", "steps", "crop", "pairs", "max_side", "fov", "seed")


def register(subparsers) -> None:
    """Add the ``train-inpainter`` sub-command."""
    p = subparsers.add_parser(
        "train-inpainter",
        help="train the self-supervised photo3d inpainter (M-UNet) on a folder of images",
        description="Train one M-UNet from scratch on cycle-rendered pairs of every image in IMAGE_DIR "
        "(depth from --depth-model) and save it to a folder that `--inpainter selfsup:FOLDER` loads. "
        "No pretrained weights are used. The same --seed gives the same weights on CPU.",
    )
    p.add_argument("image_dir", type=Path, help="folder of images (png, jpg, webp, ...)")
    p.add_argument("-o", "--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--depth-model", default="heuristic", help="depth backend spec (default: heuristic)")
    p.add_argument("--steps", type=positive_int, default=2000, help="training steps (default 2000)")
    p.add_argument(
        "--crop",
        type=positive_int,
        default=48,
        help="training crop side, a multiple of 4 (default 48)",
    )
    p.add_argument("--pairs", type=positive_int, default=8, help="cycle-rendered pairs per image (default 8)")
    p.add_argument(
        "--max-side", type=positive_int, default=384, help="images are shrunk to this side (default 384)"
    )
    p.add_argument("--fov", type=float, default=55.0, help="horizontal field of view in degrees (default 55)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the initial weights, pairs and training (default 0)",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing model folder written by this command"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run (same options) from its checkpoint",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar (the result line is still printed)")
    p.set_defaults(func=run)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_options(args: argparse.Namespace, multiple: int) -> None:
    if args.crop % multiple:
        raise ConfigError(
            f"--crop must be a multiple of {multiple} (the M-UNet downsamples), got {args.crop}"
        )
    if not (math.isfinite(args.fov) and 0 < args.fov < 180):
        raise ConfigError(f"--fov must be between 0 and 180 degrees, got {args.fov}")
    if not -(2**63) <= args.seed < 2**63:
        raise ConfigError(f"--seed must fit in 64 bits (|seed| < 2^63), got {args.seed}")


def _same_run(old: dict | None, new: dict, staging: Path) -> None:
    """Refuse to resume a checkpoint trained with other result-affecting options."""
    if not isinstance(old, dict) or old.get("command") != "train-inpainter":
        raise ConfigError(
            f"The unfinished run in {staging} has no train-inpainter config.json to check it against; "
            "rerun with --overwrite to start over."
        )
    for key in RESULT_OPTIONS:
        if old.get(key) != new[key]:
            option = "the images in IMAGE_DIR" if key == "images" else f"--{key.replace('_', '-')}"
            raise ConfigError(
                f"--resume continues a run made with other options ({option} differs: "
                f"{_short(old.get(key))} before, {_short(new[key])} now); "
                "rerun with the same options or with --overwrite."
            )


def _short(value) -> str:
    text = f"{len(value)} files" if isinstance(value, list) else repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _read_config(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _checkpoint_loss(path: Path) -> float | None:
    """The last training loss stored in a checkpoint (a resume after the final step trains none)."""
    import torch

    if not path.is_file():
        return None
    loss = torch.load(path, map_location="cpu", weights_only=False).get("last_loss")
    return float(loss) if loss is not None else None


def run(args: argparse.Namespace) -> int:
    import torch.nn.functional as F

    from wanderview.backends.hf_common import resolve_device
    from wanderview.backends.protocols import to_depth
    from wanderview.backends.registry import make_depth_model
    from wanderview.cameras.camera import Camera
    from wanderview.io.images import read_image
    from wanderview.io.rundir import Manifest, RunDir
    from wanderview.optim.munet import MUNetConfig
    from wanderview.optim.selfsup_pairs import make_pairs
    from wanderview.optim.selfsup_train import PixelInpaintDiffusion, TrainConfig, train

    if not args.image_dir.is_dir():
        raise InputError(f"{args.image_dir} is not a folder of images")
    paths = sorted(p for p in args.image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"{args.image_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    multiple = 2 ** (len(MUNetConfig().channels) - 1)
    _check_options(args, multiple)
    device = str(resolve_device(args.device))  # an unknown or absent device is one sentence, now
    inputs = [args.image_dir, *paths]
    RunDir.check(args.out, overwrite=args.overwrite, resume=args.resume, inputs=inputs)

    depth_model = make_depth_model(args.depth_model)
    images = []
    for path in paths:
        image = read_image(path)
        H, W = image.shape[-2:]
        scale = min(1.0, args.max_side / max(H, W))
        if scale < 1.0:
            H, W = max(8, round(H * scale)), max(8, round(W * scale))
            image = F.interpolate(image[None], size=(H, W), mode="area")[0]
        if min(H, W) < args.crop:
            largest = min(H, W) // multiple * multiple
            hint = f"use --crop {largest} or less" if largest else "use larger images"
            raise InputError(
                f"{path.name} is {W}x{H} after --max-side, smaller than the {args.crop}-pixel crop; {hint}."
            )
        images.append(image)
    key = {
        "command": "train-inpainter",
        "images": [f"{p.name}:{_sha256(p)}" for p in paths],
        "depth_model": args.depth_model,
        "steps": args.steps,
        "crop": args.crop,
        "pairs": args.pairs,
        "max_side": args.max_side,
        "fov": args.fov,
        "seed": args.seed,
    }
    manifest = Manifest(seed=args.seed, device=device)
    manifest.backends = {"depth": {"spec": args.depth_model}}
    with manifest.timer("pairs"):
        pools = []
        for i, image in enumerate(images):
            depth = to_depth(depth_model.predict(image), depth_model.output)
            camera = Camera.from_fov(args.fov, image.shape[2], image.shape[1])
            pools.append(make_pairs(image, depth, camera, args.pairs, seed=args.seed + i))
    if not any(len(pool) for pool in pools):
        raise InputError("There are no training pairs: the images produced no cycle-rendering holes.")
    if args.resume:  # checked before anything is touched: a refused resume leaves the killed run as it was
        _same_run(
            _read_config(RunDir.staging_path(args.out) / "config.json"), key, RunDir.staging_path(args.out)
        )

    # Every check is done; only now is anything written.
    rundir = RunDir.create(args.out, overwrite=args.overwrite, resume=args.resume, inputs=inputs)
    rundir.write_json("config.json", key)
    diffusion = PixelInpaintDiffusion(device=device, seed=args.seed)  # seeded initial weights
    config = TrainConfig(steps=args.steps, crop=args.crop)
    # The checkpoint lives in the staging folder's .state/, which finalize() deletes.
    with manifest.timer("train"):
        losses = train(
            diffusion,
            pools,
            config,
            seed=args.seed,
            checkpoint_dir=rundir.path(".state"),
            progress=not args.quiet,
        )
    resumed_at = args.steps - len(losses)
    final_loss = losses[-1] if losses else _checkpoint_loss(rundir.staging / ".state" / "train_state.pt")
    diffusion.save(
        rundir.staging,
        extra={
            "images": len(paths),
            "depth_model": args.depth_model,
            "steps": args.steps,
            "final_loss": final_loss,
        },
    )
    manifest.frames = 0
    manifest.notes.append(
        f"trained {len(losses)} steps now" + (f", resumed at step {resumed_at}" if resumed_at else "")
    )
    manifest.write(rundir)
    rundir.finalize()
    loss_text = f"final loss {final_loss:.4f}" if final_loss is not None else "no steps left to train"
    print(f"wrote {args.out} ({count(args.steps, 'step')}, {loss_text}; use --inpainter selfsup:{args.out})")
    return 0
