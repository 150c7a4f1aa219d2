"""`edge doctor`, the technician's checklist: each check failing in turn under real conditions (a read-only and a
full file system, the kernel's twin, services down and up, an unreachable district, an untrusted and an expiring
certificate, broken plans and stranded bell periods), `--json`, exit 1 on FAIL, and no raw Python warnings."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.mounts import tmpfs
from tests.net import free_port, wait_listening


def doctor(cfg: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, str]]]:
    base = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}  # no GPIO here: the fallback
    proc = subprocess.run([sys.executable, "-m", "edge", "doctor", "--json", "--config", str(cfg), *extra],
                          capture_output=True, text=True, timeout=90, env={**base, **(env or {})})
    assert "Traceback" not in proc.stderr and ".py:" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def by_name(findings: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {f["name"]: f for f in findings}


def write_config(tmp_path: Path, state: Path | None = None, **sections: str) -> Path:
    cfg = tmp_path / "edge.toml"
    body = f'[unit]\nstate_dir = "{state or tmp_path / "state"}"\n'
    for name, text in sections.items():
        body += f"[{name}]\n{text}\n"
    ports = {"web": free_port(), "cache": free_port(), "mastery": free_port()}
    for name, port in ports.items():
        if name not in sections:
            body += f'[{name}]\nhost = "127.0.0.1"\nport = {port}\n'
    cfg.write_text(body)
    return cfg


def test_a_laptop_with_nothing_running_fails_only_the_services(tmp_path: Path) -> None:
    code, findings = doctor(write_config(tmp_path))
    failed = sorted(f["name"] for f in findings if f["level"] == "FAIL")
    assert code == 1 and failed == ["cache service", "mastery service", "rotation service"]
    found = by_name(findings)
    assert found["pin factory"]["level"] == "WARN" and "fallback" in found["pin factory"]["detail"]
    assert found["pins"]["level"] == "OK" and found["BKT kernel"]["detail"] == "compiled (Cython)"
    assert found["district sync"]["detail"].startswith("off")
    assert all(f["fix"] for f in findings if f["level"] != "OK")


def test_the_twin_kernel_is_a_warning(tmp_path: Path) -> None:
    _, findings = doctor(write_config(tmp_path), env={"EDGE_NO_EXTENSIONS": "1"})
    kernel = by_name(findings)["BKT kernel"]
    assert kernel["level"] == "WARN" and "twin" in kernel["detail"] and "make native" in kernel["fix"]


def test_a_read_only_and_a_full_state_dir_fail(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        found = by_name(doctor(write_config(tmp_path, state=ro))[1])
        assert found["state dir"]["level"] == "FAIL" and "not writable" in found["state dir"]["detail"]
    with tmpfs(tmp_path / "full", size="1m", fill_to_kb=1024) as full:
        found = by_name(doctor(write_config(tmp_path, state=full))[1])
        assert found["disk space"]["level"] == "FAIL" and "0%" in found["disk space"]["detail"]


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[Path]:
    """The whole unit running (`edge run`: pages, cache, mastery) on loopback ports of its config."""
    cfg = write_config(tmp_path)
    web = int(cfg.read_text().split("[web]")[1].split("port = ")[1].split()[0])
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--no-demo", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})
    try:
        wait_listening(web, proc)
        yield cfg
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_running_unit_passes(unit: Path) -> None:
    code, findings = doctor(unit)
    found = by_name(findings)
    assert [f["name"] for f in findings if f["level"] == "FAIL"] == []
    assert code == 0
    assert found["pins"]["detail"].endswith("held by the rotation service")
    for service in ("rotation", "cache", "mastery"):
        assert found[f"{service} service"]["level"] == "OK"


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _tls_server(tmp_path: Path, days: int) -> tuple[HTTPServer, int]:
    key, cert = tmp_path / f"key{days}.pem", tmp_path / f"cert{days}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", str(days), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server = HTTPServer(("127.0.0.1", 0), _Ok)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


def test_the_district_unreachable_untrusted_and_expiring(tmp_path: Path) -> None:
    closed = free_port()
    found = by_name(doctor(write_config(tmp_path, district=f'lrs_url = "http://127.0.0.1:{closed}/xapi"'))[1])
    assert found["district sync"]["level"] == "WARN" and "cannot reach" in found["district sync"]["detail"]
    server, port = _tls_server(tmp_path, days=5)
    try:
        found = by_name(doctor(write_config(tmp_path, district=f'lrs_url = "https://127.0.0.1:{port}/xapi"'))[1])
        assert found["district certificate"]["level"] == "FAIL"  # self-signed: not trusted
        cert = tmp_path / "cert5.pem"
        found = by_name(doctor(write_config(
            tmp_path, district=f'lrs_url = "https://127.0.0.1:{port}/xapi"\nca_file = "{cert}"'))[1])
        cert_finding = found["district certificate"]
        assert cert_finding["level"] == "WARN" and "expires in" in cert_finding["detail"]
        assert found["district sync"]["level"] == "OK"
    finally:
        server.shutdown()


def test_broken_plans_and_stranded_periods_warn(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "plans").mkdir(parents=True)
    (state / "plans" / "bad.toml").write_text('[plan]\nname = "Bad"\nwork_minutes = inf\n')
    (state / "periods.json").write_text(json.dumps({"version": 1, "periods": [
        {"name": "P1", "plan": "Math", "days": ["mon"], "start": "09:00"},
        {"name": "P2", "plan": "Math", "days": ["tue"], "start": "10:00"}]}))
    found = doctor(write_config(tmp_path, state=state))[1]
    names = [(f["name"], f["level"]) for f in found]
    assert ("broken plan", "WARN") in names and names.count(("bell period", "WARN")) == 2
    assert "2 set on the teacher page" in by_name(found)["bell periods"]["detail"]


def test_the_text_form_has_no_raw_warning(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    proc = subprocess.run([sys.executable, "-m", "edge", "doctor", "--config", str(write_config(tmp_path))],
                          capture_output=True, text=True, timeout=90, env=env)
    assert proc.returncode == 1 and "3 check(s) FAILED" in proc.stdout
    assert "Warning" not in proc.stderr and ".py:" not in proc.stderr  # no `file.py:12: NoGPIOWarning: ...`
    assert "edge: warning: no GPIO on this host" in proc.stderr and "PinFactoryFallback" not in proc.stderr
    assert "pin factory: MockFactory (fallback: this host has no GPIO)" in proc.stdout
