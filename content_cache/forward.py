"""What the cache sends upstream on a client's behalf: the client's end-to-end request fields (RFC 9110 §7.6.1),
never the cache's own admin credentials, and for a GET/HEAD it answers from storage without the fields it
evaluates itself (conditionals, Range) and with `Accept-Encoding: identity` (stored bytes are served as
ranges and hashed against manifests, so they must be the representation itself)."""

from __future__ import annotations

from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

from content_cache.fields import Directives, end_to_end
from content_cache.http import request_directives
from edge.serving.auth import bearer_ok

# Set by the client library for the upstream connection, or framing of this message only.
_NOT_FORWARDED = frozenset({"host", "content-length", "expect"})
# Evaluated by the cache against what it stores (or the download in flight), not forwarded on a GET it caches.
CACHE_EVALUATED = frozenset({"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range",
                             "range", "accept-encoding"})


def request_fields(headers: CIMultiDictProxy[str] | CIMultiDict[str], admin_token: str, *,
                   cached: bool) -> CIMultiDict[str]:
    """The client's request fields to forward: end-to-end ones, without framing, without an Authorization
    that carries the cache's own admin token, and (`cached`) without what the cache evaluates itself."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in end_to_end(headers):
        low = name.lower()
        if low in _NOT_FORWARDED or (cached and low in CACHE_EVALUATED):
            continue
        if low == "authorization" and bearer_ok(value, admin_token):
            continue  # the admin API's credential is for this cache, never for an origin
        out.add(name, value)
    if cached:
        out["Accept-Encoding"] = "identity"
    return out


@dataclass(frozen=True)
class Want:
    """A GET or HEAD as the cache handles it: the fields a fetch on its behalf sends upstream (which also select
    among stored variants) and its cache directives (RFC 9111 §5.2.1)."""

    headers: CIMultiDict[str] = field(default_factory=lambda: CIMultiDict({"Accept-Encoding": "identity"}))
    directives: Directives = field(default_factory=dict)

    @classmethod
    def of(cls, headers: CIMultiDictProxy[str] | CIMultiDict[str], admin_token: str) -> Want:
        return cls(request_fields(headers, admin_token, cached=True), request_directives(headers))
