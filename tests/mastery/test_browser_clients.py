"""Real xAPI clients in Debian's Chromium (Playwright), lessons served from another origin on loopback, the
LRS and the student page as on a unit: TinCanJS (statements, state saved and resumed across a reload) and a
cmi5 AU with @xapi/cmi5 (initialize, answered, passed, terminated), both launched from the student page;
@xapi/xapi with a launch link. Each checks what is stored and that the student's mastery moved.

The npm packages come from the registry: `make xapi-clients` installs them in .xapi-clients/ (make test
does). Without them or /usr/bin/chromium these tests FAIL, on purpose: CI installs both.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

from edge import launch
from edge.clock import FakeClock
from edge.config import EdgeConfig, parse_config
from edge.mastery.app import make_app
from edge.rotation.plan import Group, Plan, Station
from edge.rotation.service import RotationService
from edge.rotation.web import create_app
from edge.rotation.web.server import WebServer
from tests.mastery.served import Served
from tests.net import free_port

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / ".xapi-clients" / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
KEY = "browser-class-key"
HOME = "https://sis.example.org/students"
SKILL = "fractions"
AU = "https://lessons.example/fractions/au"
TINCAN = "https://lessons.example/fractions/tincan"
WAIT_MS = 15_000

TINCAN_PAGE = """<!doctype html><title>tincan lesson</title>
<script src="/clients/tincanjs/build/tincan.js"></script>
<script>
var lesson = new TinCan({url: window.location.href});  // endpoint, auth, actor, registration, activity_id
function answer(correct) {
  return new Promise(function (done) {
    lesson.sendStatement({verb: {id: "http://adlnet.gov/expapi/verbs/answered", display: {"en-US": "answered"}},
                          result: {success: correct}},
                         function (results) { done(results[0].err === null ? "ok" : "error " + results[0].err); });
  });
}
function save(page) {
  return new Promise(function (done) {
    lesson.setState("resume", {page: page}, {contentType: "application/json",
                    callback: function (err) { done(err === null ? "ok" : "error " + err); }});
  });
}
function resume() {
  return new Promise(function (done) {
    lesson.getState("resume", {callback: function (err, state) {
      done(err !== null ? "error " + err : state === null ? "no saved state" : JSON.stringify(state.contents));
    }});
  });
}
</script>"""

CMI5_PAGE = """<!doctype html><title>assignable unit</title>
<script src="/clients/@xapi/cmi5/dist/Cmi5.umd.js"></script>
<script>
(async function () {
  try {
    var au = new Cmi5();
    await au.initialize();  // fetch URL -> credential, LMS.LaunchData, learner preferences, "initialized"
    await au.interactionTrueFalse("quiz", "q1", true, true, undefined, undefined, true);  // "answered", right
    await au.pass(1);
    await au.terminate();
    document.title = "cmi5 done";
  } catch (e) { document.title = "cmi5 error: " + e; }
})();
</script>"""

XAPI_PAGE = """<!doctype html><title>xapi lesson</title>
<script src="/clients/@xapi/xapi/dist/XAPI.umd.js"></script>
<script>
var p = XAPI.getSearchQueryParamsAsObject(window.location.search);
var actor = typeof p.actor === "string" ? JSON.parse(p.actor) : p.actor;
var lrs = new XAPI({endpoint: p.endpoint, auth: p.auth});
async function run() {
  await lrs.sendStatement({statement: {actor: actor, verb: XAPI.Verbs.ANSWERED,
    object: {objectType: "Activity", id: p.activity_id}, result: {success: true},
    context: {registration: p.registration}}});
  await lrs.setState({agent: actor, activityId: p.activity_id, stateId: "resume", registration: p.registration,
                      state: {page: 7}});
  var got = await lrs.getState({agent: actor, activityId: p.activity_id, stateId: "resume",
                                registration: p.registration});
  return JSON.stringify(got.data);
}
</script>"""


@pytest.fixture
def unit(tmp_path: Path, mock_factory: Any) -> Iterator[dict[str, Any]]:
    """A lesson site (the 'cache', another origin), the mastery LRS, and the student page, on loopback."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps`")
    if not (CLIENTS / "tincanjs").exists():
        pytest.fail(f"{CLIENTS} is missing: run `make xapi-clients` (npm packages from the registry)")
    lessons = tmp_path / "district"
    lessons.mkdir()
    for name, page in (("tincan.html", TINCAN_PAGE), ("au.html", CMI5_PAGE), ("xapi.html", XAPI_PAGE)):
        (lessons / name).write_text(page)
    site = web.Application()
    site.router.add_static("/clients/", CLIENTS)
    site.router.add_static("/district/", lessons)
    cache = Served(site).start()
    manifest = tmp_path / "lessons.json"
    manifest.write_text(json.dumps({"origin": "district", "paths": [
        {"path": "tincan.html", "activity": TINCAN, "skill": SKILL},
        {"path": "au.html", "activity": AU, "skill": SKILL, "launch": "cmi5"}]}))
    config: EdgeConfig = parse_config({
        "unit": {"state_dir": str(tmp_path / "state")},
        "cache": {"port": cache.port, "origins": {"district": "https://lessons.example"}},
        "mastery": {"host": "127.0.0.1", "port": free_port(), "class_key": KEY, "manifests": [str(manifest)],
                    "account_home_page": HOME},
    }, str(tmp_path / "edge.toml"))
    mastery = Served(make_app(config), config.mastery.port).start()
    rotation = RotationService(config, FakeClock())
    rotation.engine.start(Plan("Math", 15, (Station("Online", "online", ("district/tincan.html", "district/au.html")),),
                               (Group("A", ("s-101", "s-102")),)))
    pages = WebServer(create_app(config, rotation), "127.0.0.1", 0).start()
    try:
        yield {"config": config, "lessons": f"http://127.0.0.1:{cache.port}", "student_page": pages.url,
               "lrs": f"http://127.0.0.1:{config.mastery.port}"}
    finally:
        pages.close()
        rotation.devices.close()
        mastery.stop()
        cache.stop()


