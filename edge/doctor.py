"""`edge doctor`: the technician's checklist. Each check is OK, WARN or FAIL with a one-line fix; `--json`; the
exit status is 1 when anything FAILs.

Checks: the config, the pin factory and that the pins are free (or held by the rotation service), the compiled
kernel, the state and cache directories, disk space, the clock, the services' /healthz, the district LRS
(reachable, and its certificate valid for a while yet), saved plans and bell periods, the district sync.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import urlsplit

from edge import __version__
from edge.cli_support import SubParsers, config_from
from edge.config import EdgeConfig
from edge.cues.driver import open_devices
from edge.cues.pins import factory_name, resolve_pin_factory
from edge.host import clock_synced, disk_usage
from edge.image.status import read_status
from edge.rotation.periods import saved_periods
from edge.rotation.store import PlanStore, slug
from edge.rotation.web.teacherpin import TeacherPin
from edge.serving.health import writable_check
from edge.sync.status import sync_status

Level = Literal["OK", "WARN", "FAIL"]
TIMEOUT_S = 3.0
CERT_WARN_DAYS = 14
DISK_WARN, DISK_FAIL = 0.10, 0.02


@dataclass(frozen=True)
class Finding:
    name: str
    level: Level
    detail: str
    fix: str = ""


def _ok(name: str, detail: str) -> Finding:
    return Finding(name, "OK", detail)


def _healthz(port: int) -> tuple[int, dict[str, object]] | None:
    """(status, body) of http://127.0.0.1:port/healthz, None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read())
        except ValueError:
            return e.code, {}
    except (OSError, ValueError):
        return None


def check_services(cfg: EdgeConfig) -> Iterator[Finding]:
    for name, port, unit in (("rotation", cfg.web.port, "classroom-edge-rotation"),
                             ("cache", cfg.cache.port, "classroom-edge-cache"),
                             ("mastery", cfg.mastery.port, "classroom-edge-mastery")):
        got = _healthz(port)
        if got is None:
            yield Finding(f"{name} service", "FAIL", f"nothing answers on port {port}",
                          f"systemctl status {unit} (journalctl -u {unit}); on a laptop: edge run")
        elif got[0] != 200:
            reasons = got[1].get("reasons") if isinstance(got[1], dict) else None
            yield Finding(f"{name} service", "FAIL", f"/healthz answers {got[0]}: {reasons or got[1]}",
                          f"journalctl -u {unit}")
        else:
            yield _ok(f"{name} service", f"healthy on port {port}")


def check_gpio(cfg: EdgeConfig, rotation_running: bool) -> Iterator[Finding]:
    factory, fallback = resolve_pin_factory(cfg.gpio.pin_factory, cfg.source)  # warns (edge: warning: ...)
    if fallback:
        yield Finding("pin factory", "WARN", f"{factory_name(factory)} (fallback: this host has no GPIO)",
                      "on a Pi: the lgpio pin library must be installed and /dev/gpiochip* readable (gpio group)")
    else:
        yield _ok("pin factory", factory_name(factory))
    wiring = (f"red {cfg.gpio.red}, amber {cfg.gpio.amber}, green {cfg.gpio.green}, buzzer {cfg.gpio.buzzer}"
              f"{' (tonal)' if cfg.gpio.tonal else ''}, button {cfg.gpio.button}")
    if rotation_running:
        yield _ok("pins", f"{wiring}: held by the rotation service")
        return
    try:
        open_devices(cfg.gpio, cfg.source).close()
    except Exception as e:  # GPIOPinInUse, a pin the board does not have, a permission problem
        yield Finding("pins", "FAIL", f"{wiring}: cannot claim them: {e}",
                      "another program holds these pins: stop it, or change [gpio] in edge.toml")
    else:
        yield _ok("pins", f"{wiring}: free")


def check_kernel() -> Finding:
    from edge_native import bkt

    if bkt.IMPLEMENTATION == "compiled":
        return _ok("BKT kernel", "compiled (Cython)")
    return Finding("BKT kernel", "WARN", "pure-Python twin (the compiled kernel is missing)",
                   "reinstall the release (edge self-update) or, in a checkout, run `make native`")


def check_storage(cfg: EdgeConfig) -> Iterator[Finding]:
    for name, path in (("state dir", cfg.state_dir), ("cache dir", cfg.cache_dir)):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            yield Finding(name, "FAIL", f"{path}: cannot create it ({e.strerror})", f"check the mount of {path}")
            continue
        problem = writable_check(path)()
        yield (Finding(name, "FAIL", problem, f"check the mount and permissions of {path}") if problem
               else _ok(name, f"{path}: writable"))
    usage = disk_usage(cfg.state_dir)
    if usage is None:
        yield Finding("disk space", "WARN", "cannot read the file system's size", "")
        return
    free, total = usage
    share = free / total if total else 1.0
    text = f"{free / 1e9:.1f} GB free of {total / 1e9:.1f} GB ({share:.0%})"
    if share < DISK_FAIL:
        yield Finding("disk space", "FAIL", text, "edge cache check; lower cache.max_bytes; remove old releases")
    elif share < DISK_WARN:
        yield Finding("disk space", "WARN", text, "lower cache.max_bytes or use a larger card")
    else:
        yield _ok("disk space", text)


def check_clock() -> Finding:
    synced = clock_synced()
    if synced:
        return _ok("clock", "synchronised (NTP)")
    return Finding("clock", "WARN", "not synchronised" if synced is False else "cannot tell if it is synchronised",
                   "bells start plans on the wall clock: check chrony (chronyc tracking) and the network's NTP")


