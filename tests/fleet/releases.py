"""Release wheels for the self-update tests: real, installable wheels of distribution `classroom_edge` whose
`edge` command is a small release: `edge --version`, and `edge serve-health PORT`, which answers
`GET /healthz` the way the services do (`{"status": "ok"|"failing", "version": ...}`, 200 or 503)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

RELEASE = '''
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = {version!r}
HEALTHY = {healthy!r}


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if HEALTHY and self.path == "/healthz" else 503
        body = json.dumps({{"status": "ok" if code == 200 else "failing", "version": VERSION}}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    if sys.argv[1:] == ["--version"]:
        print(f"edge {{VERSION}}")
        return 0
    if sys.argv[1:2] == ["serve-health"]:
        server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Health)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.serve_forever()
    print("usage: edge --version | edge serve-health PORT", file=sys.stderr)
    return 2
'''


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(dest: Path, version: str, healthy: bool = True) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    info = f"classroom_edge-{version}.dist-info"
    files = {
        "edge_test_release/__init__.py": RELEASE.format(version=version, healthy=healthy).encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: classroom-edge\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": b"[console_scripts]\nedge = edge_test_release:main\n",
    }
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = dest / f"classroom_edge-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)  # same bytes every build
    return wheel
