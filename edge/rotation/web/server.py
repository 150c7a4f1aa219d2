"""Serving the pages with waitress: `WebServer` (start/stop from any thread, a context manager).

Waitress rather than the flask dev server: a fixed pool of worker threads and a real HTTP parser.
"""

from __future__ import annotations

import logging
import threading

import waitress
from flask import Flask
from waitress import wasyncore

from edge.config import EdgeConfig
from edge.exc import ListenError
from edge.resource import Resource
from edge.rotation.service import RotationService

log = logging.getLogger(__name__)
THREADS = 8  # pages poll (no long-lived streams), so a few workers serve a whole class


class WebServer(Resource):
    """A waitress server whose loop runs until `close()` is called (from any thread; it returns at once)."""

    def __init__(self, app: Flask, host: str, port: int, threads: int = THREADS) -> None:
        try:
            self._server = waitress.create_server(app, host=host, port=port, threads=threads,
                                                  ident="classroom-edge", clear_untrusted_proxy_headers=True)
        except OSError as e:
            raise ListenError(host, port, e.strerror or str(e)) from None
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
        else:  # never started: release the listening socket all the same
            wasyncore.close_all(self._server._map)


def start_pages(config: EdgeConfig, rotation: RotationService) -> WebServer:
    """The pages for `rotation`, served from a thread on [web] host/port (ListenError if it cannot bind)."""
    from edge.rotation.web import create_app

    return WebServer(create_app(config, rotation), config.web.host, config.web.port).start()