@pytest.fixture
def page(unit: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        yield context.new_page()
        browser.close()


def lrs_get(unit: dict[str, Any], path: str) -> Any:
    """A read with the class key (urllib: Playwright's sync API holds this thread's event loop)."""
    auth = base64.b64encode(f"class:{KEY}".encode()).decode()
    req = urllib.request.Request(unit["lrs"] + path, headers={"Authorization": f"Basic {auth}",
                                                               "X-Experience-API-Version": "1.0.3"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def statements_of(unit: dict[str, Any], student: str) -> list[dict[str, Any]]:
    agent = json.dumps({"account": {"homePage": HOME, "name": student}})
    return list(lrs_get(unit, "/xapi/statements?" + urlencode({"agent": agent, "ascending": "true"}))["statements"])


def responses(unit: dict[str, Any], student: str) -> int:
    skills = lrs_get(unit, f"/api/v1/mastery/students/{student}")["skills"]
    return sum(s["responses"] for s in skills if s["skill"] == SKILL)


def open_lesson_from_student_page(page: Any, unit: dict[str, Any], student: str, lesson: str) -> None:
    page.goto(unit["student_page"] + "/?group=A")
    page.get_by_role("link", name=student).click()
    page.get_by_role("link", name=lesson).click()
    page.wait_for_url(unit["lessons"] + f"/district/{lesson}?*")


def test_tincanjs_records_and_resumes_across_a_reload(page: Any, unit: dict[str, Any]) -> None:
    open_lesson_from_student_page(page, unit, "s-101", "tincan.html")
    assert page.evaluate("resume()") == "no saved state"
    assert page.evaluate("answer(true)") == "ok"
    assert page.evaluate("save(3)") == "ok"
    page.reload()
    assert page.evaluate("resume()") == '{"page":3}'  # the learner picks up where they left
    sts = statements_of(unit, "s-101")
    assert [(s["verb"]["id"].rsplit("/", 1)[1], s["object"]["id"]) for s in sts] == [("answered", TINCAN)]
    assert sts[0]["context"]["registration"] == launch.registration_for(HOME, "s-101", TINCAN)
    assert responses(unit, "s-101") == 1
    # another student's page cannot write as s-101: its credential is scoped to s-102
    open_lesson_from_student_page(page, unit, "s-102", "tincan.html")
    assert page.evaluate("lesson.actor = new TinCan.Agent({account: {homePage: '" + HOME + "', name: 's-101'}}); "
                         "answer(true)").startswith("error")
    assert responses(unit, "s-101") == 1


def test_a_cmi5_au_launched_from_the_student_page(page: Any, unit: dict[str, Any]) -> None:
    open_lesson_from_student_page(page, unit, "s-102", "au.html")
    page.wait_for_function("document.title.startsWith('cmi5 ')")
    assert page.title() == "cmi5 done"
    verbs = [s["verb"]["id"].rsplit("/", 1)[1] for s in statements_of(unit, "s-102")]
    assert verbs == ["launched", "initialized", "answered", "passed", "terminated"]
    assert responses(unit, "s-102") == 2  # the answer (skill from LaunchData's context) and the pass
    page.reload()  # a second launch from the same link: the fetch URL works once
    page.wait_for_function("document.title.startsWith('cmi5 ')")
    assert page.title().startswith("cmi5 error")


def test_xapi_js_with_a_launch_link(page: Any, unit: dict[str, Any]) -> None:
    config = unit["config"]
    claims = launch.new_claims("s-101", HOME, TINCAN, time.time(), 600, "auth")
    page.goto(launch.tincan_link(unit["lessons"] + "/district/xapi.html", unit["lrs"] + "/xapi/", KEY, claims))
    assert config.mastery.class_key == KEY
    assert page.evaluate("run()") == '{"page":7}'
    assert [s["verb"]["id"] for s in statements_of(unit, "s-101")] == ["http://adlnet.gov/expapi/verbs/answered"]
    assert responses(unit, "s-101") == 1
