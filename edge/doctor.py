"""`edge doctor`: what IT staff check first — config, pin factory, state directory, saved plans, kernel."""

from __future__ import annotations

import argparse
import os
import platform

from edge import __version__
from edge.cli_support import config_from
from edge.cues.pins import factory_name, resolve_pin_factory
from edge.exc import ConfigError
from edge.rotation.store import PlanStore


def _writable(path: os.PathLike[str]) -> str:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        return f"NOT writable ({e.strerror})"
    return "ok" if os.access(path, os.W_OK) else "NOT writable"


def checks(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(name, finding) pairs; a bad config raises ConfigError (the CLI prints it and exits 1)."""
    cfg = config_from(args)
    rows = [("version", f"edge {__version__} on Python {platform.python_version()} ({platform.machine()})"),
            ("config", cfg.source), ("room", f"{cfg.unit.room} / {cfg.unit.school or '-'}")]
    try:
        factory, fallback = resolve_pin_factory(cfg.gpio.pin_factory, cfg.source)
        note = " (fallback: this host has no GPIO)" if fallback else ""
        rows.append(("pin factory", f"{factory_name(factory)}{note}"))
    except ConfigError:
        raise
    rows.append(("wiring", f"red {cfg.gpio.red}, amber {cfg.gpio.amber}, green {cfg.gpio.green}, "
                 f"buzzer {cfg.gpio.buzzer}{' (tonal)' if cfg.gpio.tonal else ''}, button {cfg.gpio.button}"))
    rows.append(("state dir", f"{cfg.state_dir}: {_writable(cfg.state_dir)}"))
    store = PlanStore(cfg.plans_dir)
    broken = store.broken() if cfg.plans_dir.exists() else []
    rows.append(("saved plans", f"{len(store.plans()) if cfg.plans_dir.exists() else 0} ok, {len(broken)} broken"))
    rows.extend(("broken plan", b) for b in broken)
    rows.append(("bell periods", str(len(cfg.rotation.periods))))
    from native import bkt

    rows.append(("BKT kernel", "compiled (Cython)" if bkt.IMPLEMENTATION == "compiled"
                 else "pure-Python twin (the compiled kernel is missing: run `make native`)"))
    rows.append(("district sync", f"to {cfg.district.lrs_url}" if cfg.district.lrs_url
                 else "off (no district.lrs_url; evidence is kept)"))
    from edge.image.status import doctor_rows

    rows.extend(doctor_rows(cfg))
    return rows


def cmd_doctor(args: argparse.Namespace) -> int:
    for name, finding in checks(args):
        print(f"{name:>14}: {finding}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("doctor", parents=[parent], help="report config, pin factory and health")
    p.set_defaults(func=cmd_doctor)
