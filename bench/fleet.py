"""Fleet benchmark: the district collector under 5,000 units, and discovery of 3 units.

1. Collector (`edge fleet serve` code in its own process, real SQLite on a temp dir):
   - paced: 5,000 simulated units each sending one heartbeat a minute (83/s) for PACED_S seconds;
   - burst: all 5,000 at once (the minute after a district-wide power cut);
   p50/p99/max latency, time to absorb the burst, and the collector's peak RSS (VmHWM).
   Peer, same run, same burst: the collector with one transaction (one fsync) per heartbeat instead of
   group commit.
2. Discovery in a private network namespace: three simulated units (the real advertiser); the time until
   `edge fleet discover --count 3` has listed all three, against `avahi-browse -r -t` (a real avahi-daemon
   on the same namespace) listing and resolving the same three. Needs root, iproute2 and avahi
   (`make fleet-deps`); without them this part says so and is skipped.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.config import EdgeConfig, parse_config

ROOT = Path(__file__).resolve().parents[1]

UNITS, SCHOOLS = 5000, 25
PACED_S = float(os.environ.get("FLEET_BENCH_PACED_S", "60"))
TOKENS = {f"School {i:02d}": f"bench-token-school-{i:02d}-0123456789" for i in range(SCHOOLS)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _serve(config: EdgeConfig, naive: bool) -> None:
    _raise_nofile()
    from edge.fleet.collector import serve

    # the peer: one transaction (one fsync) per heartbeat, in arrival order
    serve(config, max_group=1 if naive else 1000)


def _doc(i: int) -> tuple[dict[str, Any], str]:
    school = f"School {i % SCHOOLS:02d}"
    doc = {"unit": {"id": f"unit-{i:05d}", "room": f"Room {i // SCHOOLS}", "school": school,
                    "hostname": f"pi-{i}"},
           "version": "0.1.0", "uptime_s": 1000.0, "host_uptime_s": 2000.0, "cache_bytes": 10**9, "backlog": i % 50,
           "pin_factory": "LGPIOFactory", "kernel": "compiled", "sent_at": "2027-01-15T08:00:00Z",
           "ports": {"web": 8000, "cache": 8080, "mastery": 8090}, "disk_free_bytes": 10**10,
           "disk_total_bytes": 32 * 10**9, "clock_synced": True, "oldest_unsent_age_s": 30.0, "faults": []}
    return doc, TOKENS[school]


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else float("nan")


def _request(port: int, i: int) -> bytes:
    doc, token = _doc(i)
    body = json.dumps(doc).encode()
    head = (f"POST /api/v1/heartbeat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


async def _post(port: int, payload: bytes, lat: list[float]) -> int:
    """One heartbeat on its own connection, as a unit sends it; a minimal client, so that the 2 cores go to the
    collector rather than to the load generator."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        status_line = await reader.readline()
        await reader.read()  # until the server closes (Connection: close)
    finally:
        writer.close()
    lat.append(time.perf_counter() - t0)
    return int(status_line.split()[1])


async def _paced(port: int, seconds: float) -> tuple[list[float], int]:
    lat: list[float] = []
    rate = UNITS / 60.0
    total = int(seconds * rate)
    payloads = [_request(port, n) for n in range(UNITS)]
    start = time.perf_counter()
    tasks = []
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(_post(port, payloads[n % UNITS], lat)))
    statuses = await asyncio.gather(*tasks, return_exceptions=True)
    return lat, sum(s != 204 for s in statuses)


async def _burst(port: int) -> tuple[list[float], float, int]:
    lat: list[float] = []
    payloads = [_request(port, i) for i in range(UNITS)]
    start = time.perf_counter()
    statuses = await asyncio.gather(*(_post(port, p, lat) for p in payloads), return_exceptions=True)
    took = time.perf_counter() - start
    return lat, took, sum(s != 204 for s in statuses)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _run_collector(naive: bool, paced_s: float, bursts_n: int = 2) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        config = parse_config({"unit": {"state_dir": tmp}, "fleet": {
            "host": "127.0.0.1", "port": port, "tokens": TOKENS, "max_units": 10_000}}, "bench.toml")
        proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(config, naive))
        proc.start()
        assert proc.pid is not None
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the collector did not start") from None
                    time.sleep(0.1)
            result: dict[str, Any] = {}
            if paced_s > 0:
                lat, errors = asyncio.run(_paced(port, paced_s))
                result["paced"] = {"n": len(lat), "errors": errors, "p50_ms": _pct(lat, 50) * 1000,
                                   "p99_ms": _pct(lat, 99) * 1000, "max_ms": max(lat) * 1000}
            bursts = []
            for _ in range(bursts_n):  # the best of n: other work on the machine only ever slows a run down
                lat, took, errors = asyncio.run(_burst(port))
                bursts.append((took, lat, errors))
            took, lat, errors = min(bursts, key=lambda b: b[0])
            result["burst"] = {"n": len(lat), "errors": errors, "took_s": took, "p50_ms": _pct(lat, 50) * 1000,
                               "p99_ms": _pct(lat, 99) * 1000, "max_ms": max(lat) * 1000}
            result["peak_rss_mb"] = _peak_rss_mb(proc.pid)
            body = _get_json(f"http://127.0.0.1:{port}/api/v1/schools")
            result["units_stored"] = sum(s["units"] for s in body["schools"])
            return result
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.join(30)


