"""Admin API under /_cache/: bearer token from config; no token configured = the API is off (404).

`/_cache/health` is always open and tiny (for monitoring and `edge doctor`).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from aiohttp import web

from content_cache.entry import secondary_part
from content_cache.manifest import parse_manifest
from content_cache.prefetch import run_prefetch
from edge.exc import ManifestError, RequestError
from edge.serving.aio import Handler, json_response
from edge.serving.auth import bearer_ok

if TYPE_CHECKING:
    from content_cache.service import CacheService



def add_admin_routes(app: web.Application, svc: CacheService, token: str) -> None:
    """Register /_cache/* on `app`."""

    def guarded(handler: Handler) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            if not token:
                raise RequestError(404, "admin API is off: set cache.admin_token in edge.toml to enable it")
            if not bearer_ok(request.headers.get("Authorization"), token):
                raise RequestError(401, "missing or wrong bearer token",
                                   headers={"WWW-Authenticate": 'Bearer realm="cache"'})
            return await handler(request)

        return wrapper

    async def health(request: web.Request) -> web.Response:
        down = [name for name in svc.origins if svc.is_down(name)]
        return json_response({"ok": True, "objects": len(svc.store), "upstreams_down": down,
                              "worker": svc.worker})

    async def stats(request: web.Request) -> web.Response:
        return json_response(svc.snapshot())

    async def objects(request: web.Request) -> web.Response:
        now = time.time()
        if svc.locks is not None:
            svc.store.sync()  # several workers: list the shared index, not this worker's view of it
        return json_response([
            {"key": e.primary, "variant": secondary_part(e.key) or None, "status": e.status,
             "size": e.size, "sha256": e.sha256, "pinned": e.pinned, "fresh": now < e.fresh_until,
             "fetched_at": e.fetched_at, "last_access": e.last_access}
            for e in sorted(svc.store.entries(), key=lambda e: e.key)
        ])

    async def prefetch(request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError(400, "body must be a JSON prefetch manifest") from None
        try:
            items = parse_manifest(data, svc.origins, "manifest")
        except ManifestError as e:
            raise RequestError(400, str(e)) from None
        report = await run_prefetch(svc, items)
        return json_response(report.to_json(), status=200 if report.ok else 422)

    def _key(request: web.Request) -> str:
        return request.match_info["key"]

    async def pin(request: web.Request) -> web.Response:
        return _set_pin(_key(request), True)

    async def unpin(request: web.Request) -> web.Response:
        return _set_pin(_key(request), False)

    def _set_pin(key: str, value: bool) -> web.Response:
        stored = svc.store.variants(key)  # a URL whose responses vary: every variant of it
        if not stored:
            raise RequestError(404, f"{key!r} is not cached (prefetch it with \"pin\": true)")
        for entry in stored:
            entry.pinned = value
            svc.store.update(entry)
        if not value:
            svc.evict_to_fit()
        return json_response({"key": key, "pinned": value})

    async def evict(request: web.Request) -> web.Response:
        key = _key(request)
        if svc.downloading(key):
            raise RequestError(409, f"{key!r} is downloading; evict it when done")
        if not svc.evict(key):
            raise RequestError(404, f"{key!r} is not cached")
        svc.stats.evictions += 1
        return json_response({"key": key, "evicted": True})

    r = app.router
    r.add_get("/_cache/health", health)
    r.add_get("/_cache/stats", guarded(stats))
    r.add_get("/_cache/objects", guarded(objects))
    r.add_post("/_cache/prefetch", guarded(prefetch))
    r.add_put("/_cache/pin/{key:.+}", guarded(pin))
    r.add_delete("/_cache/pin/{key:.+}", guarded(unpin))
    r.add_delete("/_cache/objects/{key:.+}", guarded(evict))
