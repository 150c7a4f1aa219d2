"""The one typed configuration (`edge.toml`), validated at start; errors name the file, the key and why.

Every section is a frozen dataclass; `read_section` checks unknown keys, types and per-field rules
(`field(metadata={"check": ...})`) so that each section is declared once, here.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edge.exc import ConfigError
from edge.params import ParamSet, parse_params
from edge.tomlfile import read_toml

T = TypeVar("T")
DEFAULTS = "<defaults>"
Check = Callable[[Any], str | None]


def _port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else "must be a TCP port 0..65535"


def _bcm(v: int) -> str | None:
    return None if 0 <= v <= 27 else "must be a BCM GPIO number 0..27"


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else "must not be negative"


def _url(*schemes: str) -> Check:
    def check(v: str) -> str | None:
        if v and not any(v.startswith(f"{s}://") for s in schemes):
            return f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
        return None

    return check


def _checked(default: Any, check: Check) -> Any:
    """A dataclass field with a validation rule (lists get a fresh copy per instance)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"check": check})
    return field(default=default, metadata={"check": check})


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _days(v: list[str]) -> str | None:
    bad = [d for d in v if d not in WEEKDAYS]
    if bad or not v:
        return f"must be a non-empty list of {', '.join(WEEKDAYS)}" + (f" (got {bad[0]!r})" if bad else "")
    return None


def _hhmm(v: str) -> str | None:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", v)
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        return f"must be a 24-hour local time HH:MM, got {v!r}"
    return None


@dataclass(frozen=True)
class UnitConfig:
    """Who this unit is; personalised per card by IT."""

    room: str = "Demo room"
    school: str = ""
    state_dir: str = ""  # default: $STATE_DIRECTORY, else ~/.local/state/classroom-edge


@dataclass(frozen=True)
class GpioConfig:
    """Wiring (BCM numbers) and the pin factory; "" lets gpiozero choose, falling back to mock pins."""

    pin_factory: str = ""
    red: int = _checked(9, _bcm)
    amber: int = _checked(10, _bcm)
    green: int = _checked(11, _bcm)
    buzzer: int = _checked(17, _bcm)
    button: int = _checked(27, _bcm)
    tonal: bool = False
    hold_seconds: float = _checked(2.0, _positive)
    quiet_hold_seconds: float = _checked(5.0, _positive)


@dataclass(frozen=True)
class PeriodConfig:
    """A class period: on these weekdays at `start` (local time) the named saved plan starts by itself."""

    name: str = ""
    plan: str = ""
    days: list[str] = _checked(list(WEEKDAYS[:5]), _days)
    start: str = _checked("08:00", _hhmm)


@dataclass(frozen=True)
class RotationConfig:
    quiet: bool = False
    plans_dir: str = ""  # default: <state_dir>/plans
    periods: list[PeriodConfig] = field(default_factory=list)


@dataclass(frozen=True)
class WebConfig:
    host: str = "0.0.0.0"
    port: int = _checked(8000, _port)
    teacher_pin: str = ""
    api_token: str = ""
    session_minutes: int = _checked(480, _positive)


@dataclass(frozen=True)
class OriginConfig:
    """`[cache.origins.<name>]` as a table: the origin's URL and where the cache may depart from RFC 9111 for
    it (offline classrooms, static lesson packs); `name = "<url>"` means a table with the defaults."""

    url: str = ""
    default_ttl_s: int | None = _checked(None, _non_negative)  # None: cache.default_ttl_s
    offline_stale: bool = True  # origin unreachable: serve stored responses however stale (RFC 9111 §4.2.4)
    offline_ignores_revalidate: bool = False  # ... even those marked must-revalidate/no-cache/s-maxage
    stale_on_5xx: bool = False  # origin answers 500/502/503/504: serve the stored response instead
    cdn_cache_control: bool = True  # obey CDN-Cache-Control (RFC 9213) over Cache-Control


