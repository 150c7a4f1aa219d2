"""An index written by the previous version is read (or cleanly dropped), never a crash; `[cache.origins]`
tables with per-origin settings, and their errors naming file, key and reason."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import diskcache
import pytest

from content_cache.origins import Policy, effective_origins, effective_policies
from edge.config import parse_config
from edge.exc import ConfigError
from tests.content_cache.harness import Harness, Obj, Origin


def _v1_record(key: str, body: str, data: bytes) -> dict[str, object]:
    """An entry as the cache wrote it before issue 15 (schema 1: five fields, no status)."""
    return {"key": key, "url": "http://old/x", "origin": "up", "body": body, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "fetched_at": time.time(), "fresh_until": time.time() + 600,
            "swr_s": 0.0, "sie_s": float("inf"), "etag": '"old"', "last_modified": None,
            "content_type": "text/html", "content_encoding": None, "cache_control": "max-age=600",
            "pinned": True, "last_access": time.time()}


async def test_an_index_of_the_previous_version_is_read_and_garbage_dropped(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "bodies" / "ab").mkdir(parents=True)
    (cache / "bodies" / "ab" / "lesson.1").write_bytes(b"<p>old</p>")
    index = diskcache.Cache(str(cache / "index"))
    index.set("up/lesson.html", _v1_record("up/lesson.html", "ab/lesson.1", b"<p>old</p>"))
    index.set("up/broken", {"key": "up/broken", "size": "not a number"})
    index.set("up/future", {**_v1_record("up/future", "ab/f.1", b""), "schema": 99})
    index.set("up/junk", b"not a record at all")
    index.close()
    origin = Origin(objects={"lesson.html": Obj(b"<p>new</p>")})
    async with Harness(tmp_path, origin) as h:  # the start-up repair runs on the old directory
        r = await h.get("/up/lesson.html")
        assert (r.status, r.x_cache, r.body) == (200, "HIT", b"<p>old</p>")
        assert (r.headers["ETag"], r.headers["Content-Type"], r.headers["Cache-Control"]) == (
            '"old"', "text/html", "max-age=600")
        entry = h.svc.store.get("up/lesson.html")
        assert entry is not None and entry.pinned and not entry.no_stale
        assert origin.count("lesson.html") == 0
        assert {e.key for e in h.svc.store.entries()} == {"up/lesson.html"}
    index = diskcache.Cache(str(cache / "index"))
    try:
        assert sorted(index.iterkeys()) == ["up/lesson.html"]  # the unreadable records were dropped
    finally:
        index.close()


def test_check_command_reports_records_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[cache]\ndir = "{tmp_path / "cache"}"\n')
    (tmp_path / "cache").mkdir()
    index = diskcache.Cache(str(tmp_path / "cache" / "index"))
    index.set("up/x", {"kind": "vary", "names": ["accept-language"], "keys": ["up/x\nabc"]})  # variant gone
    index.set("up/y", [1, 2, 3])
    index.close()
    assert main(["cache", "check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "0 objects ok" in out and "1 bad entries dropped" in out and "up/y: unreadable metadata" in out
    index = diskcache.Cache(str(tmp_path / "cache" / "index"))
    try:
        assert list(index.iterkeys()) == []  # the VarySet listing only a missing variant went too
    finally:
        index.close()


def test_origins_as_tables_with_per_origin_settings() -> None:
    cfg = parse_config({"cache": {"default_ttl_s": 60, "origins": {
        "district": "https://lessons.district.example",
        "usb": {"url": "file:///media/usb/lessons", "default_ttl_s": 86400},
        "h5p": {"url": "https://h5p.example", "stale_on_5xx": True, "offline_ignores_revalidate": True,
                "offline_stale": True, "cdn_cache_control": False},
    }}}, "t.toml")
    assert effective_origins(cfg) == {"district": "https://lessons.district.example",
                                      "usb": "file:///media/usb/lessons", "h5p": "https://h5p.example"}
    policies = effective_policies(cfg)
    assert policies["district"] == Policy(default_ttl_s=60.0)  # the cache-wide default TTL
    assert policies["usb"].default_ttl_s == 86400.0
    assert policies["h5p"] == Policy(default_ttl_s=60.0, stale_on_5xx=True, offline_ignores_revalidate=True,
                                     targeted=())
    assert parse_config({}, "t.toml").cache.default_ttl_s == 0  # the RFC heuristic by default


@pytest.mark.parametrize(("origins", "key", "reason"), [
    ({"x": {"url": "https://x", "stale_on_404": True}}, "cache.origins.x.stale_on_404", "unknown key"),
    ({"x": {"stale_on_5xx": True}}, "cache.origins.x.url", "missing"),
    ({"x": {"url": "ftp://x"}}, "cache.origins.x.url", "https://"),
    ({"x": {"url": "https://x", "default_ttl_s": -1}}, "cache.origins.x.default_ttl_s", "negative"),
    ({"x": {"url": "https://x", "offline_stale": "yes"}}, "cache.origins.x.offline_stale", "true or false"),
    ({"x": 5}, "cache.origins.x", "must be"),
])
def test_origin_table_errors_name_the_key(origins: dict[str, object], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"cache": {"origins": origins}}, "edge.toml")
    assert (e.value.file, e.value.key) == ("edge.toml", key) and reason in e.value.reason
