"""`edge cache serve` with `workers = N`: N processes answer on one port and share the cache dir and index.

One asyncio process tops out on small hits (Python's per-request cost), so the cache can run as several
worker processes. Each binds its own listening socket on host:port with SO_REUSEPORT and the kernel spreads
new connections over them (one socket inherited from the parent would let a single worker accept a whole
burst: asyncio accepts in a loop). They share the diskcache index (each mirrors it in memory and re-reads
it on a miss) and coordinate downloads with per-object locks (`content_cache.locks`): still exactly one
upstream request per object across all workers.

The parent forks the workers before it has an event loop or an open index, repairs the cache dir once
before any of them starts, restarts a worker that dies, and on SIGTERM/SIGINT stops them all (each finishes
its bookkeeping and closes the index cleanly).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from aiohttp import web

from content_cache.server import effective_origins, make_app
from content_cache.store import Store
from edge.config import EdgeConfig
from edge.exc import EdgeError
from edge.sdnotify import notify, watchdog_interval

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
RESTART_MIN_INTERVAL_S = 1.0  # a worker that keeps crashing is restarted at most this often
TEMP_GRACE_S = 60.0  # a dead worker's temp files stay this long, for a takeover to resume from


def _remove_temps(config: EdgeConfig, pid: int) -> None:
    for part in (config.cache_dir / "tmp").glob(f"{pid}.*.part"):
        part.unlink(missing_ok=True)


async def _serve_worker(config: EdgeConfig, index: int, ready: Connection) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    c = config.cache
    runner = web.AppRunner(make_app(config, worker=index), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, c.host, c.port, reuse_address=True, reuse_port=True, backlog=1024).start()
    except OSError as e:
        ready.send(f"cannot listen on {c.host}:{c.port}: {e.strerror}")
        await runner.cleanup()
        return
    ready.send("ok")
    ready.close()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # finishes in-flight responses' bookkeeping, closes the index cleanly


def _stop_with_parent() -> None:
    """Linux: get SIGTERM when the parent dies (even by SIGKILL), instead of serving on as an orphan."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(config: EdgeConfig, index: int, ready: Connection) -> None:
    _stop_with_parent()
    # Forked from the parent: drop its signal set-up (flag handlers, wake-up fd) before our own loop starts.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        asyncio.run(_serve_worker(config, index, ready))
    except Exception as e:
        with contextlib.suppress(OSError):
            ready.send(f"worker {index} failed to start: {e}")
        raise


class _Pool:
    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.ctx = multiprocessing.get_context("fork")
        self.procs: dict[int, BaseProcess] = {}
        self.started_at: dict[int, float] = {}

    def start(self, index: int) -> Connection:
        reader, writer = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_worker_main, args=(self.config, index, writer),
                                name=f"cache-worker-{index}", daemon=False)
        proc.start()
        writer.close()
        self.procs[index] = proc
        self.started_at[index] = time.monotonic()
        return reader

    @staticmethod
    def await_ready(index: int, reader: Connection) -> str:
        """'ok', or why worker `index` did not start."""
        try:
            if not reader.poll(READY_TIMEOUT_S):
                return f"worker {index} did not start within {READY_TIMEOUT_S:g} s"
            return str(reader.recv())
        except EOFError:
            return f"worker {index} exited while starting"
        finally:
            reader.close()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in self.procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("cache worker %s did not stop in %g s: killing it", proc.name, STOP_TIMEOUT_S)
                proc.kill()
                proc.join()


def _claim_port(config: EdgeConfig) -> socket.socket:
    """Fail early and clearly when host:port is taken, and keep others off it while the workers run.

    SO_REUSEPORT lets any process of the same user join a port's listeners, a second `edge cache serve`
    included. So: first a plain bind (fails if anything listens there, reuse-port or not), then a guard
    socket bound with SO_REUSEPORT but never listening (it takes no connections): the workers can join it,
    a plain bind by anyone else fails.
    """
    c = config.cache
    try:
        infos = socket.getaddrinfo(c.host, c.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(addr)
        guard = socket.socket(family, socket.SOCK_STREAM)
        guard.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        guard.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        guard.set_inheritable(False)
        guard.bind(addr)
    except OSError as e:
        raise EdgeError(f"cannot listen on {c.host}:{c.port}: {e.strerror or e}") from None
    return guard


def serve_workers(config: EdgeConfig, announce: str) -> None:
    """Run `config.cache.workers` worker processes until SIGTERM/SIGINT; print `announce` once all serve."""
    n = config.cache.workers
    guard = _claim_port(config)
    try:
        store = Store(config.cache_dir)
        try:
            store.check()  # temp files of dead writers, orphans: once, before any worker runs
        finally:
            store.close()
        effective_origins(config)  # generate the demo pack (if needed) once, not in N racing workers
    except BaseException:
        guard.close()
        raise

    stop = False
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    old_wakeup = signal.set_wakeup_fd(wake_w)
    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    pool = _Pool(config)
    dead_temps: list[tuple[float, int]] = []  # (when, pid): dead workers' temp files to remove
    watchdog = watchdog_interval() is not None
    try:
        readers = {i: pool.start(i) for i in range(n)}
        problems = [msg for i, r in readers.items() if (msg := pool.await_ready(i, r)) != "ok"]
        if problems:
            raise EdgeError("; ".join(problems))
        print(announce, flush=True)
        notify("READY=1")
        while not stop:
            wait([p.sentinel for p in pool.procs.values()] + [wake_r], timeout=1.0)
            if watchdog:
                notify("WATCHDOG=1")  # the supervising loop is alive; dead workers are restarted below
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            if stop:
                break
            now = time.monotonic()
            for pid in [pid for due, pid in dead_temps if due <= now]:
                _remove_temps(config, pid)
            dead_temps = [(due, pid) for due, pid in dead_temps if due > now]
            for i, proc in list(pool.procs.items()):
                if proc.is_alive():
                    continue
                if time.monotonic() - pool.started_at[i] < RESTART_MIN_INTERVAL_S:
                    continue  # crashing at start: retry on a later round, not in a tight loop
                log.warning("cache worker %d (pid %s) exited with %s; starting a new one", i, proc.pid,
                            proc.exitcode)
                # Its half-written temp files: a worker taking its download over renames the file to its own
                # name and resumes it with a Range request. So not at once: what is still under the dead
                # pid's name after a grace period was not taken over (or `edge cache check` got it first).
                if proc.pid is not None:
                    dead_temps.append((time.monotonic() + TEMP_GRACE_S, proc.pid))
                proc.close()
                msg = pool.await_ready(i, pool.start(i))
                if msg != "ok":
                    log.error("cache worker %d did not restart: %s", i, msg)
    finally:
        notify("STOPPING=1")
        pool.stop_all()
        for _, pid in dead_temps:
            _remove_temps(config, pid)
        guard.close()
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)
