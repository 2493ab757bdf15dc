"""Evaluate a run folder (docs/design.md) end to end and format the results.

``evaluate_run`` reads ``frames/``, ``depth/``, ``masks/`` and ``cameras.json``, computes every metric
that applies and returns one JSON-ready dict; ``write_metrics`` stores it atomically as
``metrics.json``; ``format_table`` prints one or several runs side by side. A metric that cannot be
computed holds a string saying why (``"n/a: ..."``), never a made-up number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wanderview.cameras.camera import Camera
from wanderview.errors import InputError
from wanderview.io.cameras import read_transforms_json
from wanderview.io.depth import read_depth
from wanderview.io.images import atomic_output, read_image, read_mask
from wanderview.io.rundir import check_output_file
from wanderview.metrics import clip as clip_metric
from wanderview.metrics import colmap as colmap_protocol
from wanderview.metrics.image import lpips_status, psnr_of_mse, squared_error, ssim

SOURCES = {
    "psnr": "PSNR (dB) vs ground truth of the mean squared error over all pixels of all frames "
    "(pooled, so one identical frame such as the input frame 0 cannot make it inf)",
    "ssim": "SSIM, Wang et al. 2004 (11x11 Gaussian, sigma 1.5), mean over frames",
    "psnr_holes": "PSNR of the mean squared error over the disoccluded pixels of masks/ of all frames",
    "ssim_holes": "SSIM map averaged over the disoccluded pixels of masks/",
    "lpips": "LPIPS, Zhang et al. 2018",
    "consistency": "Make-It-4D (Shen et al. 2023): 100 x L1 between frame t and frame t+1 warped back",
    "depth_consistency": "mean |z - d| / d between each frame's depth and the previous frame's depth",
    "density": "fraction of pixels passing the forward-backward depth check (1 px, 1 %) with a neighbour",
    "colmap": "SceneScape (Fridman et al. 2023) COLMAP protocol with pycolmap on CPU, intrinsics fixed",
    "clip_score": clip_metric.SOURCE,
}


@dataclass(frozen=True)
class RunData:
    """A run folder loaded into tensors.

    Attributes:
        root: the run folder.
        cameras: batch of N cameras (OpenCV).
        frame_names: N frame paths relative to ``root``.
        frames: (N, 3, H, W) in [0, 1].
        depths: (N, 1, H, W) z-depth (inf = unknown), or None when the run has no depth maps.
        holes: (N, 1, H, W) bool disoccluded pixels, or None when the run has no masks.
    """

    root: Path
    cameras: Camera
    frame_names: list[str]
    frames: torch.Tensor
    depths: torch.Tensor | None
    holes: torch.Tensor | None


def check_run_folder(run_dir: str | Path, writable: bool = False) -> Path:
    """Cheap checks that ``run_dir`` is a run folder (and, with ``writable``, that metrics.json can
    be written into it); raises InputError/OutputError with one sentence. Returns it as a Path."""
    root = Path(run_dir)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} is a file, not a run folder.")
    if not root.is_dir():
        raise InputError(f"The run folder {root} does not exist.")
    if not (root / "cameras.json").is_file():
        raise InputError(f"{root} is not a run folder (it has no cameras.json).")
    if writable:
        check_output_file(root / "metrics.json", "metrics file")
    return root


def load_run(run_dir: str | Path, indices: list[int] | None = None) -> RunData:
    """Read a run folder (only the frame ``indices`` when given); raises InputError when it is missing
    or not a run folder."""
    root = check_run_folder(run_dir)
    cameras, paths = read_transforms_json(root / "cameras.json")
    names = [p if p is not None else f"frames/{i:05d}.png" for i, p in enumerate(paths)]
    if indices is not None:
        if any(not 0 <= i < len(names) for i in indices):
            raise InputError(f"{root} has {len(names)} frames; the selection asks for frames outside them.")
        cameras, names = cameras[list(indices)], [names[i] for i in indices]
    frames = []
    for name in names:
        image = read_image(root / name, max_pixels=None)
        if tuple(image.shape[1:]) != (cameras.height, cameras.width):
            raise InputError(f"{root / name} is not {cameras.width}x{cameras.height} as cameras.json says.")
        frames.append(image)
    size = (cameras.height, cameras.width)
    depth_files = [root / "depth" / f"{Path(n).stem}.npy" for n in names]
    depths = None
    if all(f.is_file() for f in depth_files):
        depths = torch.stack([read_depth(f, size=size, mask_invalid=True)[0] for f in depth_files])
    mask_files = [root / "masks" / f"{Path(n).stem}.png" for n in names]
    holes = None
    if all(f.is_file() for f in mask_files):
        holes = torch.stack([read_mask(f, size=size) for f in mask_files])
    return RunData(root, cameras, names, torch.stack(frames), depths, holes)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _pool(acc: list, term: tuple[float, int]) -> None:
    acc[0] += term[0]
    acc[1] += term[1]


def fidelity_metrics(run: RunData, gt_dir: str | Path) -> dict:
    """PSNR/SSIM (all pixels and disoccluded pixels) against ground-truth views, paired by index."""
    gt_root = Path(gt_dir)
    if not (gt_root / "transforms.json").is_file():
        raise InputError(f"The ground-truth folder {gt_root} has no transforms.json.")
    gt_cameras, gt_paths = read_transforms_json(gt_root / "transforms.json")
    if len(gt_cameras) != len(run.cameras):
        counts = f"{len(gt_cameras)} views but the run has {len(run.cameras)} frames"
        raise InputError(f"The ground truth has {counts}.")
    out: dict = {"ssim": [], "ssim_holes": []}
    pooled = {"psnr": [0.0, 0], "psnr_holes": [0.0, 0]}  # sum of squared errors, count
    for i, gt_path in enumerate(gt_paths):
        if gt_path is None:
            raise InputError(f"View {i} of {gt_root / 'transforms.json'} has no file_path.")
        target = read_image(gt_root / gt_path, max_pixels=None)
        pred = run.frames[i]
        if target.shape != pred.shape:
            raise InputError(f"The ground-truth view {gt_path} is not the size of the run's frames.")
        _pool(pooled["psnr"], squared_error(pred, target))
        out["ssim"].append(ssim(pred, target))
        if run.holes is not None and run.holes[i].any():
            _pool(pooled["psnr_holes"], squared_error(pred, target, run.holes[i]))
            out["ssim_holes"].append(ssim(pred, target, run.holes[i]))
    no_holes = "n/a: no disoccluded pixels"
    result = {key: psnr_of_mse(sse / count) if count else no_holes for key, (sse, count) in pooled.items()}
    result.update({key: _mean(values) if values else no_holes for key, values in out.items()})
    result = {key: result[key] for key in ("psnr", "ssim", "psnr_holes", "ssim_holes")}
    result["lpips"] = lpips_status()
    return result


def consistency_metrics(run: RunData) -> dict:
    """Make-It-4D consistency, depth temporal consistency and density (needs depth and >= 2 frames)."""
    if run.depths is None:
        reason = "n/a: the run has no depth maps"
        return {"consistency": reason, "depth_consistency": reason, "density": reason}
    if len(run.cameras) < 2:
        reason = "n/a: needs at least 2 frames"
        return {"consistency": reason, "depth_consistency": reason, "density": reason}
    from wanderview.metrics.consistency import density, depth_consistency, photometric_consistency

    return {
        "consistency": photometric_consistency(run.frames, run.depths, run.cameras),
        "depth_consistency": depth_consistency(run.depths, run.cameras),
        "density": density(run.depths, run.cameras),
    }


def colmap_metrics(run: RunData, options: colmap_protocol.ColmapOptions | None = None) -> dict:
    """The SceneScape COLMAP protocol on the run's frames (see :mod:`wanderview.metrics.colmap`)."""
    K = run.cameras.K[0]
    if not torch.allclose(run.cameras.K, K.expand_as(run.cameras.K)):
        return {"status": "n/a: the frames do not share one set of intrinsics"}
    options = options or colmap_protocol.ColmapOptions()
    recon = colmap_protocol.run_colmap(run.root, run.frame_names, K, options)
    depths = np.full((len(run.cameras), run.cameras.height, run.cameras.width), np.inf)
    if run.depths is not None:
        depths = run.depths[:, 0].double().numpy()
    result = colmap_protocol.colmap_metrics(recon, run.cameras.cam_to_world.double().numpy(), depths)
    if run.depths is None:
        result["si_rmse"] = "n/a: the run has no depth maps"
    return result


