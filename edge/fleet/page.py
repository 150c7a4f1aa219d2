"""The fleet page (HTML): units by school, sortable and filterable with or without JavaScript."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from edge import __version__
from edge.exc import RequestError
from edge.fleet.heartbeats import SORT_KEYS, STATUSES, Query, iso, school_summary
from edge.fleet.service import COLLECTOR

HERE = Path(__file__).resolve().parent

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


async def get_page(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    try:
        query = Query.from_request(request.query)
    except RequestError:
        query = Query()  # the page ignores a bad sort/filter rather than refusing to show the fleet
    views = await c.views()
    # every unit is on the page, in the requested order; the ones the filter leaves out carry `hidden`, so
    # fleet.js can widen a filter without a round trip and a browser without JS still shows the filtered view
    visible = {u["id"] for u in query.apply(views)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for u in Query(sort=query.sort, order=query.order).apply(views):
        groups.setdefault(u["school"], []).append(u)
    summary = {s["school"]: s for s in school_summary(views)}
    html = c.templates.get_template("fleet.html").render(
        groups=sorted(groups.items(), key=lambda kv: kv[0].casefold()), summary=summary, query=query,
        visible=visible, total=len(views), shown=len(visible), offline_minutes=c.config.fleet.offline_minutes,
        generated_at=iso(c.now()), schools=sorted(summary, key=str.casefold), sort_keys=SORT_KEYS,
        statuses=STATUSES, version=__version__)
    return web.Response(text=html, content_type="text/html",
                        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


# ---- template helpers


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{s // 60} min"
    if s < 48 * 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["ago"] = _ago
    env.filters["size"] = _bytes
    return env
