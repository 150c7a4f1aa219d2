"""The one typed configuration (`edge.toml`), validated at start; errors name the file, the key and why.

Every section is a frozen dataclass; `read_section` checks unknown keys, types and per-field rules
(`field(metadata={"check": ...})`) so that each section is declared once, here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edge.exc import ConfigError
from edge.limits import PERIODS_MAX, name_problem
from edge.params import ParamSet, parse_params
from edge.tomlfile import read_toml

T = TypeVar("T")
DEFAULTS = "<defaults>"
Check = Callable[[Any], str | None]


def _port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else "must be a TCP port 0..65535"


def _bcm(v: int) -> str | None:
    return None if 0 <= v <= 27 else "must be a BCM GPIO number 0..27"


def _between(low: float, high: float, *, low_open: bool = False) -> Check:
    """A number in [low, high] (or (low, high] when `low_open`): limits no real unit meets, but bounded."""
    def check(v: float) -> str | None:
        if (v <= low) if low_open else (v < low):
            return f"must be greater than {low:g}" if low_open else (
                "must not be negative" if low == 0 else f"must be at least {low:g}")
        return None if v <= high else f"must be at most {high:g}"

    return check


def _name(v: str) -> str | None:
    return None if not v else name_problem(v)


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


def _origins(v: list[str]) -> str | None:
    for o in v:
        if o != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", o):
            return f"must be origins like https://lessons.example.org or http://10.0.0.5:8080, got {o!r}"
    return None


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

    room: str = _checked("Demo room", _name)
    school: str = _checked("", _name)
    state_dir: str = ""  # default: $STATE_DIRECTORY, else ~/.local/state/classroom-edge
    id: str = _checked("", lambda v: None if re.fullmatch(r"[A-Za-z0-9._-]{0,64}", v) else
                       "must be at most 64 letters, digits, '.', '_', '-' (empty: derived from /etc/machine-id)")
    advertise: bool = True  # announce this unit on the LAN with mDNS/DNS-SD (edge.fleet.advertise)


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
    hold_seconds: float = _checked(2.0, _between(0, 60, low_open=True))
    quiet_hold_seconds: float = _checked(5.0, _between(0, 60, low_open=True))


@dataclass(frozen=True)
class PeriodConfig:
    """A class period: on these weekdays at `start` (local time) the named saved plan starts by itself."""

    name: str = _checked("", _name)
    plan: str = _checked("", _name)
    days: list[str] = _checked(list(WEEKDAYS[:5]), _days)
    start: str = _checked("08:00", _hhmm)


@dataclass(frozen=True)
class RotationConfig:
    quiet: bool = False
    # SCHED_FIFO priority of the thread that keeps time and drives the cues (0 = ordinary scheduling): a loaded
    # Pi still changes the LEDs at the deadline. Needs RLIMIT_RTPRIO (the unit sets LimitRTPRIO) or root.
    realtime_priority: int = _checked(10, _between(0, 99))
    plans_dir: str = ""  # default: <state_dir>/plans
    periods: list[PeriodConfig] = field(default_factory=list)


@dataclass(frozen=True)
class WebConfig:
    host: str = "0.0.0.0"
    port: int = _checked(8000, _port)
    teacher_pin: str = ""
    api_token: str = ""
    session_minutes: int = _checked(480, _between(1, 7 * 24 * 60))


@dataclass(frozen=True)
class OriginConfig:
    """`[cache.origins.<name>]` as a table: the origin's URL and where the cache may depart from RFC 9111 for
    it (offline classrooms, static lesson packs); `name = "<url>"` means a table with the defaults."""

    url: str = ""
    default_ttl_s: int | None = _checked(None, _between(0, 366 * 86400))  # None: cache.default_ttl_s
    offline_stale: bool = True  # origin unreachable: serve stored responses however stale (RFC 9111 §4.2.4)
    offline_ignores_revalidate: bool = False  # ... even those marked must-revalidate/no-cache/s-maxage
    stale_on_5xx: bool = False  # origin answers 500/502/503/504: serve the stored response instead
    cdn_cache_control: bool = True  # obey CDN-Cache-Control (RFC 9213) over Cache-Control


@dataclass(frozen=True)
class CacheConfig:
    host: str = "0.0.0.0"
    port: int = _checked(8080, _port)
    dir: str = ""  # default: $CACHE_DIRECTORY, else <state_dir>/cache
    max_bytes: int = _checked(8 * 1024**3, _between(1, 2**41))
    # Freshness for responses without Cache-Control/Expires; 0 = the RFC 9111 heuristic (Last-Modified).
    default_ttl_s: int = _checked(0, _between(0, 366 * 86400))
    admin_token: str = ""
    stall_timeout_s: float = _checked(30.0, _between(0, 3600, low_open=True))
    backoff_s: float = _checked(60.0, _between(0, 86400, low_open=True))
    # `edge cache serve` worker processes sharing the port (SO_REUSEPORT) and the index; 1 = one process.
    workers: int = _checked(1, _between(1, 16))
    origins: dict[str, OriginConfig | str] = field(default_factory=dict)

    def origin(self, name: str) -> OriginConfig:
        """Origin `name` as a table, with the cache-wide default TTL filled in."""
        o = self.origins[name]
        o = OriginConfig(url=o) if isinstance(o, str) else o
        return o if o.default_ttl_s is not None else dataclasses.replace(o, default_ttl_s=self.default_ttl_s)

    def origin_urls(self) -> dict[str, str]:
        return {name: self.origin(name).url for name in self.origins}


@dataclass(frozen=True)
class GroupsConfig:
    """Regrouping by mastery (edge.rotation.groups): the defaults a teacher can change per proposal."""

    min_size: int = _checked(3, _between(1, 40))
    max_size: int = _checked(6, _between(1, 40))
    margin: float = _checked(0.05, _between(0, 0.5))  # keep students this close to a boundary where they are
    mode: str = _checked("homogeneous", lambda v: None if v in ("homogeneous", "mixed")
                         else "must be homogeneous or mixed")
    min_evidence: int = _checked(3, _between(0, 10_000))  # fewer opportunities = thin: not placed by score


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
    snapshot_minutes: float = _checked(15.0, _between(0, 1440, low_open=True))
    # account homePage of the students in statements the unit builds itself (compact evidence, snapshots)
    # and of the actor in launch links
    account_home_page: str = _checked("https://classroom-edge.invalid/students", _url("http", "https"))
    # browser origins (scheme://host[:port]) whose lesson pages may call the xAPI endpoint, besides the
    # lesson cache on this unit (allowed by itself); "*" allows any origin
    cors_origins: list[str] = _checked([], _origins)
    # how long a launch link's credential works (minutes): a lesson opened from the student page
    launch_minutes: float = _checked(240.0, _between(0, 7 * 24 * 60, low_open=True))


@dataclass(frozen=True)
class DistrictConfig:
    lrs_url: str = _checked("", _url("http", "https"))
    lrs_user: str = ""
    lrs_password: str = ""
    lrs_token: str = ""
    heartbeat_url: str = _checked("", _url("http", "https"))
    heartbeat_token: str = ""  # the school's district token: `Authorization: Bearer` to heartbeat_url only
    roster_url: str = _checked("", _url("http", "https", "file"))
    batch_size: int = _checked(500, _between(1, 10_000))
    ca_file: str = ""
    # an upload round this often (sooner when woken)
    sync_interval_s: float = _checked(30.0, _between(0, 86400, low_open=True))
    max_requests_per_s: float = _checked(0.0, _between(0, 1000))  # 0 = no limit
    roster_names: bool = False  # keep student names from the roster (never logged); default: ids only


def _school_tokens(v: dict[str, str]) -> str | None:
    for school, token in v.items():
        if not school or len(school) > 100:
            return f"school names are 1..100 characters (got {school!r})"
        if len(token) < 16:
            return f"the token of {school!r} must be at least 16 characters"
    if len(set(v.values())) != len(v):
        return "every school needs its own token (two schools share one)"
    return None


@dataclass(frozen=True)
class FleetConfig:
    """The district collector (`edge fleet serve`, on a district server, not on a Pi)."""

    host: str = "0.0.0.0"
    port: int = _checked(8470, _port)
    db: str = ""  # default: <state_dir>/fleet/fleet.sqlite3
    offline_minutes: float = _checked(15.0, _between(0, 7 * 24 * 60, low_open=True))  # silent longer = offline
    max_units: int = _checked(10_000, _between(1, 1_000_000))
    tokens: dict[str, str] = field(default_factory=dict, metadata={"check": _school_tokens})  # school -> token


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
    groups: GroupsConfig = field(default_factory=GroupsConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)

    @property
    def config_dir(self) -> Path | None:
        """The directory of the config file (where an imaged unit's first boot leaves provision.json and the
        teacher setup code beside edge.toml); None for the built-in defaults."""
        return None if self.source == DEFAULTS else Path(self.source).parent

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
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(file, key, f"must be a finite number, got {value!r}")
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
    if len(cfg.rotation.periods) > PERIODS_MAX:
        raise ConfigError(file, "rotation.periods", f"at most {PERIODS_MAX} periods (got {len(cfg.rotation.periods)})")
    for i, period in enumerate(cfg.rotation.periods):
        if not period.plan:
            raise ConfigError(file, f"rotation.periods[{i}].plan", "missing (the saved plan to start)")
    if cfg.groups.min_size > cfg.groups.max_size:
        raise ConfigError(file, "groups.min_size", f"must not be larger than groups.max_size ({cfg.groups.max_size})")
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
