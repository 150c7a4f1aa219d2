"""Which origins the cache serves (the configured ones, or with none the built-in demo lesson pack), and how it
treats each: RFC 9111 as a shared cache, except where the origin's settings allow a documented departure."""

from __future__ import annotations

from dataclasses import dataclass

from content_cache.demo import ensure_demo_pack
from content_cache.http import TARGETED
from edge.config import EdgeConfig

DEMO_ORIGIN = "demo"
DEMO_TTL_S = 86400.0  # the demo pack is generated here and never changes under a URL: a static pack


@dataclass(frozen=True)
class Policy:
    """One origin's settings, as the cache applies them (README: "Where the cache departs from RFC 9111")."""

    default_ttl_s: float = 0.0  # > 0: freshness for responses without explicit freshness, not the heuristic
    offline_stale: bool = True  # origin unreachable: serve stored responses, however stale
    offline_ignores_revalidate: bool = False  # ... even must-revalidate/no-cache/s-maxage ones
    stale_on_5xx: bool = False  # origin answers 500/502/503/504: serve a stored response instead
    targeted: tuple[str, ...] = TARGETED  # targeted cache-control fields obeyed (RFC 9213)


def effective_origins(config: EdgeConfig) -> dict[str, str]:
    """Configured origins (name → URL); with none, the built-in demo lesson pack (generated on first use)."""
    if config.cache.origins:
        return config.cache.origin_urls()
    pack = ensure_demo_pack(config.cache_dir / "demo-pack")
    return {DEMO_ORIGIN: pack.resolve().as_uri()}


def effective_policies(config: EdgeConfig) -> dict[str, Policy]:
    """Each origin's Policy (the demo pack: a static pack, unless the cache-wide default TTL says otherwise)."""
    if not config.cache.origins:
        return {DEMO_ORIGIN: Policy(default_ttl_s=float(config.cache.default_ttl_s) or DEMO_TTL_S)}
    out: dict[str, Policy] = {}
    for name in config.cache.origins:
        o = config.cache.origin(name)
        out[name] = Policy(default_ttl_s=float(o.default_ttl_s or 0), offline_stale=o.offline_stale,
                           offline_ignores_revalidate=o.offline_ignores_revalidate, stale_on_5xx=o.stale_on_5xx,
                           targeted=TARGETED if o.cdn_cache_control else ())
    return out