def check_district(cfg: EdgeConfig) -> Iterator[Finding]:
    url = cfg.district.lrs_url
    if not url:
        yield _ok("district sync", "off (no district.lrs_url; evidence is kept)")
        return
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as raw:
            if parts.scheme == "https":
                ctx = ssl.create_default_context(cafile=cfg.district.ca_file or None)
                try:
                    with ctx.wrap_socket(raw, server_hostname=host) as tls:
                        cert = tls.getpeercert() or {}
                except ssl.SSLCertVerificationError as e:
                    yield Finding("district certificate", "FAIL", f"{host}: {e.verify_message}",
                                  "the district's CA goes in district.ca_file; check the LRS's certificate")
                    return
                not_after = ssl.cert_time_to_seconds(str(cert["notAfter"])) if "notAfter" in cert else None
                days = None if not_after is None else (not_after - time.time()) / 86400
                if days is not None and days < CERT_WARN_DAYS:
                    yield Finding("district certificate", "WARN", f"{host}: expires in {days:.0f} days",
                                  "ask the district to renew the LRS certificate")
                else:
                    yield _ok("district certificate", f"{host}: valid" + (f" for {days:.0f} more days" if days else ""))
    except OSError as e:
        yield Finding("district sync", "WARN", f"to {url}: cannot reach {host}:{port} ({e.strerror or e})",
                      "evidence is kept and sent later; check the school's network and district.lrs_url")
        return
    status = sync_status(cfg)
    if status.get("quarantined"):
        yield Finding("district sync", "WARN", f"to {url}: {status['quarantined']} statement(s) quarantined",
                      "edge sync status shows why; edge sync requeue sends them again")
    else:
        yield _ok("district sync", f"to {url}: reachable, backlog {status.get('backlog', 0)}")


def check_plans(cfg: EdgeConfig) -> Iterator[Finding]:
    store = PlanStore(cfg.plans_dir)
    plans = store.plans() if cfg.plans_dir.exists() else []
    broken = store.broken() if cfg.plans_dir.exists() else []
    yield _ok("saved plans", f"{len(plans)} ok, {len(broken)} broken")
    for bad in broken:
        yield Finding("broken plan", "WARN", bad.message, f"edge rotation delete {bad.name} (or fix and save it)")
    periods = [*cfg.rotation.periods, *saved_periods(cfg.state_dir)]
    saved = saved_periods(cfg.state_dir)
    yield _ok("bell periods", f"{len(cfg.rotation.periods)} in {cfg.source}, {len(saved)} set on the teacher page")
    startable = {slug(p.name) for p in plans}
    for p in periods:
        if slug(p.plan) not in startable:
            yield Finding("bell period", "WARN", f"{p.name or p.plan} starts {p.plan!r}, which is not a saved plan",
                          "save that plan or change the period on the teacher page")


def check_provisioning(cfg: EdgeConfig) -> Iterator[Finding]:
    """What the first-boot step made of the card (edge.image.status), on a unit installed from the image."""
    status = read_status(cfg.config_dir)
    if status is None:
        return
    if status.get("fault"):
        yield Finding("provisioning", "FAIL", f"FAULT: the card file was rejected, the previous config is in use: "
                      f"{status.get('reason')}", "fix classroom-edge.toml on the card's boot partition and reboot")
    elif status.get("state") == "unprovisioned":
        yield Finding("provisioning", "WARN", f"not personalised (no {status.get('card')} seen yet); running on "
                      "the base config", "edge image personalise writes the card file (README: SD-card image)")
    else:
        yield _ok("provisioning", f"ok, {status.get('hostname')} from {status.get('card')} "
                  f"(applied {status.get('applied_at')})")


def check_teacher_pin(cfg: EdgeConfig) -> Finding:
    """Whether a teacher can log in: IT's PIN, one set on the unit, or the setup code waiting on the board."""
    teacher = TeacherPin(cfg)
    pin = teacher.current()
    if pin is not None:
        return _ok("teacher PIN", "set in edge.toml" if pin.source == "config" else "set on the unit by a teacher")
    if teacher.awaiting_setup() is not None:
        return Finding("teacher PIN", "WARN", "not set yet: the station board shows the one-time setup code",
                       "a teacher opens /teacher and enters the code with a new PIN")
    return Finding("teacher PIN", "WARN", "none: teacher control is disabled",
                   f"set teacher_pin in [web] of {cfg.source}")


def checks(args: argparse.Namespace) -> list[Finding]:
    """Every finding, in the order a technician reads them (an invalid config is `edge: error:` naming the key:
    nothing else can be checked without it)."""
    cfg = config_from(args)
    findings = [_ok("version", f"edge {__version__} on Python {platform.python_version()} ({platform.machine()})"),
                _ok("config", cfg.source), _ok("room", f"{cfg.unit.room} / {cfg.unit.school or '-'}")]
    services = list(check_services(cfg))
    findings += check_gpio(cfg, rotation_running=services[0].level == "OK")
    findings.append(check_kernel())
    findings += check_storage(cfg)
    findings.append(check_clock())
    findings += services
    findings += check_district(cfg)
    findings += check_plans(cfg)
    findings += check_provisioning(cfg)
    findings.append(check_teacher_pin(cfg))
    return findings


def cmd_doctor(args: argparse.Namespace) -> int:
    findings = checks(args)
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=1))
    else:
        for f in findings:
            print(f"{f.level:<4} {f.name:>20}: {f.detail}")
            if f.fix and f.level != "OK":
                print(f"{'':>26}fix: {f.fix}")
    failed = [f for f in findings if f.level == "FAIL"]
    if failed and not args.json:
        print(f"\n{len(failed)} check(s) FAILED")
    return 1 if failed else 0


def register(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("doctor", parents=[parent], help="the technician's checklist (OK/WARN/FAIL, exit 1 on FAIL)")
    p.add_argument("--json", action="store_true", help="the findings as one JSON array")
    p.set_defaults(func=cmd_doctor)

