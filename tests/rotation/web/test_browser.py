"""The pages in a real browser: Debian's chromium driven by Playwright, the app served by waitress.

Needs /usr/bin/chromium (`apt-get install -y chromium`; Playwright's own browser download does not work here).
Without it these tests FAIL, on purpose: CI installs it. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from edge.clock import FakeClock
from edge.config import EdgeConfig
from edge.rotation.plan import Group, Plan, Station
from edge.rotation.service import RotationService
from edge.rotation.web import create_app
from edge.rotation.web.server import WebServer
from tests.rotation.web.helpers import PIN

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SIZES = [(1366, 768), (1920, 1080)]
WAIT_MS = 5000


@pytest.fixture(scope="module")  # not session: Playwright's sync API holds the thread's event loop while it
def browser() -> Iterator[Any]:  # lives, and every later test that runs asyncio.run would fail
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(run `make browser-deps`, i.e. `apt-get update && apt-get install -y chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def server(app: Flask) -> Iterator[WebServer]:
    srv = WebServer(app, "127.0.0.1", 0).start()
    yield srv
    srv.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    ctx.set_default_timeout(WAIT_MS)
    yield ctx
    ctx.close()


def wait_live(page: Any) -> None:
    """Until live.js has drawn the page from the API at least once."""
    expect(page.locator("body")).to_have_attribute("data-live", re.compile(r"\d+"))


def text_of(page: Any, selector: str) -> str:
    return str(page.locator(selector).inner_text()).strip()


def wait_text(page: Any, selector: str, expected: str, timeout_ms: int = WAIT_MS) -> None:
    # expect() polls from Playwright's own script world: the pages' CSP (no eval) stays on in these tests
    expect(page.locator(selector)).to_have_text(expected, timeout=timeout_ms)


def log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/teacher")
    assert "/teacher/login" in page.url
    page.locator("#pin").press_sequentially(PIN)  # typed, then Enter, as a teacher would
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/teacher")


def table(page: Any) -> list[list[str]]:
    rows = page.locator("#groups-rows tr")
    return [[c.strip() for c in rows.nth(i).locator("th, td").all_inner_texts()] for i in range(rows.count())]


def test_teacher_starts_board_shows_work_and_table_pause_within_1s(context: Any, server: WebServer,
                                                                    rotation: RotationService) -> None:
    board = context.new_page()
    board.goto(f"{server.url}/board")
    wait_live(board)
    assert text_of(board, "#phase-word") == "IDLE"
    teacher = context.new_page()
    log_in(teacher, server.url)
    teacher.select_option("#start-plan", "Math block")
    with teacher.expect_navigation():
        teacher.click("#btn-start")
    assert "Started Math block." in text_of(teacher, ".flash-ok")

    wait_text(board, "#phase-word", "WORK")
    assert board.locator("#banner").get_attribute("data-phase") == "work"
    assert table(board) == [["A", "Online", "Teacher"], ["B", "Teacher", "Practice"], ["C", "Practice", "Games"]]
    assert re.fullmatch(r"1[45]:[0-5]\d", text_of(board, "#countdown"))
    assert text_of(board, "#round") == "Round 1 of 4 · Math block"

    # When the board drew PAUSED, timed in the page (wall clock, same machine) so that the check does not
    # depend on how often Playwright polls.
    board.evaluate("""() => {
        const el = document.getElementById('phase-word');
        window.pausedAt = null;
        new MutationObserver(() => {
            if (el.textContent === 'PAUSED' && window.pausedAt === null) { window.pausedAt = Date.now(); }
        }).observe(el, {childList: true, characterData: true, subtree: true});
    }""")
    changed: list[float] = []
    rotation.subscribe(lambda snap: changed.append(time.time()) if snap.status == "paused" else None)
    teacher.click("#btn-pause")
    wait_text(board, "#phase-word", "PAUSED", timeout_ms=3000)
    assert changed, "the engine never paused"
    delay = board.evaluate("window.pausedAt") / 1000 - changed[0]
    assert delay <= 1.0, f"the board showed PAUSED {delay:.2f} s after the pause"
    assert board.locator("#banner").get_attribute("data-phase") == "paused"

    # a change from elsewhere (the API, the button) reaches the teacher page without a reload
    expect(teacher.locator("#btn-resume")).to_be_enabled()
    rotation.engine.act("resume")
    wait_text(teacher, "#phase-word", "WORK")
    expect(teacher.locator("#btn-resume")).to_be_disabled()
    expect(teacher.locator("#btn-pause")).to_be_enabled()


def test_student_page_shows_the_groups_lesson_links_and_follows_the_rotation(
        context: Any, server: WebServer, rotation: RotationService, math_plan: Plan) -> None:
    rotation.engine.start(math_plan)
    page = context.new_page()
    page.goto(f"{server.url}/?group=A")
    wait_live(page)
    assert text_of(page, "#my-station") == "Online"
    links = page.locator("#lessons a")
    assert links.count() == 1
    assert links.first.get_attribute("href") == "http://127.0.0.1:8080/district/fractions/intro.html"
    assert links.first.inner_text() == "intro.html"
    assert text_of(page, "#my-next") == "Next: Teacher"

    page.get_by_role("link", name="B", exact=True).click()  # pick another group
    page.wait_for_url(re.compile(r".*\?group=B$"))
    wait_live(page)
    assert text_of(page, "#my-station") == "Teacher"
    assert text_of(page, "#lessons") == "No lesson links at this station."

    rotation.engine.act("skip")
    rotation.engine.act("skip")  # -> round 2: B moves to Practice, live, without a reload
    wait_text(page, "#my-station", "Practice")
    wait_text(page, "#phase-word", "MOVE")


def test_board_recovers_by_itself_after_the_unit_restarts(
        context: Any, server: WebServer, rotation: RotationService, web_config: EdgeConfig, clock: FakeClock,
        math_plan: Plan) -> None:
    rotation.engine.start(math_plan)
    board = context.new_page()
    board.goto(f"{server.url}/board")
    wait_text(board, "#phase-word", "WORK")
    rotation.engine.pause()
    wait_text(board, "#phase-word", "PAUSED")
    port = server.port
    server.close()  # the Pi goes down ...
    rotation.devices.close()
    board.wait_for_selector("#conn", state="visible")
    assert text_of(board, "#phase-word") == "PAUSED"  # the last known state stays up

    again = RotationService(web_config, clock)  # ... and comes back: state restored from disk
    restarted = WebServer(create_app(web_config, again), "127.0.0.1", port).start()
    try:
        board.wait_for_selector("#conn", state="hidden")
        assert text_of(board, "#phase-word") == "PAUSED"
        again.engine.resume()
        wait_text(board, "#phase-word", "WORK")
    finally:
        restarted.close()
        again.devices.close()


def test_keyboard_only_teacher(context: Any, server: WebServer, rotation: RotationService) -> None:
    page = context.new_page()
    log_in(page, server.url)

    def tab_to(element_id: str) -> None:
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == element_id:
                return
        raise AssertionError(f"Tab never reached #{element_id}")

    tab_to("btn-start")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert rotation.engine.snapshot().status == "running"
    tab_to("btn-pause")
    with page.expect_navigation():
        page.keyboard.press("Space")
    assert rotation.engine.snapshot().status == "paused"
    outline = page.evaluate("(() => { document.getElementById('btn-resume').focus();"
                            " return getComputedStyle(document.activeElement).outlineStyle; })()")
    assert outline == "solid"  # a visible focus ring


def test_plan_editor_inline_validation_and_add_row(context: Any, server: WebServer,
                                                   rotation: RotationService) -> None:
    page = context.new_page()
    log_in(page, server.url)
    page.get_by_role("link", name="New plan").click()
    page.fill("#name", "Art")
    page.fill("#work_minutes", "5")
    page.fill("#stations-0-name", "Paint")
    page.fill("#stations-1-name", "Clay")
    page.get_by_role("button", name="Add a station").click()
    assert page.evaluate("document.activeElement.id") == "stations-2-name"
    page.fill("#stations-2-name", "Paint")  # a duplicate
    page.fill("#groups-0-name", "Reds")
    with page.expect_navigation():
        page.click("#save-plan")
    assert page.evaluate("document.activeElement.id") == "error-summary", text_of(page, "body")
    assert "duplicate name 'Paint'" in text_of(page, "#err-stations-2-name")
    assert page.locator("#stations-2-name").get_attribute("aria-invalid") == "true"
    page.click("#error-summary a")
    page.fill("#stations-2-name", "Print")
    with page.expect_navigation():
        page.click("#save-plan")
    assert page.url == f"{server.url}/teacher"
    assert [s.name for s in rotation.plans.get("Art").stations] == ["Paint", "Clay", "Print"]


BIG_PLAN = Plan(
    name="Science carousel with a long name", work_minutes=20, warning_seconds=60, transition_seconds=60,
    stations=tuple(Station(n, k, ("district/science/cells-and-organisms-introduction.html",) if k == "online" else ())
                   for n, k in [("Online microscope lab", "online"), ("Teacher table", "teacher"),
                                ("Independent reading corner", "offline"), ("Build a model cell", "offline"),
                                ("Vocabulary cards", "offline"), ("Science journal writing", "offline")]),
    groups=tuple(Group(n) for n in ("Owls", "Foxes", "Hedgehogs", "Otters", "Badgers", "Kingfishers")),
)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_screenshots_fit_without_overflow(browser: Any, server: WebServer, rotation: RotationService,
                                          width: int, height: int) -> None:
    rotation.plans.save(BIG_PLAN)
    rotation.engine.start(BIG_PLAN)
    ARTIFACTS.mkdir(exist_ok=True)
    ctx = browser.new_context(viewport={"width": width, "height": height})
    ctx.set_default_timeout(WAIT_MS)
    try:
        page = ctx.new_page()
        log_in(page, server.url)
        for name, path in (("board", "/board"), ("student", "/?group=Hedgehogs"), ("teacher", "/teacher")):
            page.goto(f"{server.url}{path}")
            wait_live(page)
            page.screenshot(path=str(ARTIFACTS / f"{name}-{width}x{height}.png"))
            m = page.evaluate("""(() => {
                const doc = document.documentElement, c = document.getElementById('countdown');
                const r = c.getBoundingClientRect();
                return {scrollW: doc.scrollWidth, clientW: doc.clientWidth, left: r.left, right: r.right,
                        top: r.top, bottom: r.bottom, cScrollW: c.scrollWidth, cClientW: c.clientWidth,
                        vw: window.innerWidth, vh: window.innerHeight, text: c.textContent};
            })()""")
            where = f"{name} at {width}x{height}"
            assert m["scrollW"] <= m["clientW"], f"{where}: horizontal scroll ({m['scrollW']} > {m['clientW']})"
            assert re.fullmatch(r"\d+:[0-5]\d", m["text"]), where
            assert m["left"] >= 0 and m["right"] <= m["vw"] and m["top"] >= 0 and m["bottom"] <= m["vh"], \
                f"{where}: countdown not fully visible: {m}"
            assert m["cScrollW"] <= m["cClientW"], f"{where}: countdown text clipped"
        page.goto(f"{server.url}/board")
        wait_live(page)
        height_px = page.evaluate("document.getElementById('countdown').getBoundingClientRect().height")
        assert height_px >= 0.2 * height, "the board's countdown must be big enough to read from the back"
    finally:
        ctx.close()
