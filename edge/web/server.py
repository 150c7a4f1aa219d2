"""Serving the pages with waitress: `WebServer` (start/stop from any thread) and `serve(config)`, the
foreground `edge web serve` (rotation service + cues + pages until SIGTERM/SIGINT)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import waitress
from flask import Flask
from waitress import wasyncore

from edge.config import EdgeConfig
from edge.exc import EdgeError
from edge.rotation.service import RotationService
from edge.sdnotify import notify, watchdog_interval

log = logging.getLogger(__name__)
THREADS = 8  # pages poll (no long-lived streams), so a few workers serve a whole class


class WebServer:
    """A waitress server whose loop runs until `close()` is called (from any thread; it returns at once)."""

    def __init__(self, app: Flask, host: str, port: int, threads: int = THREADS) -> None:
        try:
            self._server = waitress.create_server(app, host=host, port=port, threads=threads,
                                                  ident="classroom-edge", clear_untrusted_proxy_headers=True)
        except OSError as e:
            raise EdgeError(f"cannot serve the pages on {host}:{port}: {e.strerror or e}") from e
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def run(self) -> None:
        """Serve in this thread until close()."""
        srv = self._server
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=1.0, map=srv._map, use_poll=srv.adj.asyncore_use_poll, count=1)
        finally:
            srv.task_dispatcher.shutdown()
            wasyncore.close_all(srv._map)

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self.run, name="web", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._server.pull_trigger()  # wake the loop now rather than at its 1 s poll timeout
            self._thread.join(timeout=10)
            self._thread = None


def start_pages(config: EdgeConfig, rotation: RotationService) -> WebServer:
    """The pages for `rotation`, served from a thread on [web] host/port (raises EdgeError if it cannot bind)."""
    from edge.web import create_app

    return WebServer(create_app(config, rotation), config.web.host, config.web.port).start()


def serve(config: EdgeConfig) -> int:
    """`edge web serve`: the rotation (engine, cues, button, bells) and its pages, in the foreground."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    rotation = RotationService(config)
    try:
        server = start_pages(config, rotation)
    except EdgeError:
        rotation.stop()
        raise
    rotation.start()
    pin_note = "" if config.web.teacher_pin else " (no teacher_pin set: teacher control is disabled)"
    print(f"edge: pages on {server.url}/ (board {server.url}/board, teacher {server.url}/teacher){pin_note}; "
          f"pins: {rotation.devices.factory_name}", flush=True)
    notify("READY=1")
    interval = watchdog_interval()
    try:
        while not stop.wait(interval):
            # feed the watchdog only while the rotation loop is alive (it runs at least once a second)
            if rotation.loop_age() < 5.0:
                notify("WATCHDOG=1")
    finally:
        notify("STOPPING=1")
        server.close()
        rotation.stop()
    print("edge: stopped", flush=True)
    return 0
