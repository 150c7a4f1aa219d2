"""Request targets → (configured origin, normalised path, cache key, upstream location).

Only origins named in config are reachable (no open proxy). Paths are decoded segment by segment from the
raw request path so that encoded traversal (`%2e%2e`, `%2f`) is seen and refused, not "normalised away".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit

from edge.exc import TargetError

_SAFE = "!$&'()*+,;=:@~-._"  # pchar characters kept as-is when re-encoding a segment (RFC 3986)


@dataclass(frozen=True)
class Target:
    origin: str
    path: str  # decoded, '/'-joined, no leading slash
    key: str  # cache key: origin/path[?query]
    url: str  # upstream URL (http/https) or file:// URL of the resolved file


def split_segments(raw_path: str) -> list[str]:
    """Decode and check each path segment; raises TargetError(400) on traversal or odd bytes."""
    segments: list[str] = []
    parts = raw_path.split("/")
    for i, raw in enumerate(parts):
        if raw == "" and i == len(parts) - 1:
            segments.append("")  # trailing slash: a directory-style URL
            continue
        if raw == "":
            raise TargetError(400, "empty path segment ('//') is not allowed")
        try:
            seg = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise TargetError(400, "path is not valid UTF-8 after percent-decoding") from None
        if seg in (".", ".."):
            raise TargetError(400, "path traversal ('.' or '..' segments) is not allowed")
        if "/" in seg or "\\" in seg:
            raise TargetError(400, "encoded '/' or '\\' in a path segment is not allowed")
        if any(ord(c) < 0x20 or c == "\x7f" for c in seg):
            raise TargetError(400, "control characters in the path are not allowed")
        segments.append(seg)
    return segments


def resolve_target(raw_target: str, origins: dict[str, str]) -> Target:
    """Map `/<origin>/<path>[?query]` (raw, still percent-encoded) to a Target.

    Unknown origins → TargetError(404); traversal, absolute or malformed paths → TargetError(400).
    """
    raw_path, _, query = raw_target.partition("?")
    if not raw_path.startswith("/"):
        raise TargetError(400, "request target must be an absolute path")
    head, _, rest = raw_path[1:].partition("/")
    origin = unquote(head)
    if origin not in origins:
        raise TargetError(404, f"unknown origin {origin!r}: only configured origins are served")
    segments = split_segments(rest) if rest else [""]  # `/<origin>/` is the origin's index
    base = origins[origin]
    if base.startswith("file://"):
        if segments[-1] == "":
            segments[-1] = "index.html"
        root = Path(urlsplit(base).path).resolve()
        file = root.joinpath(*segments).resolve()
        # A symlink inside the pack must not lead outside it.
        if not file.is_relative_to(root):
            raise TargetError(400, "path leads outside the origin")
        path = "/".join(segments)
        return Target(origin, path, f"{origin}/{path}", file.as_uri())
    path = "/".join(segments)
    url = base.rstrip("/") + "/" + "/".join(quote(s, safe=_SAFE) for s in segments)
    key = f"{origin}/{path}"
    if query:
        url += "?" + query
        key += "?" + query
    return Target(origin, path, key, url)


def local_path(url: str, base_url: str, origins: dict[str, str]) -> tuple[str, str] | None:
    """(origin name, raw request target) that `url` (absolute, or relative to `base_url`) has on this cache,
    when it lies under a configured HTTP origin; None otherwise."""
    absolute = urldefrag(urljoin(base_url, url.strip())).url
    for name, root in origins.items():
        if root.startswith("file://"):
            continue
        prefix = root.rstrip("/") + "/"
        if absolute.startswith(prefix) or absolute == root.rstrip("/"):
            return name, f"/{quote(name, safe='')}/{absolute[len(prefix):]}"
    return None


def localize_location(value: str, base_url: str, origins: dict[str, str]) -> str:
    """A redirect's Location as this cache's URL when it points into a configured origin (as nginx's
    proxy_redirect does), so that following it stays on the cache, also offline; else unchanged."""
    found = local_path(value, base_url, origins)
    return found[1] if found is not None else value


def local_key(url: str, target: Target, origins: dict[str, str]) -> str | None:
    """The cache key of `url` (relative to the target's upstream URL) if it lies under the target's own
    origin: RFC 9111 §4.4 lets an unsafe request invalidate Location/Content-Location only on one origin."""
    found = local_path(url, target.url, origins)
    if found is None or found[0] != target.origin:
        return None
    try:
        return resolve_target(found[1], origins).key
    except TargetError:
        return None
