"""Screenshots of `wanderview view` and `wanderview app` for the README, taken with headless Chromium.

    .venv/bin/python docs/screenshots.py [--run runs/demo] [--out docs/images]

Makes a small photo3d run of ../shared/data/images/indoor.jpg when --run does not exist (288x192:
headless Chromium draws WebGL on the CPU with SwiftShader, and a bigger mesh stalls its screenshot),
serves it with the viser viewer on a free 127.0.0.1 port and photographs the page; then starts the
Gradio app, uploads the same photo, runs photo3d with its CPU defaults and photographs the page once
the video is there. PNGs are palette-quantised to stay small.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import make_driver  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_small(browser, path: Path, colors: int = 192, scale: float = 1.0) -> None:
    tmp = path.with_suffix(".raw.png")
    browser.save_screenshot(str(tmp))
    image = Image.open(tmp).convert("RGB")
    if scale != 1.0:
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
    image.quantize(colors=colors, dither=Image.Dither.NONE).save(path, optimize=True)
    tmp.unlink()
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def viewer_shot(run_dir: Path, out: Path, settle_s: float) -> None:
    from wanderview.share.run import open_run
    from wanderview.share.viewer import start_viewer

    server, _ = start_viewer(open_run(run_dir), port=free_port())
    browser = make_driver(1000, 640)
    try:
        browser.get(f"http://127.0.0.1:{server.get_port()}/")
        time.sleep(settle_s)  # the scene streams over the websocket, then WebGL draws it
        # viser's "software WebGL" notice is true here (SwiftShader) and would hide the scene
        browser.execute_script(
            "document.querySelectorAll('.mantine-Notification-root').forEach(e => e.remove())"
        )
        time.sleep(2.0)
        save_small(browser, out)
    finally:
        browser.quit()
        server.stop()


def app_shot(image: Path, out: Path, runs_dir: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from wanderview.share.app_ui import launch

    app, url = launch(runs_dir, port=free_port(), block=False)
    browser = make_driver(1280, 1240)
    try:
        browser.get(url)
        wait = WebDriverWait(browser, 120)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#image input[type=file]"))).send_keys(
            str(image)
        )
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#image img")))
        browser.find_element(By.CSS_SELECTOR, "#run").click()
        WebDriverWait(browser, 600).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, "#video video[src]"))
        )
        WebDriverWait(browser, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#scene canvas")))
        browser.execute_script("window.scrollTo(0, 0)")
        time.sleep(4.0)
        save_small(browser, out, colors=160, scale=0.7)
    finally:
        browser.quit()
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "viewer_shot")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to let the viewer draw")
    parser.add_argument("--only", choices=["viewer", "app"], default=None, help="take one screenshot only")
    args = parser.parse_args()
    from wanderview.cli import main as cli

    candidates = [
        base / "shared" / "data" / "images" / "indoor.jpg" for base in (ROOT.parent, ROOT.parent.parent)
    ]
    image = next(p for p in candidates if p.exists())
    if not (args.run / "cameras.json").exists():
        command = ["photo3d", str(image), "--width", "288", "--height", "192", "--frames", "16",
                   "--trajectory", "swing:amplitude=0.3", "-o", str(args.run), "--quiet"]  # fmt: skip
        assert cli(command) == 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only != "app":
        viewer_shot(args.run, args.out / "viewer.png", args.settle)
    if args.only != "viewer":
        app_shot(image, args.out / "app.png", args.run.parent / "app_runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
