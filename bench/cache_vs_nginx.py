"""Lesson cache vs nginx on loopback, peer measured in the same run; and a cold "dozen students" storm.

1. Warm hits: nginx (Debian package, sendfile on, `worker_processes 2`) and our cache (`edge cache serve`,
   a file:// origin) with `workers = 1` and with `workers = 2` serve the same 50 MB and 200 KB files to 36
   and 1 connections (wrk): requests/s and p99 for both, and the ratio. Without nginx or wrk it fails.
   nginx is measured right after the cache for each row (the machine's load drifts).
2. Cold storm, for each workers setting: 36 simultaneous requests for an uncached 50 MB object behind a
   rate-limited upstream: upstream request count, each client's time to first byte relative to upstream's
   first byte, and the last client's finish divided by the upstream transfer time.

Runs in about a minute and a half. `python bench/cache_vs_nginx.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _peers import require

BIG = 50 * 1024 * 1024
SMALL = 200 * 1024
DURATION_S = 4
STORM_CLIENTS = 36
STORM_RATE = 10 * 1024 * 1024  # bytes/s from the "internet": 5 s for 50 MB
WORKERS = (1, 2)  # cache worker processes measured
NGINX_WORKERS = 2  # nginx worker_processes: as many as the cache's largest setting, for fairness
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- load generators ----------------------------------------------------------------------------------

def _wrk(url: str, conns: int) -> tuple[float, float]:
    """(requests/s, p99 ms) from wrk."""
    threads = min(2, conns)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{DURATION_S}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert m is not None, out
    p99 = float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]
    return rps, p99


def load(url: str, conns: int) -> tuple[float, float]:
    return _wrk(url, conns)


# -- servers ------------------------------------------------------------------------------------------

def start_nginx(work: Path, pack: Path) -> tuple[subprocess.Popen[bytes] | None, int, str]:
    nginx = require("nginx", "nginx-light")
    port = _free_port()
    conf = work / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user}worker_processes {NGINX_WORKERS};
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {work}/ng-body; proxy_temp_path {work}/ng-proxy;
    fastcgi_temp_path {work}/ng-fcgi; uwsgi_temp_path {work}/ng-uwsgi; scgi_temp_path {work}/ng-scgi;
    types {{ application/octet-stream bin; }}
    server {{ listen 127.0.0.1:{port}; root {pack}; }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc)
    except RuntimeError as e:
        return None, 0, f"nginx did not start: {e} ({(work / 'nginx-error.log').read_text(errors='replace')[-300:]})"
    return proc, port, ""


def start_cache(work: Path, pack: Path, upstream_port: int, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    cfg = work / f"edge-{workers}.toml"
    cfg.write_text(f"""[cache]
host = "127.0.0.1"
port = {port}
workers = {workers}
dir = "{work / f'cache-{workers}'}"
stall_timeout_s = 30.0
[cache.origins]
up = "http://127.0.0.1:{upstream_port}/files"
[cache.origins.pack]  # a static lesson pack: its files were written a moment ago, so the RFC heuristic
url = "{pack.as_uri()}"  # (10% of their age) would revalidate them on every request
default_ttl_s = 86400
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "edge", "cache", "serve", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    _wait_port(port, proc)
    return proc, port


UPSTREAM = r'''
import asyncio, json, sys, time
from aiohttp import web
size, rate = int(sys.argv[2]), int(sys.argv[3])
state = {"requests": 0, "first_byte": None, "last_byte": None}
body = bytes(range(256)) * (size // 256)
async def files(request):
    state["requests"] += 1
    resp = web.StreamResponse(headers={"ETag": '"storm"', "Content-Type": "video/mp4"})
    resp.content_length = len(body)
    await resp.prepare(request)
    t0, sent, chunk = time.monotonic(), 0, 64 * 1024
    while sent < len(body):
        await resp.write(body[sent:sent + chunk])
        if state["first_byte"] is None:
            state["first_byte"] = time.time()
        sent += chunk
        ahead = sent / rate - (time.monotonic() - t0)
        if ahead > 0:
            await asyncio.sleep(ahead)
    state["last_byte"] = time.time()
    return resp
async def stats(request):
    return web.json_response(state)
app = web.Application()
app.router.add_get("/files/{name}", files)
app.router.add_get("/stats", stats)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
'''


def start_upstream(size: int, rate: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port), str(size), str(rate)])
    _wait_port(port, proc)
    return proc, port


# -- cold storm ---------------------------------------------------------------------------------------