@dataclass(frozen=True)
class CacheConfig:
    host: str = "0.0.0.0"
    port: int = _checked(8080, _port)
    dir: str = ""  # default: $CACHE_DIRECTORY, else <state_dir>/cache
    max_bytes: int = _checked(8 * 1024**3, _positive)
    # Freshness for responses without Cache-Control/Expires; 0 = the RFC 9111 heuristic (Last-Modified).
    default_ttl_s: int = _checked(0, _non_negative)
    admin_token: str = ""
    stall_timeout_s: float = _checked(30.0, _positive)
    backoff_s: float = _checked(60.0, _positive)
    # `edge cache serve` worker processes sharing the port (SO_REUSEPORT) and the index; 1 = one process.
    workers: int = _checked(1, _positive)
    origins: dict[str, OriginConfig | str] = field(default_factory=dict)

    def origin(self, name: str) -> OriginConfig:
        """Origin `name` as a table, with the cache-wide default TTL filled in."""
        o = self.origins[name]
        o = OriginConfig(url=o) if isinstance(o, str) else o
        return o if o.default_ttl_s is not None else dataclasses.replace(o, default_ttl_s=self.default_ttl_s)

    def origin_urls(self) -> dict[str, str]:
        return {name: self.origin(name).url for name in self.origins}


@dataclass(frozen=True)
class MasteryConfig:
    host: str = "0.0.0.0"
    port: int = _checked(8090, _port)
    class_key: str = ""
    bands: list[float] = _checked(
        [0.6, 0.95], lambda v: None if len(v) == 2 and 0 < v[0] < v[1] < 1 else "must be [low, high] with 0<low<high<1"
    )
    params: ParamSet = field(default_factory=ParamSet)
    # lesson manifests (the prefetch JSON) whose items map xAPI activity ids to skills
    manifests: list[str] = field(default_factory=list)
    # a snapshot statement per changed student×skill goes to the district this often
    snapshot_minutes: float = _checked(15.0, _positive)
    # account homePage of the students in statements the unit builds itself (compact evidence, snapshots)
    account_home_page: str = _checked("https://classroom-edge.invalid/students", _url("http", "https"))


@dataclass(frozen=True)
class DistrictConfig:
    lrs_url: str = _checked("", _url("http", "https"))
    lrs_user: str = ""
    lrs_password: str = ""
    lrs_token: str = ""
    heartbeat_url: str = _checked("", _url("http", "https"))
    roster_url: str = _checked("", _url("http", "https", "file"))
    batch_size: int = _checked(500, _positive)
    ca_file: str = ""
    sync_interval_s: float = _checked(30.0, _positive)  # an upload round this often (sooner when woken)
    max_requests_per_s: float = _checked(0.0, _non_negative)  # 0 = no limit
    roster_names: bool = False  # keep student names from the roster (never logged); default: ids only


