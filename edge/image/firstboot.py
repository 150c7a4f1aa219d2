"""`edge image firstboot`: provision the unit from its card, at every boot, before the services start.

1. The card file (`/boot/firmware/classroom-edge.toml`, written by `edge image personalise` or by hand) is
   validated with the same loader as edge.toml. Valid: it is installed as /etc/classroom-edge/edge.toml
   (0640 root:classroom-edge) with the secrets it does not carry kept from the previous config or generated
   here. Invalid: the previous config stays, the status file records the fault and the reason (the journal
   gets the reason too). Either way the file on the card is rewritten WITHOUT its secrets (a file that is
   not even TOML is moved off the card entirely), since anyone who pulls the card can read the FAT partition.
   The unit remembers the hash of what it left on the card: editing the file re-provisions at the next boot.
2. Every boot: a config exists (a base one with generated secrets if the unit was never personalised) with
   the right owner and mode, the teacher's one-time setup code exists, the hostname is edge-<school>-<room>,
   SSH host keys exist (the image ships none: every card must get its own), and where cloud-init is not
   installed, the IT admins' SSH keys from the card's `user-data` are installed for `edge-admin`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from edge.config import EdgeConfig, parse_config
from edge.exc import ConfigError, EdgeError
from edge.fsutil import atomic_write
from edge.image.status import SETUP_FILE, STATUS_FILE, read_status
from edge.image.unitfile import (
    ADMIN_USER,
    CARD_FILE,
    SECRET_KEYS,
    USER_DATA,
    check_card_config,
    hostname_for,
    merge,
    slug,
    without_secrets,
)

log = logging.getLogger("edge.image.firstboot")

SERVICE_GROUP = "classroom-edge"
# secrets the unit makes itself when the card does not give them (never a default, never on a card)
GENERATED = (("mastery", "class_key"), ("web", "api_token"))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Unit:
    """Where things are: `root` is "/" on a unit, a directory tree in tests (then nothing live is touched)."""

    root: Path = Path("/")

    @property
    def live(self) -> bool:
        return self.root == Path("/")

    @property
    def boot(self) -> Path:
        return self.root / "boot/firmware"

    @property
    def card(self) -> Path:
        return self.boot / CARD_FILE

    @property
    def etc(self) -> Path:
        return self.root / "etc/classroom-edge"

    @property
    def config(self) -> Path:
        return self.etc / "edge.toml"

    @property
    def rejected(self) -> Path:
        return self.etc / "rejected-card.toml"

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


def _gid(unit: Unit, group: str) -> int | None:
    try:
        for line in unit.path("/etc/group").read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == group:
                return int(fields[2])
    except OSError:
        pass
    return None


def _prefix_args(unit: Unit) -> list[str]:
    return [] if unit.live else ["--prefix", str(unit.root)]


def ensure_group(unit: Unit, group: str) -> int:
    gid = _gid(unit, group)
    if gid is None:
        subprocess.run(["groupadd", "--system", *_prefix_args(unit), group], check=True, capture_output=True)
        gid = _gid(unit, group)
        if gid is None:
            raise EdgeError(f"groupadd {group} did not add the group")
        log.info("added group %s (gid %d)", group, gid)
    return gid


def _write_private(path: Path, data: bytes, mode: int, gid: int) -> None:
    """Atomically replace `path`, then set owner root:gid and mode (re-applied every boot, see `_fix_mode`)."""
    atomic_write(path, data)
    _fix_mode(path, mode, gid)


def _fix_mode(path: Path, mode: int, gid: int) -> None:
    os.chown(path, 0, gid)
    os.chmod(path, mode)


def _toml(header: str, doc: dict[str, Any]) -> bytes:
    return ("".join(f"# {line}\n" for line in header.splitlines()) + tomli_w.dumps(doc)).encode()


def _get(doc: dict[str, Any], section: str, key: str) -> Any:
    table = doc.get(section)
    return table.get(key) if isinstance(table, dict) else None


def _read_installed(unit: Unit) -> dict[str, Any] | None:
    try:
        return tomllib.loads(unit.config.read_text())
    except (OSError, ValueError) as e:
        if unit.config.exists():
            log.error("%s cannot be read (%s): a base config replaces it", unit.config, e)
        return None


def _with_secrets(card_doc: dict[str, Any], previous: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The card's document plus the secrets it does not carry: kept from the previous config, else generated."""
    doc = merge({}, card_doc)
    generated = []
    for section, key in SECRET_KEYS:
        if _get(card_doc, section, key) is None and previous is not None:
            old = _get(previous, section, key)
            if old is not None:
                doc = merge(doc, {section: {key: old}})
    for section, key in GENERATED:
        if not _get(doc, section, key):
            doc = merge(doc, {section: {key: secrets.token_urlsafe(24)}})
            generated.append(f"{section}.{key}")
    return doc, generated


