"""Transport faults between the unit and the LRS (500, drops, timeouts, cuts mid-answer, 409, gzip)."""

from __future__ import annotations

import random

import pytest

from edge.sync.outbox import Outbox
from edge.sync.uploader import Backoff, Uploader
from tests.sync.faultproxy import FaultProxy
from tests.sync.helpers import assert_lrs_holds_exactly, district, items
from tests.sync.lrs import Ralph

pytestmark = pytest.mark.lrs


async def drain(up: Uploader, outbox: Outbox, max_rounds: int = 50) -> list[str | None]:
    errors = []
    for _ in range(max_rounds):
        result = await up.run_round()
        errors.append(result.error)
        if result.ok and outbox.status()["backlog"] == 0:
            return errors
    raise AssertionError(f"not drained after {max_rounds} rounds: {errors[-3:]}")


@pytest.mark.parametrize("fault", ["500", "drop", "cut", "delay:1.5"])
async def test_a_fault_fails_the_round_and_the_next_one_delivers_exactly_once(
        fault: str, ralph: Ralph, proxy: FaultProxy, outbox: Outbox) -> None:
    batch = items(250)
    outbox.enqueue(batch)
    proxy.faults("pass", fault)  # the 2nd batch meets the fault
    up = Uploader(outbox, district(proxy.url + "/xAPI"), timeout_s=0.8, concurrency=1)
    try:
        errors = await drain(up, outbox)
    finally:
        await up.close()
    assert errors[0] is not None and errors[-1] is None and len(errors) == 2
    assert_lrs_holds_exactly(ralph, {i for i, _ in batch})  # "cut"/"delay": stored at first try, re-sent: 204


async def test_503_retry_after_sets_the_floor_of_the_back_off(
        ralph: Ralph, proxy: FaultProxy, outbox: Outbox) -> None:
    outbox.enqueue(items(5))
    proxy.faults("503:7")
    up = Uploader(outbox, district(proxy.url + "/xAPI"))
    try:
        result = await up.run_round()
    finally:
        await up.close()
    assert result.retry_after == 7.0 and "503" in (result.error or "")
    assert Backoff(base_s=0.1, rng=random.Random(1)).next_delay(result.retry_after) >= 7.0


async def test_a_batch_level_409_is_bisected_and_delivered(
        ralph: Ralph, proxy: FaultProxy, outbox: Outbox) -> None:
    batch = items(100)
    outbox.enqueue(batch)
    proxy.faults("409")  # only the first, whole-batch request is refused
    up = Uploader(outbox, district(proxy.url + "/xAPI"))
    try:
        result = await up.run_round()
    finally:
        await up.close()
    assert result.ok and result.sent == 100 and result.quarantined == 0 and result.requests == 3
    assert_lrs_holds_exactly(ralph, {i for i, _ in batch})


async def test_gzip_once_the_lrs_advertises_it(ralph: Ralph, outbox: Outbox) -> None:
    proxy = FaultProxy(f"http://127.0.0.1:{ralph.port}", gzip=True).start()
    batch = items(300)
    outbox.enqueue(batch)
    up = Uploader(outbox, district(proxy.url + "/xAPI"), concurrency=1)
    try:
        result = await up.run_round()
    finally:
        await up.close()
        proxy.stop()
    assert result.ok and result.sent == 300
    assert [enc for _, _, enc in proxy.log] == ["", "gzip", "gzip"]
    assert_lrs_holds_exactly(ralph, {i for i, _ in batch})


async def test_415_to_gzip_falls_back_to_plain(ralph: Ralph, proxy: FaultProxy, outbox: Outbox) -> None:
    outbox.enqueue(items(50))
    up = Uploader(outbox, district(proxy.url + "/xAPI"), gzip_requests=True)
    try:
        result = await up.run_round()
    finally:
        await up.close()
    assert result.ok and result.sent == 50 and [enc for _, _, enc in proxy.log] == ["gzip", ""]


async def test_seeded_random_faults_never_lose_or_duplicate(
        ralph: Ralph, proxy: FaultProxy, outbox: Outbox) -> None:
    rng = random.Random(20260302)
    accepted: set[str] = set()
    up = Uploader(outbox, district(proxy.url + "/xAPI", batch_size=40), timeout_s=0.5, concurrency=3)
    try:
        for wave in range(8):
            batch = items(rng.randint(20, 120), start=wave * 1000)
            outbox.enqueue(batch)
            accepted |= {i for i, _ in batch}
            proxy.faults(*rng.choices(["pass", "500", "drop", "cut", "delay:0.8", "409"], k=6))
            await up.run_round()
        proxy.script.clear()
        await drain(up, outbox)
    finally:
        await up.close()
    assert_lrs_holds_exactly(ralph, accepted)
    assert outbox.status()["quarantined"] == 0