def _get_json(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


# ---- discovery


AVAHI_CONF = """[server]
host-name=bench-avahi
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
[rlimits]
"""
DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={bus}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/>
<allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
"""


def _discover_bench(rounds: int = 5) -> dict[str, Any] | str:
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "skipped: needs root and iproute2 (network namespaces)"
    ns = f"edge-bench-{os.getpid()}"
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp())
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        for args in (["lo", "up"], ["lo", "multicast", "on"]):
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", *args], check=True)
        env = {**os.environ}
        avahi_env = None
        if shutil.which("avahi-daemon") and shutil.which("avahi-browse") and shutil.which("dbus-daemon"):
            (tmp / "dbus.conf").write_text(DBUS_CONF.format(bus=tmp / "bus"))
            (tmp / "avahi.conf").write_text(AVAHI_CONF)
            procs.append(subprocess.Popen(["dbus-daemon", f"--config-file={tmp / 'dbus.conf'}", "--nofork"]))
            time.sleep(0.5)
            avahi_env = {"PATH": os.environ["PATH"], "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp / 'bus'}"}
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "avahi-daemon", "-f", str(tmp / "avahi.conf"),
                                           "--no-drop-root", "--no-chroot", "--no-rlimits"], env=avahi_env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for n in range(3):
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.fleet.unit_sim", "--room", f"Room {n}",
                 "--school", "Bench", "--id", f"{n:032x}", "--ports", f"{18000 + n},{18100 + n},{18200 + n}"],
                cwd=ROOT, stdout=subprocess.PIPE, env=env)
            assert proc.stdout is not None
            proc.stdout.readline()  # ready
            procs.append(proc)
        time.sleep(1.0)
        ours, found_after, peer = [], [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "edge", "fleet", "discover",
                                  "--json", "--count", "3", "--timeout", "10", "--no-health"],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            ours.append(time.perf_counter() - t0)
            units = json.loads(out.stdout)
            assert len(units) == 3, out.stdout
            found_after.append(max(u["found_after_s"] for u in units))
            if avahi_env is not None:
                t0 = time.perf_counter()
                res = subprocess.run(["avahi-browse", "-r", "-t", "-p", "_classroom-edge._tcp"], env=avahi_env,
                                     capture_output=True, text=True, timeout=30)
                peer.append(time.perf_counter() - t0)
                assert sum(line.startswith("=") for line in res.stdout.splitlines()) == 3, res.stdout
        result: dict[str, Any] = {"ours_s": _pct(ours, 50), "ours_browse_s": _pct(found_after, 50)}
        if peer:
            result["avahi_browse_s"] = _pct(peer, 50)
        return result
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    _raise_nofile()
    print(f"collector: {UNITS} units in {SCHOOLS} schools, one heartbeat a minute each "
          f"({UNITS / 60:.0f}/s) for {PACED_S:.0f} s, then all {UNITS} at once", flush=True)
    ours = _run_collector(naive=False, paced_s=PACED_S)
    if "paced" in ours:
        p = ours["paced"]
        print(f"  paced   {p['n']} heartbeats, errors {p['errors']}: p50 {p['p50_ms']:.1f} ms, "
              f"p99 {p['p99_ms']:.1f} ms, max {p['max_ms']:.1f} ms", flush=True)
    b = ours["burst"]
    print(f"  burst   {b['n']} at once, errors {b['errors']}: absorbed in {b['took_s']:.2f} s, "
          f"p50 {b['p50_ms']:.0f} ms, p99 {b['p99_ms']:.0f} ms, max {b['max_ms']:.0f} ms", flush=True)
    print(f"  peak RSS {ours['peak_rss_mb']:.0f} MB; units stored {ours['units_stored']}", flush=True)
    naive = _run_collector(naive=True, paced_s=0)
    nb = naive["burst"]
    print(f"  peer (one fsync per heartbeat) burst: absorbed in {nb['took_s']:.2f} s, p99 {nb['p99_ms']:.0f} ms, "
          f"errors {nb['errors']}, peak RSS {naive['peak_rss_mb']:.0f} MB", flush=True)
    print(f"  ratio: burst p99 {nb['p99_ms'] / b['p99_ms']:.1f}x lower, absorbed "
          f"{nb['took_s'] / b['took_s']:.1f}x faster than the peer", flush=True)
    print("discover: 3 units in a private network namespace", flush=True)
    d = _discover_bench()
    if isinstance(d, str):
        print(f"  {d}")
    else:
        line = (f"  edge fleet discover --count 3: {d['ours_s']:.2f} s wall (process start included), "
                f"all 3 resolved {d['ours_browse_s']:.3f} s after browsing began")
        if "avahi_browse_s" in d:
            line += f"; peer avahi-browse -r -t: {d['avahi_browse_s']:.2f} s"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
