"""A real browser on the studio: start ``harmonixr serve`` in a child process and drive Debian's
headless Chromium with Playwright (the end-to-end tests and the screenshots in ``docs/`` use this).

Chromium is the system's (``/usr/bin/chromium``, Debian's ``chromium`` package): nothing is
downloaded. It runs with background networking off, since the machine may have no internet.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                  "--mute-audio"]
WAIT_MS = 120_000  # for one generation on a busy 2-core machine
START_TIMEOUT_S = 180.0  # the server loads the model and compiles the decoder before it answers


def chromium_path() -> str | None:
    """The system Chromium, or None when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def studio_server(workdir: Path, prefs: Path, config: Path | None = None, model: str | None = None) -> Iterator[str]:
    """``harmonixr serve`` on a free local port; yields its URL, stops it on exit. Its output goes
    to ``workdir/server.log`` (shown in the error if it does not come up)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "harmonixr", "serve", "--port", str(port), "--prefs", str(prefs),
               "--workdir", str(workdir / "files")]
    command += ["--config", str(config)] if config else []
    command += ["--model", model] if model else []
    log = (workdir / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, server, workdir / "server.log")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_for(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the studio server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the studio server did not answer at {url} in {START_TIMEOUT_S:g} s:\n{log.read_text()[-3000:]}")


@contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Playwright page in headless system Chromium (downloads accepted)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium chromium-driver)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
            yield context.new_page()
        finally:
            browser.close()


def wait_text(page: Any, selector: str, text: str, timeout_ms: int = WAIT_MS) -> None:
    """Wait until the element at ``selector`` shows ``text`` (Playwright ``page``)."""
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)",
                           arg=[selector, text], timeout=timeout_ms)