@dataclass(frozen=True)
class EdgeConfig:
    """The whole validated configuration; `source` is the file it came from (or <defaults>)."""

    source: str = DEFAULTS
    unit: UnitConfig = field(default_factory=UnitConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    rotation: RotationConfig = field(default_factory=RotationConfig)
    web: WebConfig = field(default_factory=WebConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    mastery: MasteryConfig = field(default_factory=MasteryConfig)
    district: DistrictConfig = field(default_factory=DistrictConfig)

    @property
    def state_dir(self) -> Path:
        if self.unit.state_dir:
            return Path(self.unit.state_dir)
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        return Path.home() / ".local" / "state" / "classroom-edge"

    @property
    def plans_dir(self) -> Path:
        return Path(self.rotation.plans_dir) if self.rotation.plans_dir else self.state_dir / "plans"

    @property
    def cache_dir(self) -> Path:
        if self.cache.dir:
            return Path(self.cache.dir)
        env = os.environ.get("CACHE_DIRECTORY")
        return Path(env.split(":")[0]) if env else self.state_dir / "cache"


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if origin is dict:
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(hint, str(hint))


def _convert(value: Any, hint: Any, file: str, key: str) -> Any:
    """Check `value` against a type hint; ints are accepted where numbers are expected."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(file, key, "must be a table")
        return read_section(typing.cast(type[Any], hint), value, file, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(file, key, f"must be {_type_name(hint)}, got {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_convert(v, item, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(file, key, f"must be a table, got {type(value).__name__}")
        _, item = typing.get_args(hint)
        return {str(k): _convert(v, item, file, f"{key}.{k}") for k, v in value.items()}
    if origin in (types.UnionType, typing.Union):
        tables = [arm for arm in typing.get_args(hint) if dataclasses.is_dataclass(arm)]
        if tables and isinstance(value, Mapping):  # a table can only be the table arm: report its own errors
            return _convert(value, tables[0], file, key)
        errors = []
        for arm in typing.get_args(hint):
            try:
                return _convert(value, arm, file, key)
            except ConfigError as e:
                errors.append(e.reason)
        raise ConfigError(file, key, errors[0])
    if hint is type(None):
        if value is not None:
            raise ConfigError(file, key, "must be empty")
        return None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, float, bool):
        if type(value) is not hint:
            raise ConfigError(file, key, f"must be {_type_name(hint)}, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r}")  # a programming error, not user input


def read_section(cls: type[T], data: Mapping[str, Any], file: str, prefix: str) -> T:
    """Build dataclass `cls` from a TOML table, rejecting unknown keys and wrong types."""
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source"}
    dot = f"{prefix}." if prefix else ""
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{dot}{name}"
        if name not in fields:
            raise ConfigError(file, key, f"unknown key (known: {', '.join(sorted(fields))})")
        if hints[name] is ParamSet:
            if not isinstance(value, Mapping):
                raise ConfigError(file, key, "must be a table")
            kwargs[name] = parse_params(value, file, key, require_default=False)
            continue
        converted = _convert(value, hints[name], file, key)
        check: Check | None = fields[name].metadata.get("check")
        if check is not None and (reason := check(converted)) is not None:
            raise ConfigError(file, key, reason)
        kwargs[name] = converted
    return cls(**kwargs)


def _validate_whole(cfg: EdgeConfig) -> None:
    """Rules that span keys."""
    file = cfg.source
    pins = {"red": cfg.gpio.red, "amber": cfg.gpio.amber, "green": cfg.gpio.green,
            "buzzer": cfg.gpio.buzzer, "button": cfg.gpio.button}
    seen: dict[int, str] = {}
    for name, pin in pins.items():
        if pin in seen:
            raise ConfigError(file, f"gpio.{name}", f"BCM {pin} is already used by gpio.{seen[pin]}")
        seen[pin] = name
    if cfg.gpio.quiet_hold_seconds <= cfg.gpio.hold_seconds:
        raise ConfigError(file, "gpio.quiet_hold_seconds", "must be longer than gpio.hold_seconds")
    for name, origin in cfg.cache.origins.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.startswith("_"):
            raise ConfigError(file, f"cache.origins.{name}", "origin names are letters, digits, '-', '_', '.'")
        key = f"cache.origins.{name}" if isinstance(origin, str) else f"cache.origins.{name}.url"
        url = origin if isinstance(origin, str) else origin.url
        if not url:
            raise ConfigError(file, key, "missing (the origin's http://, https:// or file:// URL)")
        if reason := _url("http", "https", "file")(url):
            raise ConfigError(file, key, reason)
    for i, period in enumerate(cfg.rotation.periods):
        if not period.plan:
            raise ConfigError(file, f"rotation.periods[{i}].plan", "missing (the saved plan to start)")
    d = cfg.district
    if d.lrs_token and (d.lrs_user or d.lrs_password):
        raise ConfigError(file, "district.lrs_token", "give either lrs_token or lrs_user + lrs_password")
    if bool(d.lrs_user) != bool(d.lrs_password):
        raise ConfigError(file, "district.lrs_password" if d.lrs_user else "district.lrs_user",
                          "lrs_user and lrs_password go together")


def parse_config(data: Mapping[str, Any], file: str = DEFAULTS) -> EdgeConfig:
    """Validate an already-parsed TOML document."""
    cfg = read_section(EdgeConfig, data, file, "")
    cfg = dataclasses.replace(cfg, source=file)
    _validate_whole(cfg)
    return cfg


def load_config(path: str | os.PathLike[str] | None = None) -> EdgeConfig:
    """Load `path`, else $EDGE_CONFIG, else the built-in defaults (a laptop demo on mock pins)."""
    if path is None:
        path = os.environ.get("EDGE_CONFIG") or None
    if path is None:
        return EdgeConfig()
    return parse_config(read_toml(path), os.fspath(path))
