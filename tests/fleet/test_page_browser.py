"""The fleet page in a real browser (Debian's chromium via Playwright), served by the real collector on 127.0.0.1.

Without /usr/bin/chromium these tests FAIL on purpose (`make browser-deps` installs it). Screenshots go to
test-artifacts/."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import expect

from edge.config import EdgeConfig
from edge.fleet.collector import start_collector
from tests.fleet.conftest import TOKENS, FakeTime, heartbeat

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Running:
    """The collector on its own loop in a thread (the test drives the browser synchronously)."""

    def __init__(self, config: EdgeConfig, clock: FakeTime) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner: web.AppRunner = asyncio.run_coroutine_threadsafe(
            start_collector(config, now=clock), self.loop).result(30)
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def beat(self, doc: dict[str, Any]) -> int:
        token = TOKENS[doc["unit"]["school"]]
        req = urllib.request.Request(f"{self.url}/api/v1/heartbeat", data=json.dumps(doc).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def fleet(fleet_config: EdgeConfig) -> Iterator[Running]:
    clock = FakeTime()
    running = Running(fleet_config, clock)
    try:
        # six units in two schools; Room 3 goes silent for 20 minutes, Room 2 reports a fault
        for i in (1, 2, 3, 4):
            assert running.beat(heartbeat(i, disk_free_bytes=i * 10**9)) == 204
        assert running.beat(heartbeat(5, "Adams Middle", version="0.2.0")) == 204
        assert running.beat(heartbeat(6, "Adams Middle", clock_synced=False)) == 204
        clock.t += 20 * 60
        for i in (1, 2, 4):
            faults = ["sync: HTTP 503 from the LRS"] if i == 2 else []
            assert running.beat(heartbeat(i, disk_free_bytes=i * 10**9, faults=faults)) == 204
        assert running.beat(heartbeat(5, "Adams Middle", version="0.2.0")) == 204
        assert running.beat(heartbeat(6, "Adams Middle", clock_synced=False)) == 204
        yield running
    finally:
        running.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    ctx.set_default_timeout(5000)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    ctx.close()


def rooms(page: Any, school: str) -> list[str]:
    rows = page.locator(f'section[data-school="{school}"] tr.unit:not([hidden]) th.room')
    return [re.sub(r"\s+", " ", t).split(" unit-")[0].strip() for t in rows.all_inner_texts()]


def test_units_by_school_with_the_silent_one_flagged(fleet: Running, page: Any) -> None:
    page.goto(fleet.url + "/")
    expect(page.locator("body")).to_have_attribute("data-applied", re.compile(r"\d+"))
    assert page.locator("section.school h2").all_inner_texts()[0].startswith("Adams Middle")
    assert rooms(page, "Lincoln Elementary") == ["Room 1", "Room 2", "Room 3", "Room 4"]
    silent = page.locator('tr.unit[data-id="unit-00003"]')
    expect(silent).to_have_class(re.compile(r"\boffline\b"))
    expect(silent.locator("td.status")).to_have_text("⚠ OFFLINE")
    expect(silent.locator("td.last-seen")).to_have_text("20 min ago")
    expect(page.locator('tr.unit[data-id="unit-00001"] td.status')).to_have_text("● online")
    expect(page.locator('tr.unit[data-id="unit-00002"] td.faults')).to_have_text("sync: HTTP 503 from the LRS")
    expect(page.locator('tr.unit[data-id="unit-00006"] td.clock')).to_contain_text("✗ NOT synced")
    expect(page.locator('section[data-school="Lincoln Elementary"] h2')).to_contain_text("1 offline")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "fleet-page.png"), full_page=True)
    assert page.errors == []  # no script errors, no CSP violations


def test_filter_as_you_type_and_by_status(fleet: Running, page: Any) -> None:
    page.goto(fleet.url + "/")
    expect(page.locator("#shown")).to_have_text("6 of 6 shown")
    page.locator("#q").fill("room 4")
    expect(page.locator("#shown")).to_have_text("1 of 6 shown")
    assert rooms(page, "Lincoln Elementary") == ["Room 4"]
    expect(page.locator('section[data-school="Adams Middle"]')).to_be_hidden()
    assert "q=room+4" in page.url
    page.locator("#q").fill("")
    page.locator("#status").select_option("offline")
    expect(page.locator("#shown")).to_have_text("1 of 6 shown")
    assert rooms(page, "Lincoln Elementary") == ["Room 3"]
    page.locator("#status").select_option("faulty")
    assert rooms(page, "Lincoln Elementary") == ["Room 2"]
    page.locator("#status").select_option("")
    page.locator("#school").select_option("Adams Middle")
    expect(page.locator("#shown")).to_have_text("2 of 6 shown")
    # the URL carries the filter: a reload (the page reloads itself every minute) shows the same view
    page.reload()
    expect(page.locator("#shown")).to_have_text("2 of 6 shown")
    expect(page.locator("#school")).to_have_value("Adams Middle")
    # widening the filter after a server-filtered load shows the other school's units again
    page.locator("#school").select_option("")
    expect(page.locator("#shown")).to_have_text("6 of 6 shown")
    page.locator("#q").fill("no such room")
    expect(page.locator("#nomatch")).to_be_visible()
    assert page.errors == []


def test_sort_by_clicking_a_column(fleet: Running, page: Any) -> None:
    page.goto(fleet.url + "/")
    header = page.locator('section[data-school="Lincoln Elementary"] th[data-key="disk_free"] a')
    header.click()
    expect(page.locator('section[data-school="Lincoln Elementary"] th[data-key="disk_free"]')).to_have_attribute(
        "aria-sort", "ascending")
    assert rooms(page, "Lincoln Elementary") == ["Room 1", "Room 2", "Room 3", "Room 4"]
    header.click()
    expect(page.locator('section[data-school="Lincoln Elementary"] th[data-key="disk_free"]')).to_have_attribute(
        "aria-sort", "descending")
    assert rooms(page, "Lincoln Elementary") == ["Room 4", "Room 3", "Room 2", "Room 1"]
    page.locator('section[data-school="Lincoln Elementary"] th[data-key="status"] a').click()
    assert rooms(page, "Lincoln Elementary")[0] == "Room 3"  # offline first
    assert "sort=status" in page.url
    assert page.errors == []


def test_without_javascript_the_server_filters_and_sorts(fleet: Running, browser: Any) -> None:
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(fleet.url + "/?status=online&sort=disk_free&order=desc")
        assert rooms(page, "Lincoln Elementary") == ["Room 4", "Room 2", "Room 1"]
        expect(page.locator("#shown")).to_have_text("5 of 6 shown")
    finally:
        ctx.close()
