"""Debian's Chromium driven by Playwright for the page tests (Playwright's own browser download does not work
here), and a flask app served by waitress on a loopback port. Screenshots go to test-artifacts/."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium; FAILS (not skips) without /usr/bin/chromium: CI installs it (make browser-deps)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium (make browser-deps)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def serve_app(app: Flask) -> Iterator[str]:
    """`app` on a loopback port (waitress threads); yields its base URL."""
    from edge.rotation.web.server import WebServer

    with WebServer(app, "127.0.0.1", 0).start() as server:
        yield server.url
