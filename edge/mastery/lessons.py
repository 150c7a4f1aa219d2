"""The lesson manifests' skills: which skill a lesson's answers are evidence of (by activity id), and which skill
a lesson link in a plan teaches (by cache path, for regrouping)."""

from __future__ import annotations

from pathlib import Path

from content_cache.manifest import ManifestItem, load_manifest
from content_cache.origins import effective_origins
from edge.config import EdgeConfig
from edge.exc import ConfigError, ManifestError


def manifest_items(config: EdgeConfig) -> list[ManifestItem]:
    """Every item of every manifest in `mastery.manifests` (errors name the key)."""
    if not config.mastery.manifests:
        return []
    origins = effective_origins(config)
    items: list[ManifestItem] = []
    for i, path in enumerate(config.mastery.manifests):
        try:
            items += load_manifest(Path(path), origins)
        except ManifestError as e:
            raise ConfigError(config.source, f"mastery.manifests[{i}]", str(e)) from None
    return items


def activity_skills(config: EdgeConfig) -> dict[str, str]:
    """xAPI activity id → skill, from the manifests' `activity`/`skill` pairs."""
    return {item.activity: item.skill for item in manifest_items(config)
            if item.activity is not None and item.skill is not None}


def lesson_skills(config: EdgeConfig) -> dict[str, str]:
    """Lesson cache path (`origin/path`, as plans link lessons) → skill."""
    return {f"{item.origin}/{item.path}": item.skill for item in manifest_items(config) if item.skill is not None}
