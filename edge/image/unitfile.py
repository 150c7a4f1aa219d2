"""What a card carries for one unit: `classroom-edge.toml` (an edge.toml, validated by the same loader) and
cloud-init NoCloud `user-data` / `meta-data` (hostname, the IT admins' SSH keys, no password login)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import tomli_w

from edge import __version__
from edge.config import EdgeConfig, parse_config
from edge.exc import ConfigError

CARD_FILE = "classroom-edge.toml"
USER_DATA = "user-data"
META_DATA = "meta-data"
ADMIN_USER = "edge-admin"

# Keys that are secrets: the unit keeps them in /etc/classroom-edge/edge.toml (0640) and removes them from the
# card's FAT partition, which anyone who pulls the card can read.
SECRET_KEYS: tuple[tuple[str, str], ...] = (
    ("web", "teacher_pin"),
    ("web", "api_token"),
    ("mastery", "class_key"),
    ("cache", "admin_token"),
    ("district", "lrs_password"),
    ("district", "lrs_token"),
)
# Paths the image's systemd units set (each service has its own StateDirectory); a card must not move them.
UNIT_OWNED_KEYS: tuple[tuple[str, str], ...] = (("unit", "state_dir"), ("cache", "dir"), ("rotation", "plans_dir"))

SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                 "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")


def slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def hostname_for(school: str, room: str) -> str:
    """`edge-<school>-<room>` as a DNS label (lowercase letters, digits, '-'; at most 63 characters)."""
    name = "-".join(p for p in ("edge", slug(school), slug(room)) if p)
    return name[:63].rstrip("-")


def check_card_config(cfg: EdgeConfig, doc: Mapping[str, Any]) -> None:
    """Rules for a card file beyond edge.toml's own: room and school name the unit; no unit-owned paths."""
    file = cfg.source
    for section, key in UNIT_OWNED_KEYS:
        if key in doc.get(section, {}):
            raise ConfigError(file, f"{section}.{key}", "is set by the image's systemd units; remove it from the card")
    if not slug(cfg.unit.school):
        raise ConfigError(file, "unit.school", "missing: a card names its school (letters or digits)")
    if not slug(cfg.unit.room):
        raise ConfigError(file, "unit.room", "missing: a card names its room (letters or digits)")


def parse_ssh_keys(text: str, source: str) -> list[str]:
    """Public keys, one per line (authorized_keys syntax without options); a private key is refused."""
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "PRIVATE KEY" in line:
            raise ConfigError(source, "", "is a private key: give the public key (.pub) file")
        parts = line.split()
        if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES or not re.fullmatch(r"[A-Za-z0-9+/]+=*", parts[1]):
            raise ConfigError(source, f"line {n}", "not an SSH public key ('<type> <base64> [comment]')")
        keys.append(" ".join(parts))
    if not keys:
        raise ConfigError(source, "", "no SSH public key in the file")
    return keys


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, table by table (arrays and values are replaced)."""
    out: dict[str, Any] = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def without_secrets(doc: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The document with every secret key removed, and the dotted names of those removed."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in doc.items()}
    removed = []
    for section, key in SECRET_KEYS:
        table = out.get(section)
        if isinstance(table, dict) and key in table:
            del table[key]
            removed.append(f"{section}.{key}")
    return out, removed


@dataclass(frozen=True)
class UnitCard:
    """The per-unit files for one card, built and validated before anything is written."""

    hostname: str
    doc: dict[str, Any]
    ssh_keys: tuple[str, ...]

    def files(self) -> dict[str, bytes]:
        toml = (
            f"# classroom-edge per-unit settings for {self.hostname}, written by edge image personalise "
            f"(edge {__version__}).\n"
            "# At its next boot the unit validates this file, installs it as /etc/classroom-edge/edge.toml and\n"
            "# removes the secrets from this card. Edit it here to re-provision the unit at its next boot.\n"
            + tomli_w.dumps(self.doc)
        ).encode()
        user: dict[str, Any] = {
            "hostname": self.hostname,
            "manage_etc_hosts": True,
            "ssh_pwauth": False,
            "disable_root": True,
        }
        if self.ssh_keys:  # without keys nobody logs in over SSH (no password login either)
            user["users"] = [{
                "name": ADMIN_USER,
                "gecos": "classroom-edge IT admin",
                "shell": "/bin/bash",
                "groups": ["sudo"],
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "lock_passwd": True,
                "ssh_authorized_keys": list(self.ssh_keys),
            }]
        # JSON is YAML: cloud-init reads this as any #cloud-config, and the unit's first-boot step reads it
        # with the standard library where cloud-init is not installed (the Debian image).
        user_data = ("#cloud-config\n# hostname, the IT admins' SSH keys, no password login "
                     "(edge image personalise)\n" + json.dumps(user, indent=2) + "\n").encode()
        digest = hashlib.sha256(toml + user_data).hexdigest()[:12]
        meta = f"instance-id: {self.hostname}-{digest}\nlocal-hostname: {self.hostname}\n".encode()
        return {USER_DATA: user_data, META_DATA: meta, CARD_FILE: toml}


def build_card(*, room: str, school: str, source: str, district_url: str = "", district_token: str = "",
               ssh_keys: Iterable[str] = (), extra: Mapping[str, Any] | None = None) -> UnitCard:
    """Build and validate one unit's card; errors are ConfigErrors naming `source` (a file or a CSV line)."""
    doc = merge(extra or {}, {"unit": {"room": room, "school": school}})
    district: dict[str, Any] = {}
    if district_url:
        district["lrs_url"] = district_url
    if district_token:
        district["lrs_token"] = district_token
    if district:
        doc = merge(doc, {"district": district})
    cfg = parse_config(doc, source)
    check_card_config(cfg, doc)
    return UnitCard(hostname_for(school, room), doc, tuple(ssh_keys))
