"""Tile every k-th frame of a run folder into one PNG.

python benchmarks/contact_sheet.py RUN OUT.png [--every K] [--columns N] [--tile PX]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--columns", type=int, default=6)
    parser.add_argument("--tile", type=int, default=160, help="tile width in pixels")
    args = parser.parse_args()
    paths = sorted((args.run / "frames").glob("*.png"))[:: args.every]
    tiles = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        image = image.resize((args.tile, round(image.height * args.tile / image.width)))
        ImageDraw.Draw(image).text((4, 2), path.stem.lstrip("0") or "0", fill=(255, 255, 0))
        tiles.append(np.asarray(image))
    rows = [tiles[i : i + args.columns] for i in range(0, len(tiles), args.columns)]
    blank = np.zeros_like(tiles[0])
    sheet = np.concatenate([np.concatenate(r + [blank] * (args.columns - len(r)), axis=1) for r in rows])
    # a 256-colour palette keeps README images small (< 300 KB)
    Image.fromarray(sheet).quantize(256).save(args.out, optimize=True)
    print(f"{len(tiles)} frames -> {args.out}")


if __name__ == "__main__":
    main()