def clip_metrics(run: RunData, scorer: clip_metric.ClipScorer | None, prompt: str | None = None) -> dict:
    """``clip_score`` (prompt adherence) of the run's frames; with a score, also ``clip_model`` and
    ``clip_prompt`` (what it was measured with). ``prompt`` overrides the run's config.json prompt."""
    if scorer is None:
        return {"clip_score": clip_metric.NO_MODEL}
    prompt = clip_metric.choose_prompt(run.root, prompt)
    if prompt is None:
        return {"clip_score": clip_metric.NO_PROMPT}
    score = scorer.score(run.frames, prompt)
    return {"clip_score": score, "clip_model": scorer.source, "clip_prompt": prompt}


def replace_clip_metrics(
    metrics: dict, run: RunData, scorer: clip_metric.ClipScorer | None, prompt: str | None = None
) -> dict:
    """A copy of stored ``metrics`` whose CLIP keys are recomputed with ``scorer`` (a score from
    another model or prompt never survives)."""
    replaced = ("clip_score", "clip_model", "clip_prompt", "sources")
    kept = {k: v for k, v in metrics.items() if k not in replaced}
    kept.update(clip_metrics(run, scorer, prompt))
    kept["sources"] = {**metrics.get("sources", {}), "clip_score": SOURCES["clip_score"]}
    return to_json_ready(kept)


