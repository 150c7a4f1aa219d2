"""`edge self-update WHEEL`: install a release next to the running one, switch, restart, verify, roll back.

Layout under the prefix (default /opt/classroom-edge; the units' ExecStart is <prefix>/current/bin/edge):

    releases/<version>/        one venv per release; `.release.json` inside is written last (= complete)
    current -> releases/<v>    relative symlink, replaced atomically (symlink to a temp name, then rename)
    update.json                journal of an update in progress (from, to, state), fsynced
    .lock                      flock: one update at a time

Steps: recover from an interrupted update (below) -> build releases/<new> (venv, pip install the wheel,
`bin/edge --version` must name the new version) -> journal -> switch `current` -> run the restart command
-> wait until every health URL answers 200 with `{"status": "ok"}` (and the new version, when the body
names one) -> on success drop the journal and prune to the last `keep` releases; otherwise switch back,
restart, check the old release's health, delete the failed release and exit 1.

Interrupted (SIGKILL, power cut) at any point, `current` still names a complete release: it is only ever
replaced by rename, and only with a release whose marker is on disk. The next `edge self-update` (or
`edge self-update --recover`) finds the journal and returns to the release that was last confirmed
healthy: an update that was never confirmed does not stay by accident.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig
from edge.exc import EdgeError
from edge.fsutil import atomic_write, fsync_dir

log = logging.getLogger(__name__)
DEFAULT_PREFIX = Path("/opt/classroom-edge")
DEFAULT_RESTART = ("systemctl restart classroom-edge-rotation.service classroom-edge-cache.service "
                   "classroom-edge-mastery.service")
MARKER = ".release.json"
JOURNAL = "update.json"
# PEP 427 file name: {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
WHEEL_NAME = re.compile(r"(?P<dist>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.!+]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl")
DIST = "classroom_edge"
Say = Callable[[str], None]


@dataclass
class UpdateOptions:
    prefix: Path = DEFAULT_PREFIX
    restart_command: Sequence[str] = field(default_factory=lambda: shlex.split(DEFAULT_RESTART))
    health_urls: Sequence[str] = ()
    health_timeout_s: float = 120.0
    keep: int = 2
    pip_args: Sequence[str] | None = None  # default: --no-index --find-links <the wheel's directory>
    python: str = sys.executable
    command_timeout_s: float = 600.0


def health_urls(config: EdgeConfig) -> list[str]:
    """Every service's /healthz on this unit (loopback: the services listen on all addresses or on it)."""
    return [f"http://127.0.0.1:{port}/healthz" for port in (config.web.port, config.cache.port, config.mastery.port)]


