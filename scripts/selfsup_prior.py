"""Rebuild the selfsup inpainter's shipped prior (``src/wanderview/backends/weights/selfsup_prior.*``).

Three steps, each a sub-command (the training itself is plain ``wanderview train-inpainter``):

    python scripts/selfsup_prior.py corpus runs/prior_corpus       # write the training photos as PNGs
    wanderview train-inpainter runs/prior_corpus -o runs/prior --steps 6000 --crop 48 --pairs 8 --seed 0
        # (resumable: a killed run continues with the same command plus --resume)
    python scripts/selfsup_prior.py export runs/prior              # -> safetensors + json in the package

Corpus (every image permissively licensed; none of the benchmark's scenes is in it):
- scikit-image's bundled photos and textures: astronaut (NASA, public domain), chelsea, coffee,
  camera (CC0), rocket (SpaceX, public domain), coins (Brooklyn Museum, no known restrictions),
  brick, grass, gravel (CC0 textures). The Middlebury motorcycle is left out: it is a benchmark scene.
- ``../shared/data/images`` (its README): landscape_0..2 (Apache-2.0, 3d-cinemagraphy demo),
  real_lake, real_temple, countryside, desert, french_manor, indoor, village, woodland (MIT,
  WonderJourney examples). Skipped with a note when the folder is absent.
The procedural scenes of ``data/synthetic.py`` are left out on purpose: the benchmark's scenes are
drawn from them, and a prior trained on them would be tuned on the test distribution.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SKIMAGE = ("astronaut", "chelsea", "coffee", "camera", "rocket", "coins", "brick", "grass", "gravel")
SHARED = ("landscape_0", "landscape_1", "landscape_2", "real_lake", "real_temple", "countryside",
          "desert", "french_manor", "indoor", "village", "woodland")
PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "src/wanderview/backends/weights"


def _shared_images() -> Path:
    """``../shared/data/images`` beside the checkout (or beside its parent, for a worktree)."""
    root = Path(__file__).resolve().parents[1]
    candidates = [root.parent / "shared/data/images", root.parent.parent / "shared/data/images"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def corpus(out: Path, shared: Path) -> None:
    """Write the corpus as PNGs (RGB; grey images repeated to 3 channels)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for name in SKIMAGE:
        array = getattr(skimage.data, name)()
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        Image.fromarray(array[..., :3]).save(out / f"skimage_{name}.png")
    if shared.is_dir():
        for name in SHARED:
            Image.open(shared / f"{name}.jpg").convert("RGB").save(out / f"shared_{name}.png")
    else:
        print(f"note: {shared} is absent; the corpus has only the scikit-image images")
    print(f"wrote {len(list(out.glob('*.png')))} images to {out}")


def export(model_dir: Path, dest: Path) -> None:
    """Convert a train-inpainter folder to ``selfsup_prior.safetensors`` + ``selfsup_prior.json``."""
    import torch
    from safetensors.torch import save_file

    meta = json.loads((model_dir / "selfsup.json").read_text())
    state = torch.load(model_dir / "munet.pt", map_location="cpu", weights_only=True)
    manifest, config = ({}, {})
    if (model_dir / "manifest.json").is_file():
        manifest = json.loads((model_dir / "manifest.json").read_text())
    if (model_dir / "config.json").is_file():
        config = json.loads((model_dir / "config.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest / "selfsup_prior.safetensors"))
    info = {"munet": meta["munet"], "images": meta.get("images"), "steps": meta.get("steps"),
            "final_loss": meta.get("final_loss"), "timings_s": manifest.get("timings_s"),
            "train_inpainter_options": {k: v for k, v in config.items() if k not in ("command", "images")},
            "corpus": [entry.split(":")[0] for entry in config.get("images", [])],
            "built_by": "scripts/selfsup_prior.py (corpus, train-inpainter, export)"}
    (dest / "selfsup_prior.json").write_text(json.dumps(info, indent=2) + "\n")
    size = (dest / "selfsup_prior.safetensors").stat().st_size
    print(f"wrote {dest / 'selfsup_prior.safetensors'} ({size / 1e6:.2f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("corpus", help="write the training images")
    c.add_argument("out", type=Path)
    c.add_argument("--shared", type=Path, default=_shared_images(), help="the shared sample images folder")
    e = sub.add_parser("export", help="convert a train-inpainter folder into the package's prior")
    e.add_argument("model_dir", type=Path)
    e.add_argument("--dest", type=Path, default=PACKAGE_WEIGHTS)
    args = parser.parse_args()
    if args.command == "corpus":
        corpus(args.out, args.shared)
    else:
        export(args.model_dir, args.dest)


if __name__ == "__main__":
    main()
