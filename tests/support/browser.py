"""Debian's Chromium, driven by Playwright, for the browser tests of the admin console.

Playwright's own browser builds cannot be downloaded here (``playwright install`` is
never needed): ``./face-api test`` installs Debian's ``chromium`` package and this module
launches ``/usr/bin/chromium`` through ``executable_path``, headless, with the flags
that keep it quiet on a machine with no network but the loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path(os.environ.get("FACE_API_TEST_CHROMIUM", "/usr/bin/chromium"))

CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No calls home: with no network but the loopback they are refused, many at a time.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Chromium keeps its shared memory in /dev/shm; where that is small (containers often
# give it 64 MiB) renderers crash, so it is told to use the temporary folder instead.
# (Debian's /usr/bin/chromium means to do the same, but its check breaks where
# /dev/shm is mounted twice.)
SMALL_DEV_SHM = 1 << 30


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing; the message says how to install it."""


def chromium_args() -> list[str]:
    args = list(CHROMIUM_ARGS)
    try:
        small = shutil.disk_usage("/dev/shm").free < SMALL_DEV_SHM
    except OSError:
        small = True
    if small:
        args.append("--disable-dev-shm-usage")
    return args


def check_chromium() -> Path:
    """The Chromium executable, or BrowserUnavailable naming the fix."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        raise BrowserUnavailable(
            f"Debian's Chromium is not installed ({CHROMIUM} is missing): run ./face-api bootstrap "
            "(or apt-get install chromium). Playwright cannot download a browser of its own here, "
            "so `playwright install` is no fix.")
    return CHROMIUM


@contextlib.contextmanager
def launch_chromium(headless: bool = True, **options) -> Iterator[Browser]:
    """Start Playwright and Debian's Chromium; both are stopped on leaving the block.

    ``options`` go to ``BrowserType.launch`` (e.g. ``slow_mo=250``); ``args`` there
    are added to ours.
    """
    executable = check_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise BrowserUnavailable(
            "the Python package playwright is not installed: run ./face-api bootstrap "
            "(it installs requirements-dev.txt into .venv)") from error
    args = chromium_args() + list(options.pop("args", []))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=headless,
                                             args=args, **options)
        try:
            yield browser
        finally:
            browser.close()
