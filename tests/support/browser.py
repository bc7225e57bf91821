"""Headless Chromium driven by selenium, as the inspector's browser tests and
docs/images/make_screenshots.py start it: Debian's chromium + chromium-driver, no network."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Headless, no sandbox (containers run as root) and nothing that reaches the network."""


def chromium_available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def headless_chromium(profile: Path, width: int, extra_flags: Sequence[str] = ()) -> Any:
    """A selenium Chrome driver on :data:`CHROMIUM` with a ``width`` x 1000 window and its
    profile in ``profile`` (the caller removes it)."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},1000")
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    return webdriver.Chrome(options=options, service=service)
