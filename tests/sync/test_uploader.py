"""The uploader against a real LRS (Ralph): delivery, LRS down and back, re-sends, 409, 4xx and 5xx quarantine."""

from __future__ import annotations

import json

import pytest

from edge.sync.outbox import Outbox
from edge.sync.uploader import SPLIT_AFTER_5XX, Uploader
from tests.sync.faultproxy import FaultProxy
from tests.sync.helpers import assert_lrs_holds_exactly, district, items, statement
from tests.sync.lrs import Ralph

pytestmark = pytest.mark.lrs


async def test_drains_backlog_exactly_once(ralph: Ralph, outbox: Outbox) -> None:
    batch = items(1_234)
    assert outbox.enqueue(batch) == 1_234
    up = Uploader(outbox, district(ralph.base_url))
    try:
        result = await up.run_round()
    finally:
        await up.close()
    assert result.ok and result.sent == 1_234 and result.quarantined == 0
    assert result.requests == 13  # batch_size 100
    st = outbox.status()
    assert st["backlog"] == 0 and st["sent_total"] == 1_234 and st["last_success"] and st["last_error"] is None
    assert_lrs_holds_exactly(ralph, {i for i, _ in batch})


async def test_lrs_down_for_a_long_stretch_then_drains(ralph: Ralph, outbox: Outbox) -> None:
    up = Uploader(outbox, district(ralph.base_url), timeout_s=2)
    accepted: set[str] = set()
    try:
        ralph.stop()
        for wave in range(5):  # five "days" of evidence while the district is unreachable
            batch = items(150, start=wave * 150)
            outbox.enqueue(batch)
            accepted |= {i for i, _ in batch}
            result = await up.run_round()
            assert not result.ok and result.sent == 0
            st = outbox.status()
            assert st["backlog"] == len(accepted)
            assert "cannot reach the LRS" in st["last_error"] and st["oldest_unsent_at"] is not None
        ralph.start()
        result = await up.run_round()
    finally:
        await up.close()
    assert result.ok and result.sent == 750
    assert outbox.status()["backlog"] == 0 and outbox.status()["last_error"] is None
    assert_lrs_holds_exactly(ralph, accepted)


async def test_resent_batch_the_lrs_already_holds_counts_as_delivered(ralph: Ralph, outbox: Outbox) -> None:
    batch = items(120)
    outbox.enqueue(batch)
    # A previous process POSTed the first 100 and died before marking them sent.
    status, _ = ralph.request("/statements", method="POST", body=[json.loads(b) for _, b in batch[:100]])
    assert status == 200
    up = Uploader(outbox, district(ralph.base_url))
    try:
        result = await up.run_round()
    finally:
        await up.close()
    assert result.ok and result.sent == 120 and result.quarantined == 0  # 204 for the first batch, 200 after
    assert_lrs_holds_exactly(ralph, {i for i, _ in batch})


async def test_409_conflicts_are_quarantined_and_the_rest_delivered(ralph: Ralph, outbox: Outbox) -> None:
    batch = items(300)
    clash = {batch[37][0], batch[250][0]}
    for sid, body in batch:
        if sid in clash:  # the LRS already holds a *different* statement under these ids
            other = json.loads(body) | {"result": {"success": False, "response": "other"}}
            assert ralph.request("/statements", method="POST", body=[other])[0] == 200
    outbox.enqueue(batch)
    up = Uploader(outbox, district(ralph.base_url))
    try:
        result = await up.run_round()
        again = await up.run_round()
    finally:
        await up.close()
    assert result.ok and result.sent == 298 and result.quarantined == 2
    assert result.requests <= 3 + 2 * 2 * 7  # 3 batches + bisection, bounded: never a retry loop
    assert again.ok and again.requests == 0
    st = outbox.status()
    assert st["backlog"] == 0 and st["quarantined"] == 2
    assert {q["id"] for q in st["quarantine"]} == clash
    assert all("409" in q["reason"] for q in st["quarantine"])
    assert set(ralph.statement_ids()) == {i for i, _ in batch}  # the two clashing ids hold the LRS's version


