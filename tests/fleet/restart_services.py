"""The restart command of the self-update tests (what `systemctl restart ...` is on a unit): stop the services
it started last time, start `<EDGE_PREFIX>/current/bin/edge serve-health PORT` for each port, record the pids,
and return once they listen (what systemctl does for Type=notify units).

    python -m tests.fleet.restart_services --state DIR --ports P1,P2,P3 [--kill-parent]

--kill-parent SIGKILLs the calling `edge self-update` right after the switch (an interrupted update)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def stop(pids_file: Path) -> None:
    if not pids_file.exists():
        return
    pids = [int(p) for p in pids_file.read_text().split()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for pid in pids:
        for _ in range(100):  # bounded: 5 s, then SIGKILL
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    pids_file.unlink()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--ports", required=True)
    ap.add_argument("--kill-parent", action="store_true")
    args = ap.parse_args()
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    if args.kill_parent:
        os.kill(os.getppid(), signal.SIGKILL)
        return
    stop(state / "pids")
    edge = Path(os.environ["EDGE_PREFIX"]) / "current" / "bin" / "edge"
    pids = []
    with (state / "services.log").open("a") as log:
        for port in args.ports.split(","):
            proc = subprocess.Popen([str(edge), "serve-health", port], stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            pids.append(str(proc.pid))
    (state / "pids").write_text(" ".join(pids))
    # like `systemctl restart` of Type=notify units, return once the services listen (bounded: 60 s)
    for port in args.ports.split(","):
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", int(port)), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
    with (state / "restarts.log").open("a") as f:
        f.write(os.environ.get("EDGE_RELEASE", "?") + "\n")


if __name__ == "__main__":
    main()
