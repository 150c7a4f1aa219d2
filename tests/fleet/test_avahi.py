"""Coexistence with avahi-daemon (Raspberry Pi OS runs one): avahi and our python-zeroconf advertiser share
UDP 5353 on the same host, inside a network namespace the test made, and each sees the other's records.

avahi runs with a private D-Bus system bus (so `avahi-browse` can ask it) and, in its own mount namespace,
a services directory holding one static probe service. Needs root (namespaces) and Debian's avahi-daemon,
avahi-utils and dbus (`make fleet-deps`); without them the test FAILS on purpose."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.netns import NetNs, netns_iter, read_json_line
from tests.fleet.test_discovery import ID1, discover, start_unit

AVAHI_CONF = """[server]
host-name=avahi-probe-host
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=yes
publish-hinfo=no
publish-workstation=no
[reflector]
enable-reflector=no
[rlimits]
"""
PROBE_SERVICE = """<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group>
  <name>avahi coexistence probe</name>
  <service><type>_edge-avahi-probe._tcp</type><port>9999</port><txt-record>from=avahi</txt-record></service>
</service-group>
"""
DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_type="method_call"/>
    <allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
"""
RESOLVE_PROBE = """
import asyncio, json
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
async def main():
    async with AsyncZeroconf(ip_version=IPVersion.V4Only) as azc:
        t = "_edge-avahi-probe._tcp.local."
        info = AsyncServiceInfo(t, "avahi coexistence probe." + t)
        ok = await info.async_request(azc.zeroconf, 3000)
        print(json.dumps({"ok": ok, "port": info.port, "server": info.server,
                          "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()}}))
asyncio.run(main())
"""


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `make fleet-deps` (Debian's avahi-daemon, avahi-utils, dbus)")


class Avahi:
    def __init__(self, ns: NetNs, tmp: Path) -> None:
        self.bus = tmp / "bus"
        (tmp / "services").mkdir()
        (tmp / "services" / "probe.service").write_text(PROBE_SERVICE)
        (tmp / "avahi.conf").write_text(AVAHI_CONF)
        (tmp / "dbus.conf").write_text(DBUS_CONF.format(bus=self.bus))
        self.log = tmp / "avahi.log"
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={self.bus}"}
        self.dbus = subprocess.Popen(["dbus-daemon", f"--config-file={tmp / 'dbus.conf'}", "--nofork"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.bus.exists():
                break
            time.sleep(0.05)
        # own mount namespace: our static services directory over /etc/avahi/services, for avahi alone
        script = (f"mount --bind {tmp / 'services'} /etc/avahi/services && exec ip netns exec {ns.name} "
                  f"avahi-daemon -f {tmp / 'avahi.conf'} --no-drop-root --no-chroot --no-rlimits")
        with self.log.open("w") as log:
            self.daemon = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdout=log, stderr=log,
                                           env=self.env)
        deadline = time.monotonic() + 20
        while "successfully established" not in self.log.read_text():
            assert self.daemon.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def browse(self, service_type: str) -> list[list[str]]:
        out = subprocess.run(["avahi-browse", "-r", "-t", "-p", service_type], capture_output=True, text=True,
                             timeout=30, env=self.env)
        assert out.returncode == 0, out.stderr
        return [line.split(";") for line in out.stdout.splitlines()]

    def close(self) -> None:
        for proc in (self.daemon, self.dbus):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def avahi(tmp_path: Path) -> Iterator[tuple[NetNs, Avahi]]:
    need("avahi-daemon", "avahi-browse", "dbus-daemon", "unshare")
    for ns in netns_iter():
        daemon = Avahi(ns, tmp_path)
        try:
            yield ns, daemon
        finally:
            daemon.close()


def test_advertiser_and_avahi_daemon_share_the_host(avahi: tuple[NetNs, Avahi]) -> None:
    ns, daemon = avahi
    unit = start_unit(ns, "Room 12", ID1, "18000,18080,18090")  # ready, no error, with avahi on port 5353

    # our responder answers python-zeroconf browsers with avahi running ...
    (found,) = discover(ns, "--timeout", "2", "--no-health")
    assert (found["id"], found["ports"]["web"]) == (ID1, 18000)

    # ... avahi's cache holds our service, resolved with its TXT (avahi saw our announcements)
    resolved = [r for r in daemon.browse("_classroom-edge._tcp") if r[0] == "="]
    assert len(resolved) == 1, resolved
    assert resolved[0][6:9] == [f"ce-{ID1}.local", "127.0.0.1", "18000"]
    assert f'"id={ID1}"' in resolved[0][9] and '"board=18000"' in resolved[0][9]

    # ... and avahi's own service still resolves through python-zeroconf (avahi answers as before)
    out = ns.run([sys.executable, "-c", RESOLVE_PROBE])
    probe = json.loads(out.stdout)
    assert probe == {"ok": True, "port": 9999, "server": "avahi-probe-host.local.", "txt": {"from": "avahi"}}

    # goodbye packets reach avahi too: it drops our service at once
    unit.send_signal(signal.SIGTERM)
    assert read_json_line(unit.stdout) == {"stopped": True}
    deadline = time.monotonic() + 20  # without the goodbye: the TTL, 75 s
    while any(r[0] in "+=" for r in daemon.browse("_classroom-edge._tcp")):
        assert time.monotonic() < deadline, "avahi still lists the unit after its goodbye"
        time.sleep(0.2)
    log = daemon.log.read_text()
    assert "conflict" not in log.lower(), log  # our host name (ce-<id>.local) never collides with avahi's