def wheel_version(wheel: Path) -> str:
    m = WHEEL_NAME.fullmatch(wheel.name)
    if m is None:
        raise EdgeError(f"{wheel.name} is not a wheel file name (name-version-python-abi-platform.whl)")
    if m["dist"].lower().replace(".", "_") != DIST:
        raise EdgeError(f"{wheel.name} is not a classroom-edge release (distribution {m['dist']!r})")
    if not m["version"][0].isdigit():  # it names a directory: never "..", never hidden
        raise EdgeError(f"{wheel.name}: the version must start with a digit")
    return m["version"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_marker(path: Path, version: str, wheel: Path, installed_at: float) -> None:
    """Mark the release venv at `path` complete (written last; durable). The image build marks the release it
    ships the same way, so the first `edge self-update` on a new card knows what to roll back to."""
    marker = {"version": version, "wheel": wheel.name, "wheel_sha256": _sha256(wheel),
              "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(installed_at))}
    atomic_write(path / MARKER, json.dumps(marker).encode(), mode=0o644)
    fsync_dir(path)


class Releases:
    """The prefix's releases, `current` link and journal."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.dir = prefix / "releases"
        self.current_link = prefix / "current"
        self.journal_path = prefix / JOURNAL

    def path(self, version: str) -> Path:
        return self.dir / version

    def complete(self, version: str) -> bool:
        return (self.path(version) / MARKER).is_file() and (self.path(version) / "bin" / "edge").exists()

    def marker(self, version: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.path(version) / MARKER).read_text())
            return data
        except (OSError, ValueError):
            return {}

    def current(self) -> str | None:
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        return Path(target).name

    def switch(self, version: str) -> None:
        """Point `current` at releases/<version> atomically (a reader sees the old or the new link)."""
        if not self.complete(version):
            raise EdgeError(f"release {version} is not complete: refusing to switch to it")
        tmp = self.prefix / ".current.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.path.join("releases", version), tmp)
        os.replace(tmp, self.current_link)
        fsync_dir(self.prefix)

    def journal(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.journal_path.read_text())
            return data
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"state": "unreadable"}

    def write_journal(self, **state: Any) -> None:
        atomic_write(self.journal_path, json.dumps(state).encode())

    def clear_journal(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.journal_path.unlink()
        fsync_dir(self.prefix)

    def versions(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name for p in self.dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def remove(self, version: str) -> None:
        path = self.path(version)
        # drop the marker first: a crash half-way through leaves an incomplete release, never a "complete" one
        with contextlib.suppress(FileNotFoundError):
            (path / MARKER).unlink()
        shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.prefix.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.prefix / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise EdgeError(f"another self-update is running in {self.prefix}") from None
            yield
        finally:
            os.close(fd)


class Updater:
    def __init__(self, options: UpdateOptions, say: Say = print) -> None:
        self.o = options
        self.r = Releases(options.prefix)
        self.say = say

    # ---- pieces

    def run(self, argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> str:
        try:
            out = subprocess.run(list(argv), capture_output=True, text=True, timeout=self.o.command_timeout_s,
                                 env=env, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EdgeError(f"{what} failed: {e}") from None
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
            raise EdgeError(f"{what} failed (exit {out.returncode}): {' | '.join(tail)}")
        return out.stdout

    def restart(self, version: str) -> None:
        env = {**os.environ, "EDGE_RELEASE": version, "EDGE_PREFIX": str(self.o.prefix)}
        self.run(self.o.restart_command, f"restart command ({shlex.join(self.o.restart_command)})", env)

    def check_health(self, version: str | None) -> tuple[bool, list[str]]:
        """(all healthy, a line per unhealthy URL)."""
        problems = []
        for url in self.o.health_urls:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    body = json.loads(resp.read(65536) or b"{}")
                    status = resp.status
            except urllib.error.HTTPError as e:
                problems.append(f"{url}: HTTP {e.code}")
                continue
            except (urllib.error.URLError, OSError, ValueError) as e:
                problems.append(f"{url}: {getattr(e, 'reason', e)}")
                continue
            if status != 200 or not isinstance(body, dict) or body.get("status") != "ok":
                problems.append(f"{url}: status {body.get('status') if isinstance(body, dict) else body!r}")
            elif version is not None and "version" in body and body["version"] != version:
                problems.append(f"{url}: still version {body['version']} (want {version})")
        return not problems, problems

    def wait_healthy(self, version: str | None, timeout_s: float) -> tuple[bool, list[str], float]:
        start = time.monotonic()
        deadline = start + timeout_s
        while True:
            ok, problems = self.check_health(version)
            if ok or time.monotonic() >= deadline:
                return ok, problems, time.monotonic() - start
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def build(self, wheel: Path, version: str) -> None:
        """releases/<version>: a venv with the wheel installed, checked, then the marker (fsynced)."""
        path = self.r.path(version)
        digest = _sha256(wheel)
        if self.r.complete(version) and self.r.marker(version).get("wheel_sha256") == digest:
            self.say(f"release {version} is already installed in {path}")
            return
        if path.exists():
            self.r.remove(version)
        self.r.dir.mkdir(parents=True, exist_ok=True)
        self.say(f"installing {wheel.name} into {path}")
        # the venv is built at its final path: venvs are not relocatable (scripts name their interpreter)
        self.run([self.o.python, "-m", "venv", str(path)], "creating the venv")
        pip_args = list(self.o.pip_args) if self.o.pip_args is not None else \
            ["--no-index", "--find-links", str(wheel.parent)]
        self.run([str(path / "bin" / "python"), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
                  "--no-warn-script-location", *pip_args, str(wheel)], "pip install")
        out = self.run([str(path / "bin" / "edge"), "--version"], "the new release's `edge --version`").strip()
        if out.split()[-1:] != [version]:
            raise EdgeError(f"the new release says {out!r}, expected version {version}")
        write_marker(path, version, wheel, time.time())
        fsync_dir(self.r.dir)

    def prune(self, keep_always: set[str]) -> None:
        """Keep the newest `keep` complete releases (always the current one and `keep_always`)."""
        versions = self.r.versions()
        for v in versions:
            if not self.r.complete(v) and v not in keep_always:
                self.say(f"removing incomplete release {v}")
                self.r.remove(v)
        complete = sorted((v for v in self.r.versions() if self.r.complete(v)),
                          key=lambda v: self.r.marker(v).get("installed_at", ""), reverse=True)
        kept = list(dict.fromkeys([*(v for v in complete if v in keep_always), *complete]))[:max(self.o.keep, 1)]
        for v in complete:
            if v not in kept and v not in keep_always:
                self.say(f"removing old release {v}")
                self.r.remove(v)

    # ---- the operations

    def recover(self, restart: bool = True) -> str | None:
        """Finish an interrupted update: back to the last release confirmed healthy. Returns what was done."""
        tmp = self.r.prefix / ".current.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        journal = self.r.journal()
        if journal is None:
            return None
        previous, target = journal.get("from"), journal.get("to")
        current = self.r.current()
        if isinstance(previous, str) and self.r.complete(previous):
            if current != previous:
                self.r.switch(previous)
                self.say(f"recovered an interrupted update to {target}: back to {previous}")
                if restart:
                    self.restart(previous)
            else:
                self.say(f"recovered an interrupted update to {target}: {previous} was still current")
        elif current is not None and self.r.complete(current):
            self.say(f"interrupted update to {target} had no previous release: keeping {current}")
        else:
            raise EdgeError(f"an interrupted update left no complete release in {self.r.dir}; "
                            "install one with `edge self-update WHEEL`")
        if isinstance(target, str) and target != self.r.current() and not self.r.complete(target):
            self.r.remove(target)
        self.r.clear_journal()
        return f"rolled back to {self.r.current()}"

    def update(self, wheel: Path) -> str:
        wheel = wheel.resolve()
        version = wheel_version(wheel)
        if not wheel.is_file():
            raise EdgeError(f"{wheel}: no such file")
        with self.r.lock():
            self.recover()
            previous = self.r.current()
            if previous == version and self.r.complete(version):
                self.say(f"{version} is already the current release: nothing to do")
                return "unchanged"
            if previous is not None and not self.r.complete(previous):
                self.say(f"warning: the current link names {previous}, which is not a complete release")
                previous = None
            self.build(wheel, version)
            self.r.write_journal(state="switching", **{"from": previous, "to": version},
                                 started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self.r.switch(version)
            self.say(f"current -> {version} (was {previous or 'none'}); restarting the services")
            problems: list[str]
            try:
                self.restart(version)
            except EdgeError as e:
                ok, problems = False, [str(e)]
            else:
                ok, problems, took = self.wait_healthy(version, self.o.health_timeout_s)
            if ok:
                self.r.clear_journal()
                self.say(f"{version} is healthy after {took:.1f} s")
                self.prune({version, *([previous] if previous else [])})
                return "updated"
            reason = "; ".join(problems[:5])
            if previous is None:
                self.r.clear_journal()
                raise EdgeError(f"release {version} is not healthy ({reason}) and there is no previous release "
                                "to roll back to")
            self.say(f"{version} is not healthy ({reason}): rolling back to {previous}")
            self.r.write_journal(state="rolling-back", **{"from": previous, "to": version})
            self.r.switch(previous)
            back_ok, back_problems = False, ["restart failed"]
            try:
                self.restart(previous)
                back_ok, back_problems, _ = self.wait_healthy(None, self.o.health_timeout_s)
            except EdgeError as e:
                back_problems = [str(e)]
            self.r.clear_journal()
            self.r.remove(version)
            after = "healthy again" if back_ok else f"NOT healthy either: {'; '.join(back_problems[:5])}"
            raise EdgeError(f"release {version} was not healthy within {self.o.health_timeout_s:g} s ({reason}); "
                            f"rolled back to {previous}, which is {after}")

    def status(self) -> dict[str, Any]:
        return {"prefix": str(self.r.prefix), "current": self.r.current(),
                "releases": [{"version": v, "complete": self.r.complete(v), **self.r.marker(v)}
                             for v in self.r.versions()],
                "interrupted_update": self.r.journal()}
