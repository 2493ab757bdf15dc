"""Contact sheet of a fourreal run: input frames, fixed_view.mp4, freeze_time.mp4, video.mp4 (rows).

    python benchmarks/fourreal_sheet.py RUN FRAMES_DIR OUT.png [--columns 6] [--tile 144]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from wanderview.io.images import read_image, write_image
from wanderview.io.video import read_video


def row(frames: list[torch.Tensor], columns: int, width: int) -> torch.Tensor:
    """``columns`` evenly spaced frames (3, H, W), each resized to ``width``, side by side."""
    picks = [frames[round(i * (len(frames) - 1) / max(columns - 1, 1))] for i in range(columns)]
    size = (round(picks[0].shape[1] * width / picks[0].shape[2]), width)
    tiles = [F.interpolate(f[None], size=size, mode="bilinear", align_corners=False)[0] for f in picks]
    return torch.cat(tiles, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run", type=Path)
    p.add_argument("frames", type=Path, help="the folder of input frames (the freeze-time video)")
    p.add_argument("out", type=Path)
    p.add_argument("--columns", type=int, default=6)
    p.add_argument("--tile", type=int, default=144)
    args = p.parse_args()
    files = sorted(f for f in args.frames.iterdir() if f.suffix.lower() in (".jpg", ".png"))
    inputs = [read_image(f) for f in files]
    rows = [row(inputs, args.columns, args.tile)]
    for name in ("fixed_view.mp4", "freeze_time.mp4", "video.mp4"):
        rows.append(row(read_video(args.run / name), args.columns, args.tile))
    write_image(args.out, torch.cat(rows, 1).clamp(0, 1))
    # a 255-colour palette keeps the sheet well under 300 KB
    sheet = Image.open(args.out).convert("RGB").quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
