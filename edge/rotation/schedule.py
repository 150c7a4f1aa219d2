"""Bell schedules: which class periods started between two wall-clock moments (local time zone)."""

from __future__ import annotations

from datetime import datetime, timedelta

from edge.config import WEEKDAYS, PeriodConfig


def period_starts(period: PeriodConfig, since: datetime, until: datetime) -> list[datetime]:
    """Start moments of `period` in (since, until]; naive local datetimes."""
    hh, mm = (int(x) for x in period.start.split(":"))
    starts = []
    day = since.date()
    # A unit that was off for weeks must not replay every missed bell: look back at most one week.
    day = max(day, (until - timedelta(days=7)).date())
    while day <= until.date():
        if WEEKDAYS[day.weekday()] in period.days:
            at = datetime(day.year, day.month, day.day, hh, mm)
            if since < at <= until:
                starts.append(at)
        day += timedelta(days=1)
    return starts


def due_period(periods: list[PeriodConfig], since: datetime, until: datetime) -> PeriodConfig | None:
    """The period whose bell rang most recently in (since, until], if any."""
    latest: tuple[datetime, PeriodConfig] | None = None
    for p in periods:
        for at in period_starts(p, since, until):
            if latest is None or at > latest[0]:
                latest = (at, p)
    return latest[1] if latest else None