async def test_statement_the_lrs_rejects_is_quarantined_without_leaking_content(
        ralph: Ralph, outbox: Outbox) -> None:
    bad = statement(1, student="student-secret-42")
    del bad["verb"]
    good = items(10)
    outbox.enqueue([*good[:5], (bad["id"], json.dumps(bad)), *good[5:]])
    up = Uploader(outbox, district(ralph.base_url))
    try:
        result = await up.run_round()
    finally:
        await up.close()
    assert result.ok and result.sent == 10 and result.quarantined == 1
    (q,) = outbox.status()["quarantine"]
    assert q["id"] == bad["id"] and "422" in q["reason"] and "verb" in q["reason"]
    assert "student-secret-42" not in q["reason"]
    assert_lrs_holds_exactly(ralph, {i for i, _ in good})


async def test_wrong_credentials_stop_the_round_and_keep_everything(ralph: Ralph, outbox: Outbox) -> None:
    outbox.enqueue(items(10))
    up = Uploader(outbox, district(ralph.base_url, lrs_password="wrong"))
    try:
        result = await up.run_round()
    finally:
        await up.close()
    assert not result.ok and "credentials" in (result.error or "")
    assert outbox.status()["backlog"] == 10 and outbox.status()["quarantined"] == 0


async def test_snapshot_statements_are_valid_xapi_for_the_lrs(ralph: Ralph, outbox: Outbox) -> None:
    from datetime import UTC, datetime

    from edge.config import UnitConfig
    from edge.xapi import snapshot_item

    unit = UnitConfig(room="Room 12", school="Lincoln")
    at = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    snaps = [snapshot_item(student=f"stu-{i}", skill=skill, p_mastery=0.42 + i / 100, evidence_count=i + 1, at=at,
                           home_page="https://sis.example.org", unit=unit, band="developing")
             for i in range(3) for skill in ("fractions.add", "https://skills.example.org/ratio")]
    outbox.enqueue(snaps)
    up = Uploader(outbox, district(ralph.base_url))
    try:
        result = await up.run_round()
    finally:
        await up.close()
    assert result.ok and result.sent == 6
    assert_lrs_holds_exactly(ralph, {i for i, _ in snaps})


async def test_a_statement_the_lrs_keeps_answering_500_is_quarantined_and_the_rest_delivered(
        ralph: Ralph, outbox: Outbox) -> None:
    """An outbox written before strict validation holds a statement Ralph crashes on (mbox not mailto:): after
    SPLIT_AFTER_5XX attempts its batch is bisected, it is quarantined, and the 107 behind it arrive."""
    good = items(107)
    poison = statement(999)
    poison["actor"] = {"objectType": "Agent", "mbox": "student@school.example"}
    outbox.enqueue([*good[:40], (poison["id"], json.dumps(poison)), *good[40:]])
    up = Uploader(outbox, district(ralph.base_url))
    rounds = []
    try:
        for _ in range(SPLIT_AFTER_5XX + 2):
            rounds.append(await up.run_round())
            if rounds[-1].ok:
                break
    finally:
        await up.close()
    assert [r.ok for r in rounds] == [False] * (SPLIT_AFTER_5XX - 1) + [True]
    assert all("500" in (r.error or "") for r in rounds[:-1])
    st = outbox.status()
    assert st["backlog"] == 0 and st["quarantined"] == 1
    (q,) = st["quarantine"]
    assert q["id"] == poison["id"] and q["reason"].startswith("LRS answered 500")
    # bisection of one 100-statement batch (1 + 2 per level), each 500 costing at most one retry on a fresh connection
    assert rounds[-1].requests <= 2 * (1 + 2 * 7)
    assert_lrs_holds_exactly(ralph, {i for i, _ in good})


async def test_an_lrs_that_answers_500_to_everything_quarantines_nothing(
        ralph: Ralph, proxy: FaultProxy, outbox: Outbox) -> None:
    outbox.enqueue(items(5))
    proxy.faults(default="500")
    up = Uploader(outbox, district(proxy.url + "/xAPI"))
    try:
        rounds = [await up.run_round() for _ in range(SPLIT_AFTER_5XX + 2)]
    finally:
        await up.close()
    assert not any(r.ok for r in rounds)
    assert "every statement" in (rounds[-1].error or "")  # bisected down to single statements, all refused
    st = outbox.status()
    assert st["backlog"] == 5 and st["quarantined"] == 0
