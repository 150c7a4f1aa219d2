"""`make cache-conformance`: the HTTP caching conformance suite (http-tests/cache-tests) against `edge cache serve`
with its default configuration, failing the build when the figures drop below the floors given.

It runs the project's shared tool (../shared/tools/cache-conformance: the suite's origin and the cache on
loopback, the suite, the comparison with the published results of nginx, Varnish, Squid, Traffic Server,
Apache, Caddy and HAProxy), which prints the table, then checks the edge row of its summary.json.

    python .ci/cache_conformance.py --tool ../shared/tools/cache-conformance \
        --min-required 154 --min-total 244 --max-reused 0 [--out DIR] [--timeout 1200] [--summary FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def run_tool(tool: Path, out: Path, timeout: float) -> int:
    """Run the tool in its own process group; on timeout, stop that group (the origin and the cache too)."""
    proc = subprocess.Popen([str(tool), str(out)], start_new_session=True)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"cache-conformance: no result after {timeout:g} s; stopping the run", file=sys.stderr)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return 124


def figures(summary: dict[str, object]) -> tuple[int, int, int, int, int]:
    """(pass, tests, required pass, required tests, reused when forbidden) of the edge row."""
    tests = summary["tests"]
    assert isinstance(tests, list)
    required = [t for t in tests if t["kind"] == "required"]
    passed = sum(1 for t in tests if t["edge"]["result"] == "pass")
    required_passed = sum(1 for t in required if t["edge"]["result"] == "pass")
    reused = sum(1 for t in tests if t["edge"]["harmful"])
    return passed, len(tests), required_passed, len(required), reused


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tool", type=Path, required=True)
    p.add_argument("--out", type=Path, help="keep the results here (default: a new temp directory)")
    p.add_argument("--summary", type=Path, help="check this summary.json of an earlier run instead of running")
    p.add_argument("--min-required", type=int, required=True)
    p.add_argument("--min-total", type=int, required=True)
    p.add_argument("--max-reused", type=int, required=True)
    p.add_argument("--timeout", type=float, default=1200.0)
    a = p.parse_args()
    if a.summary is not None:
        out = a.summary.parent
    elif not a.tool.is_file():
        print(f"cache-conformance: {a.tool} not found: the suite and its tool live beside the project "
              "(../shared); set CACHE_CONFORMANCE to the tool's path", file=sys.stderr)
        return 2
    else:
        out = a.out or Path(tempfile.mkdtemp(prefix="cache-conformance."))
        rc = run_tool(a.tool, out, a.timeout)
        if rc != 0:
            print(f"cache-conformance: the suite run failed (exit {rc}); see {out}", file=sys.stderr)
            return 1
    passed, total, required_passed, required, reused = figures(json.loads((out / "summary.json").read_text()))
    print(f"edge: {passed}/{total} pass (floor {a.min_total}), required {required_passed}/{required} "
          f"(floor {a.min_required}), reused when forbidden {reused} (ceiling {a.max_reused})")
    below = [f"{name} {value} (limit {limit})" for name, value, limit, ok in (
        ("pass", passed, a.min_total, passed >= a.min_total),
        ("required pass", required_passed, a.min_required, required_passed >= a.min_required),
        ("reused when forbidden", reused, a.max_reused, reused <= a.max_reused)) if not ok]
    if below:
        print(f"cache-conformance: FAILED: {'; '.join(below)}; details in {out}/summary.md", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
