"""What several worker processes share in the cache dir: download lock files (and their removal) and the
counters each worker publishes for the others' `/_cache/stats`."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from content_cache.locks import ObjectLocks, remove_unheld
from content_cache.store import Store, pid_alive
from content_cache.workerstats import read_worker_stats, stats_path, write_worker_stats
from tests.content_cache.harness import Harness, Obj, Origin

AUTH = {"Authorization": "Bearer s3cret"}


def test_removes_lock_files_nobody_holds_and_keeps_held_ones(tmp_path: Path) -> None:
    locks = ObjectLocks(tmp_path / "locks")
    done, busy = locks.lock("up/done"), locks.lock("up/busy")
    assert done.try_acquire()
    done.write_meta({"id": "x", "outcome": "body"})
    done.close()  # downloaded: the lock is free, its files stay
    assert busy.try_acquire()  # a download in progress (flock is per open file: this process counts too)
    busy.write_meta({"id": "y", "tmp": "1.x.part"})
    (tmp_path / "locks" / f".{done.meta_path.name}.999999999.k3x.tmp").write_text("{")  # a dead writer's half
    sweep = remove_unheld(tmp_path / "locks", is_alive=pid_alive)
    assert (sweep.removed, sweep.held) == (1, 1)
    assert not done.path.exists() and not done.meta_path.exists()
    assert busy.path.exists() and busy.read_meta() == {"id": "y", "tmp": "1.x.part"}
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == sorted([busy.path.name, busy.meta_path.name])
    busy.close()
    old = time.time() - 120
    os.utime(busy.path, (old, old))
    assert remove_unheld(tmp_path / "locks", min_age_s=60).young == 1  # its .json is recent
    os.utime(busy.meta_path, (old, old))
    assert remove_unheld(tmp_path / "locks", min_age_s=60).removed == 1
    assert list((tmp_path / "locks").iterdir()) == []


def test_a_lock_file_removed_under_a_waiting_process_is_not_a_second_lock(tmp_path: Path) -> None:
    locks = ObjectLocks(tmp_path / "locks")
    leader, waiter = locks.lock("up/v"), locks.lock("up/v")
    assert leader.try_acquire()
    assert not waiter.try_acquire()  # the waiter keeps its file open and tries again later
    leader.close()
    assert remove_unheld(tmp_path / "locks").removed == 1  # nobody held it at that moment
    newcomer = locks.lock("up/v")
    assert newcomer.try_acquire()  # a new file at the same path
    # The waiter's flock on the unlinked file would exclude nobody: it must find the newcomer's lock instead.
    assert not waiter.try_acquire()
    newcomer.close()
    assert waiter.try_acquire()
    assert os.stat(waiter.path).st_ino == os.fstat(waiter._fd).st_ino
    assert remove_unheld(tmp_path / "locks").held == 1
    waiter.close()


def test_check_command_removes_unused_lock_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[cache]\ndir = "{tmp_path / "cache"}"\n')
    locks = ObjectLocks(tmp_path / "cache" / "locks")
    for key, age in (("up/a", 3600), ("up/b", 3600), ("up/just-now", 0)):
        lock = locks.lock(key)
        assert lock.try_acquire()
        lock.close()
        os.utime(lock.path, (time.time() - age,) * 2)
    assert main(["cache", "check", "--config", str(cfg)]) == 0
    assert "2 unused lock files removed" in capsys.readouterr().out
    assert [p.name for p in locks.dir.iterdir()] == [locks.lock("up/just-now").path.name]  # maybe in use


@pytest.fixture
def live_and_dead_pids() -> Iterator[tuple[int, int]]:
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        yield live.pid, dead.pid
    finally:
        live.kill()
        live.wait()


async def test_stats_sum_live_workers_and_report_upstream_health_per_origin(
        tmp_path: Path, live_and_dead_pids: tuple[int, int]) -> None:
    live, dead = live_and_dead_pids
    origin = Origin(objects={"a": Obj(b"A")})
    async with Harness(tmp_path, origin, admin_token="s3cret") as h:
        stats_dir = tmp_path / "cache" / "stats"
        h.svc.stats_dir = stats_dir  # as in a worker process (make_app(config, worker=0))
        now = time.time()
        write_worker_stats(stats_dir, 1, {
            "worker": 1, "pid": live, "written_at": now - 0.5,
            "counters": {"hits": 5, "misses": 2, "upstream_requests": 2, "bytes_served": 100},
            "upstreams": {"up": {"down_until": now + 20, "last_error": "upstream unreachable: boom",
                                 "last_error_at": now - 1, "failures": 3}},
        })
        write_worker_stats(stats_dir, 2, {"worker": 2, "pid": dead, "written_at": now,
                                          "counters": {"hits": 1000}, "upstreams": {}})
        await h.get("/up/a")
        await h.get("/up/a")
        s = (await h.get("/_cache/stats", AUTH)).json()
        assert (s["hits"], s["misses"], s["upstream_requests"], s["bytes_served"]) == (6, 3, 3, 102)
        assert (s["worker"], s["pid"], s["objects"]) == (0, os.getpid(), 1)
        assert [(w["worker"], w["pid"], w["hits"]) for w in s["workers"]] == [(0, os.getpid(), 1), (1, live, 5)]
        assert s["workers"][1]["as_of_s_ago"] >= 0.5
        up = s["upstreams"]["up"]
        assert (up["healthy"], up["down_in_workers"], up["failures"]) == (False, [1], 3)
        assert up["last_error"] == "upstream unreachable: boom" and 15 < up["retry_in_s"] <= 20
        assert s["workers"][1]["upstreams"]["up"]["healthy"] is False
        # Publishing: written when something changed, not otherwise (SD-card writes).
        assert h.svc.publish_stats() is True
        assert h.svc.publish_stats() is False
        mine = json.loads(stats_path(stats_dir, 0).read_text())
        assert mine["pid"] == os.getpid() and mine["counters"]["hits"] == 1
        assert [r["worker"] for r in read_worker_stats(stats_dir, pid_alive)] == [0, 1]
    store = Store(tmp_path / "cache")
    try:
        assert store.check().stats_files == 1  # the dead worker's
    finally:
        store.close()
    assert sorted(p.name for p in stats_dir.iterdir()) == ["worker-0.json", "worker-1.json"]


async def test_single_process_stats_have_the_same_shape(tmp_path: Path) -> None:
    async with Harness(tmp_path, Origin(objects={"a": Obj(b"A")}), admin_token="s3cret") as h:
        await h.get("/up/a")
        s = (await h.get("/_cache/stats", AUTH)).json()
        assert s["misses"] == 1 and [w["worker"] for w in s["workers"]] == [0]
        assert s["upstreams"]["up"] == {"healthy": True, "retry_in_s": 0.0, "last_error": "", "failures": 0,
                                        "down_in_workers": []}
        assert not (tmp_path / "cache" / "stats").exists()  # one process: nothing to publish
