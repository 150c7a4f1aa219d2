"""mDNS advertise/browse/goodbye with real python-zeroconf, hermetically: every process runs inside a network
namespace the test made (only `lo`), so no packet reaches a real network.

Simulated units (tests/fleet/unit_sim.py) run the real Advertiser plus small /healthz servers; discovery
is the real `edge fleet discover` command run inside the namespace."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edge.config import parse_config
from edge.fleet.advertise import SERVICE_TYPE, instance_name, txt_record
from tests.fleet.netns import NetNs, netns_iter, read_json_line

ID1 = "1a2b3c4d5e6f708192a3b4c5d6e7f801"
ID2 = "2b3c4d5e6f708192a3b4c5d6e7f80112"
ID3 = "3c4d5e6f708192a3b4c5d6e7f8011223"


@pytest.fixture
def ns() -> Iterator[NetNs]:
    yield from netns_iter()


def start_unit(ns: NetNs, room: str, unit_id: str, ports: str, *extra: str, school: str = "Lincoln") -> Any:
    proc = ns.python("tests.fleet.unit_sim", "--room", room, "--school", school, "--id", unit_id,
                     "--ports", ports, *extra)
    ready = read_json_line(proc.stdout)
    assert ready["ready"] and ready["error"] is None, ready
    return proc


def discover(ns: NetNs, *args: str) -> list[dict[str, Any]]:
    out = ns.run([sys.executable, "-m", "edge", "fleet", "discover", "--json", *args])
    units: list[dict[str, Any]] = json.loads(out.stdout)
    return units


def test_txt_record_and_instance_name_are_bounded() -> None:
    room = "Room 12." + "é" * 52  # 60 characters (the longest room name), 112 bytes
    cfg = parse_config({"unit": {"room": room, "school": "Lincoln Elementary"}, "web": {"port": 8001}}, "edge.toml")
    txt = txt_record(cfg, ID1, "0.2.0")
    assert txt == {"txtvers": "1", "id": ID1, "room": "Room 12." + "é" * 46, "school": "Lincoln Elementary",
                   "version": "0.2.0", "board": "8001", "cache": "8080", "intake": "8090", "api": "/api/v1"}
    assert len(txt["room"].encode()) == 100  # cut on a character boundary
    name = instance_name(cfg, ID1)
    assert len(name.encode()) <= 63 and name.endswith(f" [{ID1[:8]}]") and "." not in name
    # multi-byte room names are cut on a character boundary
    utf = parse_config({"unit": {"room": "Salle é" * 8}}, "edge.toml")  # 56 characters, 64 bytes
    assert instance_name(utf, ID1).encode().decode() == instance_name(utf, ID1)


def test_discover_with_no_units_lists_nothing(ns: NetNs) -> None:
    assert discover(ns, "--timeout", "1") == []
    table = ns.run([sys.executable, "-m", "edge", "fleet", "discover", "--timeout", "1"]).stdout
    assert table.startswith("no units answered")


def test_discover_one_unit_with_its_txt_and_health(ns: NetNs) -> None:
    start_unit(ns, "Room 12", ID1, "18000,18080,18090", "--version", "0.3.1")
    (unit,) = discover(ns, "--timeout", "2")
    assert unit["id"] == ID1
    assert unit["name"] == f"Room 12 · Lincoln [{ID1[:8]}]"
    assert (unit["room"], unit["school"], unit["version"], unit["api"]) == ("Room 12", "Lincoln", "0.3.1", "/api/v1")
    assert unit["ports"] == {"web": 18000, "cache": 18080, "mastery": 18090}
    assert unit["host"] == f"ce-{ID1}.local"
    assert unit["addresses"] == ["127.0.0.1"]
    assert {svc: (h["http"], h["status"]) for svc, h in unit["health"].items()} == {
        "web": (200, "ok"), "cache": (200, "ok"), "mastery": (200, "ok")}
    assert unit["healthy"] is True


def test_discover_three_units_sorted_with_an_unhealthy_service(ns: NetNs) -> None:
    start_unit(ns, "Room 14", ID2, "18001,18081,18091", "--unhealthy", "cache")
    start_unit(ns, "Room 12", ID1, "18000,18080,18090")
    start_unit(ns, "Lab", ID3, "18002,18082,18092", school="Adams")
    started = time.monotonic()
    units = discover(ns, "--timeout", "40", "--count", "3")
    # without --count it would listen for the whole 40 s (the margin is for a loaded CI machine)
    assert time.monotonic() - started < 30, "--count 3 should stop once the three units answered"
    assert [(u["school"], u["room"], u["id"]) for u in units] == [
        ("Adams", "Lab", ID3), ("Lincoln", "Room 12", ID1), ("Lincoln", "Room 14", ID2)]
    sick = units[2]
    assert sick["healthy"] is False
    assert sick["health"]["cache"]["http"] == 503 and sick["health"]["cache"]["status"] == "failing"
    assert [u["healthy"] for u in units[:2]] == [True, True]
    table = ns.run([sys.executable, "-m", "edge", "fleet", "discover", "--timeout", "5", "--count", "3"]).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["SCHOOL", "ROOM", "UNIT", "VERSION", "ADDRESS", "HEALTH"]
    assert "cache:failing" in lines[3] and lines[3].startswith("Lincoln  Room 14")


@pytest.mark.parametrize("front_end", ["thread", "asyncio"])
def test_goodbye_on_stop_removes_the_unit_at_once(ns: NetNs, front_end: str) -> None:
    watch = ns.python("tests.fleet.zc_watch", "30")
    assert read_json_line(watch.stdout)["event"] == "watching"
    unit = start_unit(ns, "Room 12", ID1, "18000,18080,18090", *(["--asyncio"] if front_end == "asyncio" else []))
    added = read_json_line(watch.stdout)
    assert (added["event"], added["name"]) == ("added", f"Room 12 · Lincoln [{ID1[:8]}].{SERVICE_TYPE}")
    t0 = time.monotonic()
    unit.send_signal(signal.SIGTERM)
    assert read_json_line(unit.stdout) == {"stopped": True}
    removed = read_json_line(watch.stdout, deadline_s=20)
    # without goodbye packets the record would live out its TTL (75 s for the service, 120 s for addresses)
    assert removed["event"] == "removed" and time.monotonic() - t0 < 20
    assert unit.wait(10) == 0


def test_address_change_is_announced_again(ns: NetNs) -> None:
    watch = ns.python("tests.fleet.zc_watch", "30")
    assert read_json_line(watch.stdout)["event"] == "watching"
    start_unit(ns, "Room 12", ID1, "18000,18080,18090", "--check-every", "0.3")
    assert read_json_line(watch.stdout)["addresses"] == ["127.0.0.1"]
    # a new address (TEST-NET-1, inside this namespace only): the advertiser re-reads addresses every 0.3 s
    ns.run(["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"])
    updated = read_json_line(watch.stdout, deadline_s=20)
    assert updated["event"] == "updated" and "192.0.2.10" in updated["addresses"]


def test_advertise_false_announces_nothing(ns: NetNs) -> None:
    start_unit(ns, "Room 12", ID1, "18000,18080,18090", "--no-advertise")
    assert discover(ns, "--timeout", "1.5") == []