def evaluate_run(
    run_dir: str | Path | RunData,
    gt_dir: str | Path | None = None,
    use_colmap: bool | None = None,
    clip: clip_metric.ClipScorer | None = None,
    prompt: str | None = None,
    colmap_log_level: int = 2,
    stage: str | None = None,
) -> dict:
    """Every metric that applies to a run folder, as a JSON-ready dict.

    Args:
        run_dir: the run folder (or one already read by :func:`load_run`).
        colmap_log_level: COLMAP messages on stderr (2 = errors only; see ColmapOptions.log_level).
        gt_dir: folder with ground-truth views (``transforms.json`` + images), or None.
        use_colmap: True runs the COLMAP protocol (error if pycolmap is missing), False skips it,
            None runs it when pycolmap is installed.
        clip: the CLIP model for ``clip_score``, or None (the score then says why it is missing).
        prompt: the prompt for ``clip_score``; None uses the run's config.json "prompt".
        stage: score only the frames of this stage of the run's stages.json (dreamjourney:
            ``transition`` or ``dynamics``); None = every frame.
    Returns:
        dict with ``run``, ``frames``, ``width``, ``height``, the metric keys (``psnr``, ``ssim``,
        ``psnr_holes``, ``ssim_holes``, ``lpips`` with ``gt_dir``; ``consistency``,
        ``depth_consistency``, ``density``; ``colmap`` as a nested dict; ``clip_score``) and ``sources``.
    """
    if isinstance(run_dir, RunData):
        run = run_dir
    else:
        indices = None
        if stage is not None:
            from wanderview.metrics.stages import stage_frames

            indices = stage_frames(run_dir, stage)
        run = load_run(run_dir, indices)
    result: dict = {"run": str(run.root), "frames": len(run.cameras), "width": run.cameras.width,
                    "height": run.cameras.height}
    if stage is not None:
        result["stage"] = stage
    if gt_dir is not None:
        result.update(fidelity_metrics(run, gt_dir))
    result.update(consistency_metrics(run))
    if use_colmap is None:
        use_colmap = colmap_protocol.pycolmap_available()
        if not use_colmap:
            result["colmap"] = {"status": "n/a: pycolmap is not installed"}
    if use_colmap:
        result["colmap"] = colmap_metrics(run, colmap_protocol.ColmapOptions(log_level=colmap_log_level))
    result.update(clip_metrics(run, clip, prompt))
    result["sources"] = {k: v for k, v in SOURCES.items() if k in result}
    return to_json_ready(result)


def to_json_ready(value):
    """Replace NaN by None and infinities by the strings "inf"/"-inf" (strict JSON has neither)."""
    if isinstance(value, dict):
        return {k: to_json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_ready(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def write_metrics(run_dir: str | Path, metrics: dict, name: str = "metrics.json") -> Path:
    """Write ``RUN_DIR/<name>`` (default metrics.json) atomically; returns its path."""
    path = Path(run_dir) / name
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, allow_nan=False))
    return path


_SKIP = {"run", "sources", "clip_prompt"}  # the prompt can be a paragraph: JSON only


def flatten(metrics: dict, prefix: str = "") -> dict:
    """Nested metrics as ``{"colmap.si_rmse": value, ...}``, bookkeeping keys left out."""
    flat = {}
    for key, value in metrics.items():
        if key in _SKIP:
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def format_table(named_metrics: dict[str, dict]) -> str:
    """A plain-text table: one row per metric, one column per run (name -> metrics dict)."""
    flats = {name: flatten(m) for name, m in named_metrics.items()}
    keys: list[str] = []
    for flat in flats.values():
        keys += [k for k in flat if k not in keys]
    header = ["metric", *flats]
    rows = [[key, *(_cell(flat.get(key, "-")) for flat in flats.values())] for key in keys]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
