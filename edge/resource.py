"""Things that hold an OS resource (a file, a database, pins, a thread) and must be closed after use.

`with Thing(...) as thing:` closes it at the end, the way gpiozero devices and diskcache caches work, so
callers do not write try/finally by hand.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Resource:
    """Give a class with `close()` the context-manager form."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