def _validate(doc: dict[str, Any], file: str) -> EdgeConfig:
    cfg = parse_config(doc, file)
    check_card_config(cfg, doc)
    return cfg


@dataclasses.dataclass
class Outcome:
    status: dict[str, Any]
    config: EdgeConfig | None


def _process_card(unit: Unit, gid: int, status: dict[str, Any], previous: dict[str, Any] | None) -> None:
    raw = unit.card.read_bytes()
    if hashlib.sha256(raw).hexdigest() == status.get("card_sha256"):
        log.info("%s unchanged since it was applied: nothing to provision", unit.card)
        return
    file = "/" + str(unit.card.relative_to(unit.root)) if not unit.live else str(unit.card)
    card_doc: dict[str, Any] | None = None
    try:
        try:
            card_doc = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(file, "", f"invalid TOML: {e}") from None
        doc, generated = _with_secrets(card_doc, previous)
        cfg = _validate(doc, file)
    except ConfigError as e:
        # keep the previous config; the reason goes to the journal, the status file and the card itself
        log.error("rejected %s, keeping the previous config: %s", file, e)
        _write_private(unit.rejected, raw, 0o600, 0)
        header = (f"REJECTED by {socket.gethostname() if unit.live else 'the unit'} at {_now()}: {e}\n"
                  f"The unit keeps its previous config. The rejected file was moved to {unit.rejected.name} on the "
                  "unit\n(it may hold secrets); its settings without secrets follow. Fix them here and reboot.")
        redacted, removed = without_secrets(card_doc) if card_doc is not None else ({}, [])
        left = _toml(header, redacted)
        atomic_write(unit.card, left)
        status.update(state="fault", fault=True, reason=str(e), card_sha256=hashlib.sha256(left).hexdigest(),
                      removed_from_card=removed if card_doc is not None else ["(the whole file)"])
        return
    assert card_doc is not None
    _write_private(unit.config, _toml(f"installed by edge image firstboot from {file} at {_now()}\n"
                                      f"generated on the unit: {', '.join(generated) or 'nothing'}", doc), 0o640, gid)
    redacted, removed = without_secrets(card_doc)
    header = (f"applied to this unit at {_now()}.\n"
              + (f"Secrets moved to the unit and removed from this card: {', '.join(removed)}.\n" if removed else "")
              + "Edit this file to re-provision the unit at its next boot (a secret left out keeps its value).")
    left = _toml(header, redacted)
    atomic_write(unit.card, left)
    unit.rejected.unlink(missing_ok=True)
    hostname = hostname_for(cfg.unit.school, cfg.unit.room)
    status.update(state="ok", fault=False, reason=None, card_sha256=hashlib.sha256(left).hexdigest(),
                  applied_at=_now(), generated=generated, removed_from_card=removed, hostname=hostname)
    log.info("provisioned %s from %s (generated: %s; removed from the card: %s)", hostname, file,
             ", ".join(generated) or "nothing", ", ".join(removed) or "nothing")


