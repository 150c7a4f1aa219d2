"""A private network namespace per test (`ip netns add`; only `lo`, up, with multicast), so mDNS traffic
never leaves the test: nothing reaches the machine's real interfaces. Processes run inside it with
`ip netns exec` (which execs the command itself: its pid is the command's)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
_seq = itertools.count()


class NetNs:
    def __init__(self) -> None:
        self.name = f"edge-fleet-{os.getpid()}-{next(_seq)}"
        self.procs: list[subprocess.Popen[str]] = []

    def create(self) -> NetNs:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True, timeout=10)
        self.run(["ip", "link", "set", "lo", "up"])
        self.run(["ip", "link", "set", "lo", "multicast", "on"])
        return self

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, cmd: Sequence[str], timeout: float = 60, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(cmd), capture_output=True, text=True, timeout=timeout, check=check,
                              cwd=ROOT, env=env)

    def popen(self, cmd: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.argv(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, env=env)
        self.procs.append(proc)
        return proc

    def python(self, module: str, *args: str) -> subprocess.Popen[str]:
        return self.popen([sys.executable, "-m", module, *args])

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)


def read_json_line(stream: IO[str] | None, deadline_s: float = 20.0) -> dict[str, Any]:
    """The next JSON line a helper printed (bounded: fails after `deadline_s`)."""
    assert stream is not None
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    end = time.monotonic() + deadline_s
    try:
        while (left := end - time.monotonic()) > 0:
            if sel.select(left):
                line = stream.readline()
                if not line:
                    raise AssertionError("helper exited before printing the expected line")
                if line.startswith("{"):
                    doc: dict[str, Any] = json.loads(line)
                    return doc
        raise AssertionError(f"no line from the helper within {deadline_s} s")
    finally:
        sel.close()


def netns_iter() -> Iterator[NetNs]:
    ns = NetNs().create()
    try:
        yield ns
    finally:
        ns.close()
