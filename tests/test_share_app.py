"""`wanderview app`: the Gradio app on 127.0.0.1, through gradio_client's API and in headless Chromium.

The browser test uploads a picture the test renders itself, runs photo3d with the CPU defaults at the
app's small default size, waits for the video element and saves a screenshot (set
WANDERVIEW_SCREENSHOT_DIR to keep it). Without Chromium it is skipped with a message saying it did not run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile

import pytest
import torch
import trimesh

from loopback import assert_loopback_only, free_port
from wanderview.data.synthetic import default_camera, make_scene, render_view
from wanderview.io.images import write_image
from wanderview.share.app import build_argv, image_size

gradio = pytest.importorskip("gradio", reason="the [app] extra (gradio) is not installed")


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A 120x80 view of the procedural room (a real-looking input, made here: no download)."""
    path = tmp_path_factory.mktemp("app_input") / "room.png"
    write_image(path, render_view(make_scene("room"), default_camera("room", 120, 80)).rgb)
    return path


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from wanderview.share.app_ui import launch

    app, url = launch(tmp_path_factory.mktemp("app_runs"), host="127.0.0.1", port=free_port(), block=False)
    assert url.startswith("http://127.0.0.1:")
    yield url
    app.close()


def test_build_argv_is_the_command_a_user_types(picture, tmp_path):
    argv = build_argv("photo3d", tmp_path / "out", image=str(picture), frames=5, max_side=64,
                      backends={"depth": "heuristic", "inpaint": "patchmatch", "image": "none"})  # fmt: skip
    assert argv[:2] == ["photo3d", str(picture)]
    assert argv[argv.index("--inpainter") + 1] == "patchmatch" and "--generator" not in argv
    assert argv[argv.index("--width") + 1 :][:3] == ["64", "--height", "40"]  # 120x80 -> 64x40 (x8)
    assert image_size(None, 100) == (96, 96)
    scenescape = build_argv("scenescape", tmp_path / "o", prompt="a cave", backends={"image": "hf:x"})
    assert scenescape[:3] == ["scenescape", "--prompt", "a cave"] and "--generator" in scenescape
    with pytest.raises(Exception, match="needs an image"):
        build_argv("photo3d", tmp_path / "o2", prompt="no image")


def test_api_runs_photo3d_and_returns_video_scene_and_zip(app_url, picture):
    from gradio_client import Client, handle_file

    assert_loopback_only(int(app_url.rstrip("/").rsplit(":", 1)[1]))
    client = Client(app_url, verbose=False)
    plot = client.predict("photo3d", "swing", 8, 64, None, api_name="/plot")
    assert os.path.getsize(plot) > 1000
    video, scene, archive = client.predict(
        "photo3d", handle_file(str(picture)), "", "circle", 4, 64, 0, "heuristic", "telea", "none",
        api_name="/run",
    )  # fmt: skip
    video_path = video["video"] if isinstance(video, dict) else video
    assert os.path.getsize(video_path) > 1000
    mesh = trimesh.load(scene, force="mesh")
    assert len(mesh.faces) > 100
    names = zipfile.ZipFile(archive).namelist()
    assert {"cameras.json", "manifest.json", "mesh.ply", "frames/00003.png"} <= set(names)
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="needs an image or a prompt"):
        client.predict("scenescape", None, "", "", 4, 64, 0, "heuristic", "telea", "none", api_name="/run")


def test_a_long_run_does_not_block_the_page(app_url, picture, monkeypatch):
    """A run that holds the queue's run slot (held here until released) does not stop another event."""
    from gradio_client import Client, handle_file

    from wanderview.share import app as app_module

    release, started = threading.Event(), threading.Event()
    real_run_command = app_module.run_command

    def held_run_command(argv):
        started.set()
        assert release.wait(120)
        real_run_command(argv)

    monkeypatch.setattr(app_module, "run_command", held_run_command)
    client = Client(app_url, verbose=False)
    job = client.submit("photo3d", handle_file(str(picture)), "", "swing", 3, 64, 0, "heuristic", "telea",
                        "none", api_name="/run")  # fmt: skip
    try:
        assert started.wait(60), "the run never started"
        plot = client.predict("photo3d", "orbit", 30, 96, None, api_name="/plot")
        assert os.path.getsize(plot) > 1000
        assert not job.done()
    finally:
        release.set()
    video, _, _ = job.result(timeout=300)
    assert os.path.getsize(video["video"] if isinstance(video, dict) else video) > 1000


@pytest.mark.slow
def test_browser_uploads_runs_and_shows_the_video(app_url, picture, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from browser import make_driver

    browser = make_driver(1280, 1000)
    try:
        browser.get(app_url)
        wait = WebDriverWait(browser, 120)
        upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#image input[type=file]")))
        upload.send_keys(str(picture))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#image img")))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#path-plot img")))
        browser.find_element(By.CSS_SELECTOR, "#run").click()
        start = time.monotonic()
        video = WebDriverWait(browser, 300).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, "#video video[src]"))
        )
        assert video.get_attribute("src").startswith("http://127.0.0.1:")
        WebDriverWait(browser, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#scene canvas")))
        WebDriverWait(browser, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#zip a")))
        print(f"run finished in the browser after {time.monotonic() - start:.1f} s")
        time.sleep(2.0)  # let the 3D view draw its first frames
        shot = tmp_path / "app.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
        keep = os.environ.get("WANDERVIEW_SCREENSHOT_DIR")
        if keep:
            shutil.copy(shot, os.path.join(keep, "app.png"))
    finally:
        browser.quit()


def test_the_uploaded_picture_is_a_real_render(picture):
    # the picture the tests upload is a proper 8-bit RGB render of the room (not an empty frame)
    from wanderview.io.images import read_image

    rgb = read_image(picture)
    assert rgb.shape == (3, 80, 120) and float(rgb.std()) > 0.05 and torch.isfinite(rgb).all()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from wanderview.cli import main; sys.exit(main())", *args]


@pytest.mark.slow
def test_cli_serves_until_ctrl_c(tmp_path):
    port = free_port()
    proc = subprocess.Popen(_cli("app", "--port", str(port), "--runs-dir", str(tmp_path / "runs")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "wanderview app: http://" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, "the app did not start"
            line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped" in rest and "Traceback" not in rest


def test_a_failed_run_leaves_nothing_behind(tmp_path):
    from wanderview.errors import WanderviewError
    from wanderview.share.app import run_and_package

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(WanderviewError):
        run_and_package("photo3d", runs, image=str(broken), frames=2, max_side=64)
    assert list(runs.iterdir()) == []


def test_a_taken_port_is_one_sentence(app_url, tmp_path, capsys):
    from wanderview.cli import main

    port = app_url.rstrip("/").rsplit(":", 1)[1]
    assert main(["app", "--port", port, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "in use" in err and err.count("\n") == 1