def _ensure_config(unit: Unit, gid: int, status: dict[str, Any]) -> EdgeConfig:
    """A valid installed config (a base one if there is none or it is unreadable), mode 0640 root:group."""
    installed = _read_installed(unit)
    if installed is not None:
        try:
            cfg = parse_config(installed, str(unit.config))
            _fix_mode(unit.config, 0o640, gid)
            return cfg
        except ConfigError as e:
            log.error("%s is invalid (%s): a base config replaces it", unit.config, e)
    doc, generated = _with_secrets({}, installed)
    _write_private(unit.config, _toml(f"base config written by edge image firstboot at {_now()} (no card file "
                                      "applied yet)", doc), 0o640, gid)
    if generated:
        status["generated"] = generated
    if status.get("state") != "fault":
        status["state"] = "unprovisioned"
    return parse_config(doc, str(unit.config))


def _ensure_setup_code(unit: Unit, gid: int) -> None:
    """The teacher's one-time setup code (see the README's contract); made once, kept until deleted."""
    path = unit.etc / SETUP_FILE
    if path.exists():
        _fix_mode(path, 0o640, gid)
        return
    doc = {"version": 1, "code": f"{secrets.randbelow(10**8):08d}", "id": secrets.token_hex(8), "created_at": _now()}
    _write_private(path, (json.dumps(doc) + "\n").encode(), 0o640, gid)
    log.info("made a one-time teacher setup code (id %s)", doc["id"])


def _ensure_hostname(unit: Unit, cfg: EdgeConfig) -> str | None:
    if not (slug(cfg.unit.school) and slug(cfg.unit.room)):
        return None
    name = hostname_for(cfg.unit.school, cfg.unit.room)
    etc_hostname = unit.path("/etc/hostname")
    if not etc_hostname.exists() or etc_hostname.read_text().strip() != name:
        atomic_write(etc_hostname, f"{name}\n".encode())
        log.info("hostname is now %s", name)
    hosts = unit.path("/etc/hosts")
    lines = hosts.read_text().splitlines() if hosts.exists() else ["127.0.0.1\tlocalhost"]
    wanted = f"127.0.1.1\t{name}"
    if wanted not in lines:
        lines = [ln for ln in lines if not ln.startswith("127.0.1.1")] + [wanted]
        atomic_write(hosts, ("\n".join(lines) + "\n").encode())
    if unit.live and socket.gethostname() != name:
        # without CAP_SYS_ADMIN the unit applies /etc/hostname in its own privileged step (ExecStartPost)
        with contextlib.suppress(PermissionError):
            socket.sethostname(name)
    return name


def _ensure_ssh_host_keys(unit: Unit) -> None:
    """This unit's own SSH host keys (the image ships none): ed25519 and ECDSA, which sshd is told to load
    (image_build/layer/etc/ssh/sshd_config.d); no RSA key, whose generation takes minutes under emulation."""
    ssh = unit.path("/etc/ssh")
    if not ssh.is_dir() or not shutil.which("ssh-keygen"):
        return
    for kind in ("ed25519", "ecdsa"):
        key = ssh / f"ssh_host_{kind}_key"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", str(key)], check=True,
                           capture_output=True)
            log.info("made this unit's SSH host key %s", key.name)


