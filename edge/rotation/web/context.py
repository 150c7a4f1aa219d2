"""What every blueprint shares, hung on the app (factories, not globals): config, the rotation, stores."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from edge.config import EdgeConfig, PeriodConfig
from edge.exc import EdgeError
from edge.rotation.periods import PeriodStore
from edge.rotation.service import RotationService
from edge.rotation.store import PlanStore
from edge.rotation.web.ratelimit import FailureLimiter
from edge.rotation.web.sessions import SessionRegistry
from edge.rotation.web.teacherpin import TeacherPin
from edge.serving.health import Health

EXT = "classroom_edge"


@dataclass
class WebContext:
    config: EdgeConfig
    rotation: RotationService
    plans: PlanStore
    periods: PeriodStore
    limiter: FailureLimiter
    sessions: SessionRegistry
    health: Health
    teacher_pin: TeacherPin
    # plan and period writes are read-modify-write (rename = save + delete): one writer at a time
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    # changes on every process start; pages reload themselves when it changes (new code after an update)
    server_id: str = field(default_factory=lambda: secrets.token_hex(8))

    def all_periods(self) -> list[PeriodConfig]:
        """IT's periods (edge.toml) and the teacher's (periods.json; none if that file is unreadable)."""
        try:
            saved = self.periods.periods()
        except EdgeError:
            saved = []
        return [*self.config.rotation.periods, *saved]

    def now(self) -> float:
        """Wall time from the rotation's clock (a FakeClock in tests): sessions and rate limits use it."""
        return self.rotation.clock.time()


def ctx() -> WebContext:
    c: Any = current_app.extensions[EXT]
    assert isinstance(c, WebContext)
    return c