async def _storm_client(port: int, path: str) -> tuple[float, float, int]:
    """(first body byte wall time, finish wall time, bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace").splitlines()[0])
    n = int(re.search(rb"(?i)content-length:\s*(\d+)", head)[1])  # type: ignore[index]
    first = 0.0
    got = 0
    while got < n:
        data = await reader.read(1 << 20)
        if not data:
            break
        if not first:
            first = time.time()
        got += len(data)
    writer.close()
    return first, time.time(), got


async def storm(cache_port: int, upstream_port: int) -> dict[str, float]:
    results = await asyncio.gather(*(_storm_client(cache_port, "/up/storm.mp4") for _ in range(STORM_CLIENTS)))
    reader, writer = await asyncio.open_connection("127.0.0.1", upstream_port)
    writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    up = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    transfer = up["last_byte"] - up["first_byte"]
    ttfb = [(first - up["first_byte"]) * 1000 for first, _, _ in results]
    complete = sum(1 for _, _, got in results if got == BIG)
    return {
        "upstream_requests": up["requests"],
        "complete": complete,
        "ttfb_ms_max": max(ttfb),
        "ttfb_ms_median": sorted(ttfb)[len(ttfb) // 2],
        "upstream_transfer_s": transfer,
        "last_finish_ratio": (max(done for _, done, _ in results) - up["first_byte"]) / transfer,
    }


# -- main ---------------------------------------------------------------------------------------------

def _storm_report(cport: int, uport: int) -> None:
    print(f"  cold storm: {STORM_CLIENTS} clients, uncached {BIG // 2**20} MB object, upstream limited to "
          f"{STORM_RATE / 2**20:.0f} MB/s")
    s = asyncio.run(storm(cport, uport))
    print(f"    upstream requests: {s['upstream_requests']:.0f}   complete bodies: {s['complete']:.0f}/"
          f"{STORM_CLIENTS}")
    print(f"    first byte after upstream's first byte: median {s['ttfb_ms_median']:.1f} ms, "
          f"max {s['ttfb_ms_max']:.1f} ms")
    print(f"    upstream transfer {s['upstream_transfer_s']:.2f} s; last client finished at "
          f"{s['last_finish_ratio']:.2f}x the upstream transfer time")


def main() -> None:
    """Run both parts for each workers setting and print the figures (ratios are ours / nginx)."""
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        pack = work / "pack"
        pack.mkdir()
        (pack / "big.bin").write_bytes(os.urandom(BIG))
        (pack / "small.bin").write_bytes(os.urandom(SMALL))
        nginx, nport, why = start_nginx(work, pack)
        require("wrk", "wrk")
        print(f"warm hits on loopback, {DURATION_S} s per run, load from wrk; "
              f"nginx with worker_processes {NGINX_WORKERS}, sendfile on")
        if nginx is None:
            raise SystemExit(f"bench: the peer did not start: {why}")
        try:
            for workers in WORKERS:
                # A fresh upstream per setting: its request count and timings belong to this storm only.
                upstream, uport = start_upstream(BIG, STORM_RATE)
                cache, cport = start_cache(work, pack, uport, workers)
                try:
                    _run_one(workers, cport, nginx is not None, nport, uport, upstream)
                finally:
                    for p in (cache, upstream):
                        _stop(p)
        finally:
            if nginx is not None:
                _stop(nginx)


def _run_one(workers: int, cport: int, with_nginx: bool, nport: int, uport: int,
             upstream: subprocess.Popen[bytes]) -> None:
    for name in ("big.bin", "small.bin"):  # warm the cache
        subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{cport}/pack/{name}"], check=True)
    print(f"cache with workers = {workers}")
    print(f"  {'file':10} {'conns':>5} {'cache req/s':>12} {'p99 ms':>8} {'nginx req/s':>12} {'p99 ms':>8} "
          f"{'ratio':>6}")
    for name in ("big.bin", "small.bin"):
        for conns in (36, 1):
            ours, our_p99 = load(f"http://127.0.0.1:{cport}/pack/{name}", conns)
            if with_nginx:
                peer, peer_p99 = load(f"http://127.0.0.1:{nport}/{name}", conns)
                ratio = f"{ours / peer:6.2f}"
                peer_s = f"{peer:12.1f} {peer_p99:8.1f}"
            else:
                ratio, peer_s = "   n/a", f"{'n/a':>12} {'n/a':>8}"
            print(f"  {name:10} {conns:5d} {ours:12.1f} {our_p99:8.1f} {peer_s} {ratio}", flush=True)
    _storm_report(cport, uport)
    # Upstream down: every cached object still served.
    _stop(upstream)
    served = 0
    names = ["pack/big.bin", "pack/small.bin", "up/storm.mp4"]
    for name in names:
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://127.0.0.1:{cport}/{name}"], capture_output=True, text=True)
        served += r.stdout == "200"
    print(f"  upstream down: {served}/{len(names)} cached objects served ({100 * served / len(names):.0f}%)",
          flush=True)


if __name__ == "__main__":
    main()
