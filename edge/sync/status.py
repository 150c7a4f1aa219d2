"""Where the outbox lives and the sync status shown by `edge sync status` and `GET /api/v1/sync`."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from edge.config import EdgeConfig
from edge.sync.outbox import Outbox


def outbox_path(config: EdgeConfig) -> Path:
    """The mastery store's SQLite file: the intake queues a statement in the transaction that stores it."""
    return config.state_dir / "mastery" / "mastery.sqlite3"


def redact(url: str) -> str:
    """A URL without user:password and query (tokens sometimes ride in either)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def sync_status(config: EdgeConfig, outbox: Outbox | None = None) -> dict[str, Any]:
    """The status dict: backlog, oldest unsent age, last success, last error, quarantine; JSON-ready.

    With no `outbox` handle, the file is opened (and closed) if it exists; a unit that never stored a
    statement has an empty backlog.
    """
    d = config.district
    status: dict[str, Any] = {
        "enabled": bool(d.lrs_url),
        "lrs": redact(d.lrs_url) if d.lrs_url else None,
        "message": "" if d.lrs_url else
        f"sync is off: no district.lrs_url in {config.source}; evidence is kept in the outbox",
    }
    if outbox is not None:
        status.update(outbox.status())
        return status
    path = outbox_path(config)
    if not path.exists():
        status.update(backlog=0, oldest_unsent_at=None, oldest_unsent_age_s=None, sent_total=0,
                      last_success=None, last_error=None, last_error_at=None, quarantined=0, quarantine=[])
        return status
    ob = Outbox(path)
    try:
        status.update(ob.status())
    finally:
        ob.close()
    return status


def format_status(status: dict[str, Any]) -> str:
    """Human-readable lines for the CLI."""
    lines = []
    if not status["enabled"]:
        lines.append(status["message"])
    else:
        lines.append(f"LRS:             {status['lrs']}")
    age = status["oldest_unsent_age_s"]
    oldest = "-" if age is None else f"{age:.0f} s ago ({status['oldest_unsent_at']})"
    lines += [
        f"backlog:         {status['backlog']} statements",
        f"oldest unsent:   {oldest}",
        f"last success:    {status['last_success'] or 'never'}",
        f"last error:      {status['last_error'] or '-'}"
        + (f" (at {status['last_error_at']})" if status["last_error"] else ""),
        f"sent (total):    {status['sent_total']}",
        f"quarantined:     {status['quarantined']}",
    ]
    lines += [f"  {q['id']}: {q['reason']} ({q['at']})" for q in status["quarantine"]]
    return "\n".join(lines)
