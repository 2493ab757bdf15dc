"""`wanderview fit-gaussians DATASET -o OUT`: fit 3D Gaussian splats to posed images."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from wanderview.errors import ConfigError, InputError

HELP = """\
Fit 3D Gaussian splats (3DGS: Kerbl et al. 2023) to the posed frames of DATASET — any wanderview run
folder (frames/ + cameras.json, depth/ optional), e.g. a photo3d or scenescape walk, or a
nerfstudio folder (transforms.json with file_path and optional depth_file_path) — and write a run
folder: gaussians.ply (the standard 3DGS PLY that SuperSplat and gsplat open), frames/ + video.mp4
(renders of the training views), cameras.json, loss.png, config.json and manifest.json (PSNR of
the training views and of the held-out views with --holdout).

The recipe is the paper's (per-attribute Adam learning rates, 0.8 L1 + 0.2 (1 - SSIM), clone /
split / prune / opacity reset, SH degree raised over time); the CPU default of --iterations is
3000 instead of the paper's 30000, and the schedule is scaled to the iteration count.
Initialisation: depth (one Gaussian per pixel of a grid of the frames with depth), points (a point
cloud or mesh: --points FILE, or the run folder's points.ply / mesh.ply) or random (in the box of
the camera frusta); default: depth when the dataset has depth, else points, else random.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-gaussians", help="fit 3D Gaussian splats to a run folder or posed images",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("dataset", type=Path, help="run folder or nerfstudio folder with posed frames")
    p.add_argument("-o", "--out", type=Path, required=True, help="output run folder")
    p.add_argument(
        "--iterations",
        type=_positive_int,
        default=3000,
        help="optimisation steps (default 3000 on CPU; the paper uses 30000)",
    )
    p.add_argument(
        "--init",
        choices=["auto", "depth", "points", "random"],
        default="auto",
        help="initial Gaussians (default auto: depth, else points, else random)",
    )
    p.add_argument("--points", type=Path, default=None, help="point cloud / mesh PLY for --init points")
    p.add_argument(
        "--init-count",
        type=_positive_int,
        default=20000,
        help="about how many initial Gaussians (depth grid stride or random count; default 20000)",
    )
    p.add_argument(
        "--sh-degree", type=int, choices=[0, 1, 2, 3], default=3, help="maximum SH degree (default 3)"
    )
    p.add_argument(
        "--depth-weight",
        type=float,
        default=0.0,
        help="weight of the depth L1 where the dataset has depth (default 0 = off)",
    )
    p.add_argument(
        "--holdout",
        type=int,
        default=0,
        help="hold out every Nth frame for evaluation (default 0 = train on all)",
    )
    p.add_argument("--max-views", type=_positive_int, default=None, help="use at most this many frames")
    p.add_argument(
        "--max-gaussians",
        type=_positive_int,
        default=200_000,
        help="densification stops adding beyond this count (default 200000)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=500,
        help="save resumable state every N iterations (default 500; 0 = never)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=_positive_int, default=24)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--resume", action="store_true", help="continue a killed fit from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _initial_scene(args, data, train):
    """The initial GaussianScene and a short name of how it was made."""
    import torch

    from wanderview.optim.gaussian_fit import camera_extent
    from wanderview.scenes.gaussians import GaussianScene

    mode = args.init
    points_file = args.points or next(
        (args.dataset / n for n in ("points.ply", "mesh.ply") if (args.dataset / n).is_file()), None
    )
    if mode == "auto":
        mode = "depth" if data.depths is not None else ("points" if points_file else "random")
    if mode == "depth":
        if data.depths is None:
            raise InputError(f"The dataset {args.dataset} has no depth/ maps; use --init points or random.")
        known = int(torch.isfinite(data.depths[train]).sum())
        stride = max(1, round((known / args.init_count) ** 0.5))
        frames = [(data.images[i], data.depths[i], data.cameras[i]) for i in train]
        return GaussianScene.from_rgbd(
            frames, stride=stride, max_sh_degree=args.sh_degree
        ), f"depth (stride {stride})"
    if mode == "points":
        if points_file is None:
            raise InputError("--init points needs --points FILE (or a points.ply / mesh.ply in the dataset).")
        from wanderview.io.mesh import load_points

        points, colors = load_points(points_file)
        if len(points) == 0:
            raise InputError(f"The point file {points_file} has no points.")
        if len(points) > 4 * args.init_count:  # thin evenly, seeded
            keep = torch.randperm(len(points), generator=torch.Generator().manual_seed(args.seed))[
                : 4 * args.init_count
            ]
            points, colors = points[keep], colors[keep]
        return GaussianScene.from_points(
            points, colors, max_sh_degree=args.sh_degree
        ), f"points ({points_file.name})"
    cams = data.cameras[train]
    extent = camera_extent(cams)
    centres = cams.center
    pad = 3.0 * max(extent, 1.0)
    low, high = centres.min(0).values - pad, centres.max(0).values + pad
    return GaussianScene.random(
        args.init_count, low, high, seed=args.seed, max_sh_degree=args.sh_degree
    ), "random"


def run(args: argparse.Namespace) -> int:
    import torch

    from wanderview.io.cameras import write_transforms_json
    from wanderview.io.posed_images import read_posed_images
    from wanderview.io.rundir import Manifest, RunDir
    from wanderview.io.video import write_video
    from wanderview.metrics.image import psnr
    from wanderview.optim.gaussian_fit import FitConfig, GaussianFitter

    if args.holdout < 0 or args.holdout == 1:
        raise ConfigError(f"--holdout must be 0 (off) or at least 2, got {args.holdout}")
    if args.checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every must be 0 or more, got {args.checkpoint_every}")
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pass one")
    inputs = [args.dataset] + ([args.points] if args.points else [])
    RunDir.check(args.out, overwrite=args.overwrite, resume=args.resume, inputs=inputs)
    t_start = time.perf_counter()
    torch.manual_seed(args.seed)
    manifest = Manifest(seed=args.seed, device="cpu")
    with manifest.timer("read"):
        data = read_posed_images(args.dataset, args.max_views)
    views = list(range(len(data.cameras)))
    test = [i for i in views if args.holdout and i % args.holdout == args.holdout // 2]
    train = [i for i in views if i not in test]
    if not train:
        raise InputError(f"The dataset {args.dataset} has no frame left to train on.")
    scene, init_name = _initial_scene(args, data, train)
    config = FitConfig(iterations=args.iterations, seed=args.seed, depth_weight=args.depth_weight,
                       max_gaussians=args.max_gaussians, checkpoint_every=args.checkpoint_every)  # fmt: skip
    depths = data.depths[train] if data.depths is not None else None
    fitter = GaussianFitter(scene, data.cameras[train], data.images[train], depths, config)
    run_dir = RunDir.create(args.out, overwrite=args.overwrite, resume=args.resume, inputs=inputs)
    try:
        state = run_dir.load_state("fit") if args.resume else None
        if state is not None:
            fitter.load_state_dict(state)
            manifest = Manifest.from_dict(run_dir.read_json("manifest.json") or {"seed": args.seed})
        manifest.backends = {"rasteriser": _rasteriser_name(), "init": init_name}
        manifest.notes = [
            f"CPU default: {args.iterations} iterations (the paper: 30000), schedule scaled to it"
        ]
        run_dir.write_json("config.json", {"dataset": str(args.dataset), "init": init_name, **asdict(config)})
        manifest.write(run_dir)
        with manifest.timer("fit"):
            fitter.fit(progress=not args.quiet, checkpoint=lambda s: run_dir.save_state("fit", s))
        with manifest.timer("write"):
            scene.save(run_dir.path("gaussians.ply"))
            renders = []
            for index, i in enumerate(train):
                out = scene.render(data.cameras[i])
                run_dir.write_frame(index, out.rgb, out.depth)
                renders.append(out.rgb)
            write_video(run_dir.path("video.mp4"), renders, fps=args.fps)
            write_transforms_json(run_dir.path("cameras.json"), data.cameras[train],
                                  [f"frames/{k:05d}.png" for k in range(len(train))])  # fmt: skip
            _plot_loss(fitter.history, run_dir.path("loss.png"))
        manifest.frames = len(train)
        manifest.backends["gaussians"] = len(scene)
        manifest.backends["psnr_train"] = _mean_psnr(psnr, scene, data, train)
        if test:
            manifest.backends["psnr_heldout"] = _mean_psnr(psnr, scene, data, test)
        manifest.timings["total"] = time.perf_counter() - t_start
        manifest.write(run_dir)
        final = run_dir.finalize()
    except BaseException:
        # keep the staging folder only when a checkpoint in it can be resumed
        if run_dir.load_state("fit") is None:
            run_dir.abort()
        raise
    summary = f"psnr train {manifest.backends['psnr_train']:.2f} dB"
    if test:
        summary += f", held-out {manifest.backends['psnr_heldout']:.2f} dB"
    print(f"wrote {final / 'gaussians.ply'} ({len(scene)} Gaussians; {summary})")
    return 0


def _rasteriser_name() -> str:
    from wanderview.render import gaussians_cpu

    return "cpu tiles (numba)" if gaussians_cpu.HAVE_NUMBA else "dense torch reference (numba missing)"


def _mean_psnr(psnr, scene, data, indices) -> float:
    values = [psnr(scene.render(data.cameras[i]).rgb, data.images[i]) for i in indices]
    return round(sum(values) / len(values), 3)


def _plot_loss(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], lw=0.6)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (0.8 L1 + 0.2 (1 - SSIM))")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    ax2.plot([h["step"] for h in history], [h["n"] for h in history], color="tab:orange", lw=0.8)
    ax2.set_ylabel("Gaussians", color="tab:orange")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
