"""The lesson manifests' activity → skill mapping: which skill a lesson's answers are evidence of."""

from __future__ import annotations

from pathlib import Path

from content_cache.manifest import load_manifest
from content_cache.origins import effective_origins
from edge.config import EdgeConfig
from edge.exc import ConfigError, ManifestError


def activity_skills(config: EdgeConfig) -> dict[str, str]:
    """Merge the `activity`/`skill` pairs of every manifest in `mastery.manifests` (errors name the key)."""
    mapping: dict[str, str] = {}
    origins = effective_origins(config)
    for i, path in enumerate(config.mastery.manifests):
        try:
            items = load_manifest(Path(path), origins)
        except ManifestError as e:
            raise ConfigError(config.source, f"mastery.manifests[{i}]", str(e)) from None
        for item in items:
            if item.activity is not None and item.skill is not None:
                mapping[item.activity] = item.skill
    return mapping
