"""Headless Chromium for the browser tests (Debian's ``chromium`` + ``chromium-driver``, via selenium).

``chromium_or_skip()`` skips with a message that says plainly the browser test did not run; `.ci/run`
installs both packages, so in CI the tests run. Every page the tests open is on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import warnings

import pytest

NOT_RUN = ("BROWSER TEST NOT RUN: {what} is not installed "
           "(apt-get install chromium chromium-driver; pip install selenium)")


def _not_run(what: str) -> None:
    # pytest -q hides skip reasons; a warning is listed in every run's summary, so nobody misses it
    message = NOT_RUN.format(what=what)
    warnings.warn(message, UserWarning, stacklevel=3)
    pytest.skip(message)


def chromium_or_skip() -> tuple[str, str]:
    """(chromium binary, chromedriver) paths, or skip the test saying (also as a warning) it did not run."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        _not_run("selenium")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        _not_run("chromium" if binary is None else "chromedriver")
    return binary, driver


def make_driver(width: int = 1280, height: int = 900):
    """A headless Chromium driven by selenium; WebGL through SwiftShader (no GPU needed)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    args = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}",
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-extensions",
            "--no-first-run",
            "--disable-background-networking", "--disable-sync"]  # fmt: skip
    for arg in args:
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(60)
    browser.set_script_timeout(60)
    return browser
