"""Wrong-PIN rate limiting: a sliding window of failures per client address, plus one for all clients.

A 4-digit PIN has 10,000 values: 5 tries per 5 minutes per address and 30 per 5 minutes in all keep a
guessing laptop busy for days, while a teacher who mistypes twice is never locked out for long.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

ALL = "*"


class FailureLimiter:
    def __init__(self, now: Callable[[], float], per_client: int = 5, overall: int = 30,
                 window_s: float = 300.0) -> None:
        self._now = now
        self.per_client = per_client
        self.overall = overall
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q and key != ALL:
            del self._failures[key]  # forget quiet clients so the table cannot grow without bound
            return deque()
        return q

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again (0 = now)."""
        now = self._now()
        with self._lock:
            waits = []
            for key, limit in ((client, self.per_client), (ALL, self.overall)):
                q = self._recent(key, now)
                if len(q) >= limit:
                    waits.append(q[len(q) - limit] + self.window_s - now)
            return max(waits, default=0.0)

    def failed(self, client: str) -> None:
        now = self._now()
        with self._lock:
            for key in (client, ALL):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
