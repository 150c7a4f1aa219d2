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
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from aiohttp import web

from content_cache.origins import effective_origins
from content_cache.server import start_cache
from content_cache.store import Store
from edge.config import EdgeConfig
from edge.exc import EdgeError, ListenError
from edge.serving.lifecycle import serve_async, serve_threaded, stop_on_signal

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
RESTART_MIN_INTERVAL_S = 1.0  # a worker that keeps crashing is restarted at most this often
TEMP_GRACE_S = 60.0  # a dead worker's temp files stay this long, for a takeover to resume from


def _remove_temps(config: EdgeConfig, pid: int) -> None:
    for part in (config.cache_dir / "tmp").glob(f"{pid}.*.part"):
        part.unlink(missing_ok=True)


async def _serve_worker(config: EdgeConfig, index: int, ready: Connection) -> None:
    async def start() -> web.AppRunner:
        try:
            runner = await start_cache(config, worker=index)
        except ListenError as e:
            ready.send(str(e))
            raise
        ready.send("ok")
        ready.close()
        return runner

    async def stop(runner: web.AppRunner) -> None:
        await runner.cleanup()  # finishes in-flight responses' bookkeeping, closes the index cleanly

    with contextlib.suppress(ListenError):  # reported to the parent through `ready`
        await serve_async(start, stop, systemd=False)  # only the parent talks to systemd


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
        raise ListenError(c.host, c.port, e.strerror or str(e)) from None
    return guard


class _Supervisor:
    """Restarts workers that die (at most once a second each) and removes dead workers' temp files later."""

    def __init__(self, config: EdgeConfig, pool: _Pool) -> None:
        self.config = config
        self.pool = pool
        self.dead_temps: list[tuple[float, int]] = []  # (when, pid): dead workers' temp files to remove

    def tick(self) -> None:
        now = time.monotonic()
        for pid in [pid for due, pid in self.dead_temps if due <= now]:
            _remove_temps(self.config, pid)
        self.dead_temps = [(due, pid) for due, pid in self.dead_temps if due > now]
        for i, proc in list(self.pool.procs.items()):
            if proc.is_alive():
                continue
            if time.monotonic() - self.pool.started_at[i] < RESTART_MIN_INTERVAL_S:
                continue  # crashing at start: retry on a later round, not in a tight loop
            log.warning("cache worker %d (pid %s) exited with %s; starting a new one", i, proc.pid, proc.exitcode)
            # Its half-written temp files: a worker taking its download over renames the file to its own name
            # and resumes it with a Range request. So not at once: what is still under the dead pid's name after
            # a grace period was not taken over (or `edge cache check` got it first).
            if proc.pid is not None:
                self.dead_temps.append((time.monotonic() + TEMP_GRACE_S, proc.pid))
            proc.close()
            msg = self.pool.await_ready(i, self.pool.start(i))
            if msg != "ok":
                log.error("cache worker %d did not restart: %s", i, msg)

    def close(self) -> None:
        self.pool.stop_all()
        for _, pid in self.dead_temps:
            _remove_temps(self.config, pid)


def serve_workers(config: EdgeConfig, announce: str) -> None:
    """Run `config.cache.workers` worker processes until SIGTERM/SIGINT; print `announce` once all serve."""
    n = config.cache.workers
    guard = _claim_port(config)
    try:
        with Store(config.cache_dir) as store:
            store.check()  # temp files of dead writers, orphans: once, before any worker runs
        effective_origins(config)  # generate the demo pack (if needed) once, not in N racing workers
        with stop_on_signal() as stopping:
            supervisor = _Supervisor(config, _Pool(config))
            try:
                readers = {i: supervisor.pool.start(i) for i in range(n)}
                problems = [msg for i, r in readers.items() if (msg := supervisor.pool.await_ready(i, r)) != "ok"]
                if problems:
                    raise EdgeError("; ".join(problems))
                print(announce, flush=True)
                # the watchdog is fed by this supervising loop; dead workers are restarted by its tick
                serve_threaded(stopping, tick=supervisor.tick)
            finally:
                supervisor.close()
    finally:
        guard.close()
