"""Clients outside a browser, with a launch credential: Python `tincan` (Rustici's TinCanPython, from PyPI)
and ADL's xAPIWrapper for Node (npm): statements, state saved and resumed, a query with `more`."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tincan import Activity, Agent, AgentAccount, RemoteLRS, Result, StateDocument, Statement, Verb

from edge import launch
from edge.config import parse_config
from edge.mastery.app import make_app
from tests.mastery.served import Served

KEY = "python-client-key"
HOME = "https://sis.example.org/students"
ACTIVITY = "https://lessons.example/fractions/q1"


@pytest.fixture
def lrs(tmp_path: Path) -> Iterator[Served]:
    config = parse_config({"unit": {"state_dir": str(tmp_path)},
                           "mastery": {"class_key": KEY, "account_home_page": HOME}})
    served = Served(make_app(config, {ACTIVITY: "fractions"})).start()
    yield served
    served.stop()


def test_tincanpython_records_resumes_and_pages(lrs: Served) -> None:
    claims = launch.new_claims("s-7", HOME, ACTIVITY, time.time(), 600, "auth")
    remote = RemoteLRS(endpoint=f"http://127.0.0.1:{lrs.port}/xapi/", version="1.0.1",
                       auth="Basic " + launch.basic_credential(launch.issue(KEY, claims)))
    actor = Agent(account=AgentAccount(home_page=HOME, name="s-7"))
    for correct in (True, False, True):
        st = Statement(actor=actor, verb=Verb(id="http://adlnet.gov/expapi/verbs/answered"),
                       object=Activity(id=ACTIVITY), result=Result(success=correct))
        resp = remote.save_statement(st)
        assert resp.success, resp.data
    saved = remote.save_state(_state(actor, '{"page": 2}'))
    assert saved.success, saved.data
    # (TinCanPython 1.0's save_state leaves the registration out, and PUTs twice: read it back the same way)
    got = remote.retrieve_state(activity=Activity(id=ACTIVITY), agent=actor, state_id="resume")
    assert got.success and bytes(got.content.content) == b'{"page": 2}'
    page = remote.query_statements({"agent": actor, "limit": 2})
    assert page.success and len(page.content.statements) == 2 and page.content.more
    rest = remote.more_statements(page.content)
    assert rest.success and len(rest.content.statements) == 1
    other = Agent(account=AgentAccount(home_page=HOME, name="s-8"))
    refused = remote.save_statement(Statement(actor=other, verb=Verb(id="http://adlnet.gov/expapi/verbs/answered"),
                                              object=Activity(id=ACTIVITY), result=Result(success=True)))
    assert not refused.success and refused.response.status == 403


def _state(actor: Agent, value: str) -> StateDocument:
    return StateDocument(id="resume", activity=Activity(id=ACTIVITY), agent=actor, content_type="application/json",
                         registration=launch.registration_for(HOME, "s-7", ACTIVITY), content=value)


ADL_SCRIPT = """
const adl = require("adl-xapiwrapper");
const [url, token, actorJson, activity, registration] = process.argv.slice(2);
const lrs = new adl.XAPIWrapper({url: url, auth: {user: "launch", pass: token}});
const actor = JSON.parse(actorJson);
const statement = {actor: actor, verb: {id: "http://adlnet.gov/expapi/verbs/answered"},
                   object: {id: activity}, result: {success: true}, context: {registration: registration}};
lrs.sendStatements([statement], (err, resp) => {
  console.log("statements " + resp.statusCode);
  lrs.sendState(activity, actor, "resume", registration, {page: 4}, null, null, (err, resp) => {
    console.log("state " + resp.statusCode);
    lrs.getState(activity, actor, "resume", registration, null, (err, resp, body) => {
      console.log("resume " + resp.statusCode + " " + body);
    });
  });
});
"""


def test_adl_xapiwrapper_for_node_records_and_resumes(lrs: Served, tmp_path: Path) -> None:
    """ADL's xAPIWrapper from the npm registry (its Node build: the browser build is not published there)."""
    clients = Path(__file__).resolve().parents[2] / ".xapi-clients"
    if not (clients / "node_modules" / "adl-xapiwrapper").exists() or shutil.which("node") is None:
        pytest.fail("node and .xapi-clients are needed: run `make xapi-clients`")
    claims = launch.new_claims("s-9", HOME, ACTIVITY, time.time(), 600, "auth")
    script = clients / "adl_client.js"
    script.write_text(ADL_SCRIPT)
    out = subprocess.run(["node", str(script), f"http://127.0.0.1:{lrs.port}/xapi/", launch.issue(KEY, claims),
                          json.dumps(claims.actor()), ACTIVITY, claims.registration],
                         capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert out == ["statements 200", "state 204", 'resume 200 {"page":4}']
