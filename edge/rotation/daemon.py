"""`edge rotation serve`: the classroom-rotation unit — timer, GPIO cues, button, bell schedule, the pages, and
the unit's mDNS announcement (edge.fleet.advertise: one per unit, from the process that serves the board).

What the rotation systemd unit runs. The rotation loop and waitress run in threads; the main thread waits for
SIGTERM/SIGINT and feeds the systemd watchdog only while the rotation loop is alive.
"""

from __future__ import annotations

from edge.config import EdgeConfig
from edge.fleet.advertise import Advertiser, interfaces_for
from edge.rotation.service import RotationService
from edge.rotation.web.server import start_pages
from edge.rotation.web.teacherpin import TeacherPin
from edge.serving.lifecycle import serve_threaded, stop_on_signal


def serve(config: EdgeConfig) -> int:
    with stop_on_signal() as stopping, RotationService(config) as rotation, start_pages(config, rotation) as pages, \
            Advertiser(config, interfaces=interfaces_for(config.web.host)).start(wait=False):  # one per unit, here
        rotation.start()
        teacher = TeacherPin(config)
        pin_note = "" if teacher.current() is not None else \
            " (no teacher PIN yet: the board shows the setup code)" if teacher.awaiting_setup() else \
            " (no teacher_pin set: teacher control is disabled)"
        print(f"edge: pages on {pages.url}/ (board {pages.url}/board, teacher {pages.url}/teacher){pin_note}; "
              f"pins: {rotation.devices.factory_name}", flush=True)
        serve_threaded(stopping, healthy=lambda: rotation.loop_stalled() is None)
    print("edge: stopped", flush=True)
    return 0
