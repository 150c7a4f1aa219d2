"""Admin API (token, health, stats, pin/unpin/evict) and prefetch (API and `edge cache prefetch`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from content_cache.manifest import parse_manifest
from edge.exc import ManifestError
from tests.content_cache.harness import Harness, Obj, Origin, blob

AUTH = {"Authorization": "Bearer s3cret"}


async def test_admin_is_off_without_a_token_but_health_is_open(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        r = await h.get("/_cache/health")
        assert r.status == 200 and r.json()["ok"] is True
        r = await h.get("/_cache/stats", AUTH)
        assert r.status == 404 and "admin_token" in r.json()["error"]


async def test_admin_needs_the_bearer_token(tmp_path: Path) -> None:
    origin = Origin(objects={"a": Obj(b"A")})
    async with Harness(tmp_path, origin, admin_token="s3cret") as h:
        assert (await h.get("/_cache/stats")).status == 401
        assert (await h.get("/_cache/stats", {"Authorization": "Bearer nope"})).status == 401
        await h.get("/up/a")
        await h.get("/up/a")
        s = (await h.get("/_cache/stats", AUTH)).json()
        assert (s["hits"], s["misses"], s["upstream_requests"], s["objects"]) == (1, 1, 1, 1)
        assert s["bytes_served"] == 2 and s["upstreams"]["up"]["healthy"] is True
        assert (await h.get("/_cache/pin/up/a", AUTH, "PUT")).json() == {"key": "up/a", "pinned": True}
        assert (await h.get("/_cache/objects", AUTH)).json()[0]["pinned"] is True
        assert (await h.get("/_cache/pin/up/a", AUTH, "DELETE")).json()["pinned"] is False
        assert (await h.get("/_cache/pin/up/zzz", AUTH, "PUT")).status == 404
        assert (await h.get("/_cache/objects/up/a", AUTH, "DELETE")).json()["evicted"] is True
        assert (await h.get("/up/a")).x_cache == "MISS"


def test_manifest_validation() -> None:
    origins = {"up": "http://x"}
    items = parse_manifest({"origin": "up", "pin": True, "paths": ["a", {"path": "b", "size": 3, "pin": False}]},
                           origins)
    assert [(i.path, i.pin, i.size) for i in items] == [("a", True, None), ("b", False, 3)]
    bad: object
    for bad in ({"paths": ["a"]}, {"origin": "up", "paths": []}, {"origin": "up", "paths": [{"path": "a",
                "sha256": "xyz"}]}, {"origin": "up", "paths": ["a"], "extra": 1}, []):
        with pytest.raises(ManifestError):
            parse_manifest(bad, origins)


def _manifest(good: bytes) -> dict[str, object]:
    return {"origin": "up", "pin": True, "paths": [
        {"path": "good.bin", "sha256": hashlib.sha256(good).hexdigest()},
        {"path": "bad.bin", "sha256": "0" * 64},
        "missing.bin",
    ]}


async def test_prefetch_api_rejects_bad_sha256(tmp_path: Path) -> None:
    good = blob(70_000)
    origin = Origin(objects={"good.bin": Obj(good), "bad.bin": Obj(blob(70_000, 2))})
    async with Harness(tmp_path, origin, admin_token="s3cret") as h:
        assert h.session is not None
        async with h.session.post(h.url("/_cache/prefetch"), json=_manifest(good), headers=AUTH) as r:
            assert r.status == 422
            report = await r.json()
        by_key = {i["key"]: i for i in report["items"]}
        assert by_key["up/good.bin"]["status"] == "fetched"
        assert by_key["up/bad.bin"]["status"] == "rejected" and "sha256" in by_key["up/bad.bin"]["message"]
        assert by_key["up/missing.bin"]["status"] == "failed"
        assert h.svc.store.get("up/good.bin").pinned  # type: ignore[union-attr]
        assert h.svc.store.get("up/bad.bin") is None
        assert (await h.get("/up/good.bin")).x_cache == "HIT"
        async with h.session.post(h.url("/_cache/prefetch"), data=b"{nope", headers=AUTH) as r:
            assert r.status == 400


async def test_prefetch_cli_shows_summary_and_fails_on_rejects(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    good = blob(50_000)
    origin = Origin(objects={"good.bin": Obj(good), "bad.bin": Obj(b"tampered")})
    await origin.start()
    try:
        cfg = tmp_path / "edge.toml"
        cfg.write_text(f'[cache]\ndir = "{tmp_path / "cache"}"\n[cache.origins]\nup = '
                       f'"http://127.0.0.1:{origin.port}/files"\n')
        man = tmp_path / "lessons.json"
        man.write_text(json.dumps(_manifest(good)))
        # The CLI runs its own event loop: run it in a thread so this test's loop keeps serving upstream.
        import asyncio

        code = await asyncio.to_thread(main, ["cache", "prefetch", str(man), "--config", str(cfg)])
        out, err = capsys.readouterr()
        assert code == 1
        assert "prefetch: 1 fetched, 0 already cached, 1 rejected, 1 failed" in out
        assert "rejected: up/bad.bin" in out and "1/3" not in err.splitlines()[-1:]
        assert "edge: error: prefetch incomplete: 2 of 3 items not cached" in err
        good_only = tmp_path / "good.json"
        good_only.write_text(json.dumps({"origin": "up", "paths": ["good.bin"]}))
        code = await asyncio.to_thread(main, ["cache", "prefetch", str(good_only), "--config", str(cfg)])
        assert code == 0 and "0 fetched, 1 already cached" in capsys.readouterr().out
    finally:
        await origin.stop()


async def test_prefetch_pins_only_the_object_and_reports_a_5xx(tmp_path: Path) -> None:
    objs = {"gone.bin": Obj(b"no such file", status=404),  # has an ETag: stored (a 404 is cacheable), not pinned
            "kept.bin": Obj(b"v1", cache_control="max-age=0, stale-if-error=600")}
    origin = Origin(objects=objs)
    async with Harness(tmp_path, origin, admin_token="s3cret") as h:
        assert h.session is not None
        await h.get("/up/kept.bin")
        origin.objects["kept.bin"] = Obj(b"maintenance", status=503)
        manifest = {"origin": "up", "pin": True, "paths": ["gone.bin", "kept.bin"]}
        async with h.session.post(h.url("/_cache/prefetch"), json=manifest, headers=AUTH) as r:
            report = await r.json()
        by_key = {i["key"]: i for i in report["items"]}
        assert by_key["up/gone.bin"] == {"key": "up/gone.bin", "status": "failed", "bytes": 0,
                                         "message": "upstream answered 404"}
        assert by_key["up/kept.bin"]["status"] == "failed" and "stored copy stays" in by_key["up/kept.bin"]["message"]
        gone, kept = h.svc.store.get("up/gone.bin"), h.svc.store.get("up/kept.bin")
        assert gone is not None and gone.status == 404 and not gone.pinned
        assert kept is not None and not kept.pinned and (await h.get("/up/kept.bin")).body == b"v1"
