"""BKT skill parameters: `[default]` plus `[skills."<skill>"]` tables, in edge.toml, replay files and the
district's params.toml. Part of the typed configuration (foundation): the mastery model only reads them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.exc import ConfigError
from edge.tomlfile import read_toml

KEYS = ("prior", "learn", "guess", "slip", "forget")


@dataclass(frozen=True)
class SkillParams:
    """Corbett & Anderson BKT parameters of one skill (probabilities)."""

    prior: float = 0.2
    learn: float = 0.15
    guess: float = 0.2
    slip: float = 0.1
    forget: float = 0.0


@dataclass(frozen=True)
class ParamSet:
    """Default parameters plus per-skill overrides."""

    default: SkillParams = SkillParams()
    skills: Mapping[str, SkillParams] = field(default_factory=dict)

    def for_skill(self, skill: str) -> SkillParams:
        return self.skills.get(skill, self.default)


def _parse_skill(data: Any, file: str, key: str, base: SkillParams | None) -> SkillParams:
    if not isinstance(data, Mapping):
        raise ConfigError(file, key, "must be a table")
    values: dict[str, float] = {}
    for name, value in data.items():
        if name not in KEYS:
            raise ConfigError(file, f"{key}.{name}", f"unknown key (known: {', '.join(KEYS)})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(file, f"{key}.{name}", f"must be a number, got {type(value).__name__}")
        v = float(value)
        if name == "forget":
            ok = 0.0 <= v < 1.0
        elif name in ("guess", "slip"):
            ok = 0.0 < v < 0.5  # guess/slip >= 0.5 make a wrong answer evidence of knowing
        else:
            ok = 0.0 <= v <= 1.0
        if not ok:
            rng = {"forget": "[0, 1)", "guess": "(0, 0.5)", "slip": "(0, 0.5)"}.get(name, "[0, 1]")
            raise ConfigError(file, f"{key}.{name}", f"must be in {rng}, got {value}")
        values[name] = v
    if base is None:
        missing = [k for k in KEYS if k != "forget" and k not in values]
        if missing:
            raise ConfigError(file, f"{key}.{missing[0]}", "missing (prior, learn, guess, slip are required)")
        base = SkillParams()
    merged = {k: values.get(k, getattr(base, k)) for k in KEYS}
    return SkillParams(**merged)


def parse_params(data: Mapping[str, Any], file: str, prefix: str = "", require_default: bool = True) -> ParamSet:
    """Validate a params table; per-skill tables inherit missing keys from `[default]`."""
    dot = f"{prefix}." if prefix else ""
    for name in data:
        if name not in ("default", "skills"):
            raise ConfigError(file, f"{dot}{name}", "unknown key (known: default, skills)")
    if "default" in data:
        default = _parse_skill(data["default"], file, f"{dot}default", None)
    elif require_default:
        raise ConfigError(file, f"{dot}default", "missing table")
    else:
        default = SkillParams()
    skills_raw = data.get("skills", {})
    if not isinstance(skills_raw, Mapping):
        raise ConfigError(file, f"{dot}skills", "must be a table of skill tables")
    skills = {
        str(name): _parse_skill(table, file, f'{dot}skills."{name}"', default)
        for name, table in skills_raw.items()
    }
    return ParamSet(default=default, skills=skills)


def with_district_file(base: ParamSet, district_file: Path) -> ParamSet:
    """`base` overridden per skill (and default, if given) by the district's params.toml, when there is one.

    The district's skill tables inherit missing keys from `base`'s default unless the file has its own.
    """
    if not district_file.exists():
        return base
    data = read_toml(district_file)
    if "default" not in data:
        data = {"default": dataclasses.asdict(base.default), **data}
    district = parse_params(data, str(district_file))
    return ParamSet(default=district.default, skills={**base.skills, **district.skills})
