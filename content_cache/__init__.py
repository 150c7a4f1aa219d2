"""The lesson cache: Chromebooks fetch lessons from the classroom unit instead of the internet.

`make_app(config)` builds the aiohttp application; `start_cache(config)` binds it for `edge run`.
"""

from __future__ import annotations

from content_cache.server import make_app, start_cache

__all__ = ["make_app", "start_cache"]