def read_user_data(text: str) -> dict[str, Any]:
    """The JSON form of #cloud-config that `edge image personalise` writes (comment lines, then one object)."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("not a mapping")
    return doc


def _ensure_admin_keys(unit: Unit, gid: int) -> None:
    """Without cloud-init (the Debian image), install the admins' keys from user-data for edge-admin only."""
    if shutil.which("cloud-init") and unit.live:
        return  # Raspberry Pi OS (Trixie) runs cloud-init, which reads user-data itself
    path = unit.boot / USER_DATA
    if not path.exists():
        return
    try:
        doc = read_user_data(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("%s is not the JSON cloud-config `edge image personalise` writes (%s): SSH keys not applied; "
                    "a unit with cloud-init reads any cloud-config", path, e)
        return
    users = [u for u in doc.get("users", []) if isinstance(u, dict) and u.get("name") == ADMIN_USER]
    keys = [k for u in users for k in u.get("ssh_authorized_keys", []) if isinstance(k, str) and "\n" not in k]
    if not keys:
        return
    if not re.search(rf"^{ADMIN_USER}:", unit.path("/etc/passwd").read_text(), re.M):
        groups = ",".join(g for g in ("sudo", SERVICE_GROUP) if _gid(unit, g) is not None)
        subprocess.run(["useradd", *_prefix_args(unit), "--create-home", "--no-log-init", "--shell", "/bin/bash",
                        "--comment", "classroom-edge IT admin", "--groups", groups, ADMIN_USER],
                       check=True, capture_output=True)
        atomic_write(unit.path(f"/etc/sudoers.d/90-{ADMIN_USER}"), f"{ADMIN_USER} ALL=(ALL) NOPASSWD:ALL\n".encode())
        os.chmod(unit.path(f"/etc/sudoers.d/90-{ADMIN_USER}"), 0o440)
        log.info("added the IT admin user %s (no password: SSH keys only)", ADMIN_USER)
    pw = next(line.split(":") for line in unit.path("/etc/passwd").read_text().splitlines()
              if line.startswith(f"{ADMIN_USER}:"))
    uid, ugid, home = int(pw[2]), int(pw[3]), unit.path(pw[5])
    dot_ssh = home / ".ssh"
    dot_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    auth = dot_ssh / "authorized_keys"
    atomic_write(auth, ("".join(f"{k}\n" for k in keys)).encode())
    for p in (home, dot_ssh, auth):
        os.chown(p, uid, ugid)
    os.chmod(auth, 0o600)


def provision(unit: Unit) -> dict[str, Any]:
    """One boot's provisioning; returns the status document it wrote."""
    unit.etc.mkdir(parents=True, exist_ok=True)
    gid = ensure_group(unit, SERVICE_GROUP)
    os.chown(unit.etc, 0, gid)
    os.chmod(unit.etc, 0o750)
    previous_status = read_status(unit.etc) or {}
    status: dict[str, Any] = {"version": 1, "state": "ok", "fault": False, "reason": None,
                              "card": "/boot/firmware/" + CARD_FILE, "card_sha256": None, "hostname": None,
                              "applied_at": None, "generated": [], "removed_from_card": [], **previous_status}
    status["checked_at"] = _now()
    if unit.card.exists():
        _process_card(unit, gid, status, _read_installed(unit))
    else:
        status.update(fault=False, reason=None, card_sha256=None)
        if status["state"] == "fault":
            status["state"] = "ok"
    cfg = _ensure_config(unit, gid, status)
    _ensure_setup_code(unit, gid)
    hostname = _ensure_hostname(unit, cfg)
    if hostname:
        status["hostname"] = hostname
    _ensure_ssh_host_keys(unit)
    _ensure_admin_keys(unit, gid)
    atomic_write(unit.etc / STATUS_FILE, (json.dumps(status, indent=2) + "\n").encode())
    os.chmod(unit.etc / STATUS_FILE, 0o644)
    return status


def cmd_firstboot(args: argparse.Namespace) -> int:
    unit = Unit(Path(args.root))
    if unit.live and os.geteuid() != 0:
        raise EdgeError("edge image firstboot provisions the unit and runs as root (systemd runs it at boot)")
    status = provision(unit)
    print(f"edge image firstboot: {status['state']}"
          + (f" ({status['reason']})" if status.get("reason") else "")
          + (f"; hostname {status['hostname']}" if status.get("hostname") else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m edge.image.firstboot`: what the unit runs at boot, without importing every service's CLI."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="edge image firstboot")
    parser.add_argument("--root", default="/")
    try:
        return cmd_firstboot(parser.parse_args(argv))
    except EdgeError as e:
        print(f"edge: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
