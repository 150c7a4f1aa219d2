"""Which origins the cache serves: the configured ones, or (with none) the built-in demo lesson pack."""

from __future__ import annotations

from content_cache.demo import ensure_demo_pack
from edge.config import EdgeConfig

DEMO_ORIGIN = "demo"


def effective_origins(config: EdgeConfig) -> dict[str, str]:
    """Configured origins; with none, the built-in demo lesson pack (generated on first use)."""
    if config.cache.origins:
        return dict(config.cache.origins)
    pack = ensure_demo_pack(config.cache_dir / "demo-pack")
    return {DEMO_ORIGIN: pack.resolve().as_uri()}
