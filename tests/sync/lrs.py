"""A real xAPI LRS for tests and benchmarks: Ralph 5.1 in its own venv (.lrs/venv, kept out of the product).

    python -m tests.sync.lrs          # create .lrs/venv if missing (the Makefile's `lrs` target runs this)

`Ralph(workdir).start()` runs it on 127.0.0.1:<free port> in its own process group; `stop()` kills the group.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("EDGE_LRS_VENV", ROOT / ".lrs" / "venv"))
PY = VENV / "bin" / "python"
REQUIREMENTS = ("ralph-malph[cli,backend-fs,lrs]>=5.1,<5.2", "requests")
STAMP = VENV / ".installed"
SERVE = Path(__file__).resolve().parent / "ralph_serve.py"
USER, PASSWORD = "edge", "edge-test-password"
INSTALL_HINT = "python3 -m tests.sync.lrs  (or: make lrs)"


class LRSUnavailable(RuntimeError):
    pass


def ensure_venv() -> Path:
    """Create .lrs/venv with Ralph if it is missing; raise LRSUnavailable with the reason if that fails."""
    if STAMP.exists() and PY.exists():
        return PY
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=120)
        subprocess.run([str(PY), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        out = getattr(e, "stderr", b"") or b""
        raise LRSUnavailable(
            f"cannot create the Ralph LRS venv at {VENV}: {e}\n{out.decode(errors='replace')[-2000:]}\n"
            f"create it with: {INSTALL_HINT}") from None
    STAMP.write_text(" ".join(REQUIREMENTS) + "\n")
    return PY




class Ralph:
    """One Ralph server on a data directory; restartable on the same port (data kept)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "ralph.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/xAPI"

    @property
    def auth(self) -> str:
        return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def start(self, timeout_s: float = 30.0) -> Ralph:
        py = ensure_venv()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(py), str(SERVE), str(self.port), str(self.data_dir), USER, PASSWORD],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LRSUnavailable(f"Ralph exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__lbheartbeat__", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise LRSUnavailable(f"Ralph did not start within {timeout_s} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    # -- reading back what the LRS holds ------------------------------------------------------------------
    def request(self, path: str, *, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers={
            "Authorization": self.auth, "X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def statement_ids(self) -> list[str]:
        """Every statement id the LRS returns through GET /statements (paged via `more`), duplicates kept."""
        ids: list[str] = []
        path = "/statements?limit=1000"
        while path:
            status, body = self.request(path)
            if status != 200:
                raise AssertionError(f"GET statements: {status} {body}")
            ids += [s["id"] for s in body["statements"]]
            more = body.get("more") or ""
            path = more[more.index("/statements"):] if more else ""
        return ids

    def stored_lines(self) -> list[dict[str, Any]]:
        """The raw statements in Ralph's file (to count duplicates independently of its GET)."""
        f = self.data_dir / "fs_lrs.jsonl"
        if not f.exists():
            return []
        return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


def main() -> int:
    try:
        ensure_venv()
    except LRSUnavailable as e:
        print(e, file=sys.stderr)
        return 1
    print(f"Ralph LRS venv ready: {VENV}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
