"""`wanderview train-inpainter IMAGE_DIR -o MODEL/`: train one M-UNet on a folder of images.

The paper's protocol on a photo collection: depth from a depth backend, cycle-rendered pairs of
every image, one pixel-space M-UNet trained from scratch on all of them. The folder it writes is
loaded by ``--inpainter selfsup:MODEL/``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from wanderview.cli.common import positive_int
from wanderview.errors import InputError, OutputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def register(subparsers) -> None:
    """Add the ``train-inpainter`` sub-command."""
    p = subparsers.add_parser(
        "train-inpainter",
        help="train the self-supervised photo3d inpainter (M-UNet) on a folder of images",
        description="Train one M-UNet from scratch on cycle-rendered pairs of every image in IMAGE_DIR "
        "(depth from --depth-model) and save it to a folder that `--inpainter selfsup:FOLDER` loads. "
        "No pretrained weights are used.",
    )
    p.add_argument("image_dir", type=Path, help="folder of images (png, jpg, webp, ...)")
    p.add_argument("-o", "--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--depth-model", default="heuristic", help="depth backend spec (default: heuristic)")
    p.add_argument("--steps", type=positive_int, default=2000, help="training steps (default 2000)")
    p.add_argument("--crop", type=positive_int, default=48, help="training crop side in pixels (default 48)")
    p.add_argument("--pairs", type=positive_int, default=8, help="cycle-rendered pairs per image (default 8)")
    p.add_argument(
        "--max-side", type=positive_int, default=384, help="images are shrunk to this side (default 384)"
    )
    p.add_argument("--fov", type=float, default=55.0, help="horizontal field of view in degrees (default 55)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs and the training (default 0)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch.nn.functional as F

    from wanderview.backends.protocols import to_depth
    from wanderview.backends.registry import make_depth_model
    from wanderview.cameras.camera import Camera
    from wanderview.io.images import read_image
    from wanderview.optim.selfsup_pairs import make_pairs
    from wanderview.optim.selfsup_train import PixelInpaintDiffusion, TrainConfig, train

    if not args.image_dir.is_dir():
        raise InputError(f"{args.image_dir} is not a folder of images")
    paths = sorted(p for p in args.image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"{args.image_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if args.out.exists() and (args.out.is_file() or any(args.out.iterdir())) and not args.overwrite:
        raise OutputError(f"{args.out} exists and is not empty; pass --overwrite to replace it")

    depth_model = make_depth_model(args.depth_model)
    pools = []
    for i, path in enumerate(paths):
        image = read_image(path)
        H, W = image.shape[-2:]
        scale = min(1.0, args.max_side / max(H, W))
        if scale < 1.0:
            H, W = max(8, round(H * scale)), max(8, round(W * scale))
            image = F.interpolate(image[None], size=(H, W), mode="area")[0]
        depth = to_depth(depth_model.predict(image), depth_model.output)
        camera = Camera.from_fov(args.fov, W, H)
        pools.append(make_pairs(image, depth, camera, args.pairs, seed=args.seed + i))

    staging = args.out.with_name(f".{args.out.name}.partial")
    staging.mkdir(parents=True, exist_ok=True)
    diffusion = PixelInpaintDiffusion(device=args.device)
    config = TrainConfig(steps=args.steps, crop=args.crop)
    # The staging folder holds the checkpoint, so rerunning a killed command resumes its training.
    losses = train(diffusion, pools, config, seed=args.seed, checkpoint_dir=staging, progress=not args.quiet)
    diffusion.save(
        staging,
        extra={
            "images": len(paths),
            "depth_model": args.depth_model,
            "steps": args.steps,
            "final_loss": losses[-1] if losses else None,
        },
    )
    (staging / "train_state.pt").unlink(missing_ok=True)
    if args.out.exists():
        shutil.rmtree(args.out) if args.out.is_dir() else args.out.unlink()
    staging.replace(args.out)
    if not args.quiet:
        print(f"wrote {args.out} (use --inpainter selfsup:{args.out})")
    return 0
