#!/usr/bin/env python3
"""`make image-smoke`: boot the built image under qemu-system-aarch64 and check it as a classroom would use it.

The image is personalised first (`edge image personalise`, like IT does, with an admin SSH key made for this
run and a known xAPI class key), then booted whole (-M virt, Debian's arm64 kernel and initrd from its boot
partition, root=PARTUUID as on a Pi), with user-mode networking `restrict=on` and host forwards on 127.0.0.1
only. Checks: the first-boot unit applied the card, took the secrets off the FAT partition and ran before the
services; all three services are active (Type=notify: READY=1 was sent); /board, a demo lesson served twice
(the second a cache HIT) and an xAPI POST answer through the forwards, the board shows the teacher setup code;
`edge doctor` passes inside; the cue thread runs at SCHED_FIFO 10; after a clean poweroff the card's FAT
partition holds no secret. Prints the timings and writes a JSON report.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from edge.image.fat import FatVolume  # noqa: E402
from edge.image.mbr import read_layout  # noqa: E402

SERVICES = ("classroom-edge-rotation", "classroom-edge-cache", "classroom-edge-mastery")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Boot:
    def __init__(self, image: Path, work: Path, deadline_s: float) -> None:
        self.image, self.work, self.deadline = image, work, time.monotonic() + deadline_s
        self.ports = {"board": free_port(), "cache": free_port(), "xapi": free_port(), "ssh": free_port()}
        self.console = work / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, kernel: Path, initrd: Path, partuuid: str) -> None:
        fwd = ",".join(f"hostfwd=tcp:127.0.0.1:{self.ports[k]}-:{guest}"
                       for k, guest in (("board", 8000), ("cache", 8080), ("xapi", 8090), ("ssh", 22)))
        cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
               "-nographic", "-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd),
               # TCG emulation is ~10x slower than a Pi: a Python service may need more than systemd's default 90 s
               "-append", f"root=PARTUUID={partuuid} rw rootwait console=ttyAMA0 systemd.show_status=1 "
                          "systemd.default_timeout_start_sec=600",
               "-drive", f"file={self.image},if=virtio,format=raw",
               "-netdev", f"user,id=n0,restrict=on,{fwd}", "-device", "virtio-net-device,netdev=n0"]
        self.t0 = time.monotonic()
        with open(self.console, "wb") as console:  # qemu keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.console.read_text(errors="replace")

    def wait_for(self, what: str, check: Any, step_s: float = 1.0) -> float:
        """Poll `check()` until it is true (bounded by the run's deadline); returns seconds since qemu started."""
        while time.monotonic() < self.deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"smoke: qemu exited ({self.proc.returncode}) while waiting for {what}\n"
                                 + self.log()[-3000:])
            try:
                if check():
                    return time.monotonic() - self.t0
            except OSError:
                pass
            time.sleep(step_s)
        raise SystemExit(f"smoke: timed out waiting for {what}\n" + self.log()[-3000:])

    def ssh(self, key: Path, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", "-i", str(key), "-p", str(self.ports["ssh"]), "-o", "BatchMode=yes",
                               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                               "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "edge-admin@127.0.0.1", command],
                              capture_output=True, text=True, timeout=180)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("image", type=Path)
    p.add_argument("--edge", default=str(Path(sys.executable).with_name("edge")), help="the edge command (host)")
    p.add_argument("--timeout", type=float, default=900, help="seconds for the whole boot and checks")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edge-smoke-", dir=os.environ.get("TMPDIR")))
    report: dict[str, Any] = {"image": str(args.image)}
    boot = None
    try:
        key = work / "admin"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "smoke@ci", "-f", str(key)], check=True)
        class_key = base64.urlsafe_b64encode(os.urandom(18)).decode()
        (work / "smoke.toml").write_text(f'[mastery]\nclass_key = "{class_key}"\n')
        t = time.monotonic()
        subprocess.run([args.edge, "image", "personalise", str(args.image), "--room", "smoke", "--school", "ci",
                        "--ssh-key", f"{key}.pub", "--with", str(work / "smoke.toml"), "--out", str(work)],
                       check=True, capture_output=True, text=True)
        report["personalise_s"] = round(time.monotonic() - t, 2)
        image = work / "edge-ci-smoke.img"
        layout = read_layout(image)
        # a card bigger than the image: the growroot unit must grow the root partition and filesystem into it
        with open(image, "r+b") as f:
            f.truncate(f.seek(0, os.SEEK_END) + (1 << 30))
        fat = FatVolume(image, layout.boot)
        assert class_key in fat.read("classroom-edge.toml").decode()
        names = fat.names()
        kernel, initrd = work / "vmlinuz", work / "initrd.img"
        kernel.write_bytes(fat.read(next(n for n in names if n.startswith("vmlinuz"))))
        initrd.write_bytes(fat.read(next(n for n in names if n.startswith("initrd.img"))))

        boot = Boot(image, work, args.timeout)
        boot.start(kernel, initrd, layout.partuuid(2))
        # sshd comes up after the first-boot unit (its host keys), independently of the three services
        report["ssh_s"] = round(boot.wait_for("ssh as edge-admin", lambda: boot.ssh(key, "true").returncode == 0,
                                              step_s=3), 1)
        active = "systemctl is-active " + " ".join(SERVICES)
        report["services_ready_s"] = round(boot.wait_for(
            "the three services to report READY", lambda: boot.ssh(key, active).returncode == 0, step_s=3), 1)
        report["multi_user_s"] = round(boot.wait_for(
            "multi-user.target", lambda: boot.ssh(key, "systemctl is-active multi-user.target").returncode == 0,
            step_s=3), 1)
        base = "http://127.0.0.1"
        status, _, body = http(f"{base}:{boot.ports['board']}/board")
        assert status == 200 and b"<html" in body.lower(), (status, body[:200])
        # no teacher PIN ships: the board shows the first boot's one-time setup code
        assert b'id="setup-code"' in body, "the station board shows no teacher setup code"
        lesson = f"{base}:{boot.ports['cache']}/demo/index.html"
        s1, h1, b1 = http(lesson, timeout=60)
        s2, h2, b2 = http(lesson)
        assert s1 == s2 == 200 and b1 == b2 and h2.get("X-Cache") == "HIT", (s1, h1, s2, h2)
        auth = "Basic " + base64.b64encode(f"class:{class_key}".encode()).decode()
        stmt = {"id": str(uuid.uuid4()), "actor": {"account": {"homePage": "https://classroom-edge.invalid/students",
                                                              "name": "s-101"}, "objectType": "Agent"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                "object": {"id": "https://lessons.example/fractions/q1", "objectType": "Activity"},
                "result": {"success": True}}
        xs, _, xb = http(f"{base}:{boot.ports['xapi']}/xapi/statements", json.dumps(stmt).encode(),
                         {"Authorization": auth, "X-Experience-API-Version": "1.0.3",
                          "Content-Type": "application/json"}, timeout=60)
        assert xs == 200 and stmt["id"] in xb.decode(), (xs, xb[:300])
        report["xapi_post"] = xs

        checks = {
            "doctor": "edge doctor",
            "services": "for s in " + " ".join(SERVICES) + "; do printf '%s ' $s; "
                        "systemctl show -p ActiveState,SubState --value $s | paste -sd' '; done",
            "provision": "cat /etc/classroom-edge/provision.json",
            "hostname": "hostname",
            # the secret's value (the card keeps a note naming the key it moved)
            "secrets_on_card": f"sudo grep -c -F '{class_key}' /boot/firmware/classroom-edge.toml || true",
            "order": "systemctl show -p ExecMainExitTimestampMonotonic --value classroom-edge-firstboot; "
                     "for s in " + " ".join(SERVICES) + "; do "
                     "systemctl show -p ExecMainStartTimestampMonotonic --value $s; done",
            "analyze": "systemd-analyze time",
            "root_mib": "systemctl is-active classroom-edge-growroot >/dev/null && df -B1M --output=size / | tail -1",
            # each thread's real-time priority and policy (/proc/PID/task/TID/stat fields 40, 41; policy 1 is
            # SCHED_FIFO): the cue thread's is "10 1" (rotation.realtime_priority); sudo: ProtectProc=invisible
            "realtime": "sudo sh -c 'pid=$(systemctl show -p MainPID --value classroom-edge-rotation); "
                        "for t in /proc/$pid/task/*; do cut -d\" \" -f40,41 $t/stat; done'",
        }
        got = {}
        for name, command in checks.items():
            r = boot.ssh(key, command)
            assert r.returncode == 0, (name, r.stdout, r.stderr)
            got[name] = r.stdout.strip()
        report["doctor"] = got["doctor"]
        assert "provisioning: ok, edge-ci-smoke" in got["doctor"], got["doctor"]
        for s in SERVICES:
            assert f"{s} active running" in got["services"], got["services"]
        prov = json.loads(got["provision"])
        assert prov["state"] == "ok" and prov["fault"] is False and prov["hostname"] == "edge-ci-smoke", prov
        assert "mastery.class_key" in prov["removed_from_card"], prov
        assert got["hostname"] == "edge-ci-smoke" and got["secrets_on_card"] == "0", got
        first, *services = (int(x) for x in got["order"].split())
        assert 0 < first <= min(services), ("the first-boot unit finished before the services started", got["order"])
        report["systemd_analyze"] = got["analyze"].splitlines()[0]
        assert any(line.split() == ["10", "1"] for line in got["realtime"].splitlines()), got["realtime"]
        report["cue_thread"] = "SCHED_FIFO 10"
        report["root_fs_mib"] = int(got["root_mib"])
        assert int(got["root_mib"]) * (1 << 20) > layout.root.size + (900 << 20), ("root not grown", got["root_mib"])
        assert read_layout(image).root.end > layout.root.end + (900 << 20)
        boot.ssh(key, "sudo systemctl poweroff")
        assert boot.proc is not None
        boot.proc.wait(timeout=300)
        report["total_s"] = round(time.monotonic() - boot.t0, 1)
        left = FatVolume(image, layout.boot).read("classroom-edge.toml").decode()
        assert class_key not in left and "class_key =" not in left, left
        report["secrets_off_card"] = True
        report["ok"] = True
    except BaseException:
        if boot is not None and boot.proc is not None and boot.proc.poll() is None:
            diag = boot.ssh(key, "systemctl --no-pager status 'classroom-edge-*' ssh; "
                                 "journalctl -b --no-pager -n 300 -u 'classroom-edge-*'")
            report["diagnostics"] = diag.stdout[-20000:] + diag.stderr[-2000:]
            print(report["diagnostics"], file=sys.stderr)
        raise
    finally:
        if boot is not None:
            boot.stop()
            report["console_tail"] = boot.log()[-1500:] if not report.get("ok") else ""
        if args.report:
            args.report.write_text(json.dumps(report, indent=2) + "\n")
        if report.get("ok"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"smoke: kept {work} for a look", file=sys.stderr)
    print(f"smoke: OK — ssh after {report['ssh_s']} s, the three services READY after {report['services_ready_s']} s, "
          f"multi-user.target after {report['multi_user_s']} s (from qemu start); /board 200, demo lesson "
          f"then a cache HIT, xAPI POST {report['xapi_post']}, edge doctor passed, secrets off the card "
          f"(checked after poweroff), the cue thread at {report['cue_thread']}, "
          f"root grown to {report['root_fs_mib']} MiB on a 1 GiB bigger disk; "
          f"{report['systemd_analyze']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
