"""Talking to origins: HTTP(S) through one aiohttp client session, `file://` packs read from disk.

Both kinds answer through the same small `UpstreamResponse` so the download logic does not care where the
bytes come from. A stall (no bytes for `stall_timeout_s`) is an `UpstreamError(kind="stall")`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import mimetypes
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from content_cache.http import Unsatisfiable, check_conditionals, http_date, if_range_allows, parse_range
from edge.exc import UpstreamError

CHUNK = 256 * 1024
KEEPALIVE_S = 4.0


@dataclass
class UpstreamResponse:
    status: int
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    chunks: AsyncIterator[bytes]
    reason: str = ""


class Upstream:
    """Opens upstream requests; counts them (the coalescing tests and bench rely on the count)."""

    def __init__(self, stall_timeout_s: float) -> None:
        self.stall_timeout_s = stall_timeout_s
        self.requests = 0
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=min(10.0, self.stall_timeout_s), sock_read=self.stall_timeout_s
            )
            # Idle connections go before common servers close them (Node and Apache: 5 s), so a request rarely
            # meets a connection the origin is just closing.
            connector = aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_S)
            # auto_decompress off: we store and pass on exactly the bytes the origin sent.
            self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False, connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @asynccontextmanager
    async def open(self, url: str, headers: Mapping[str, str], *, method: str = "GET",
                   data: AsyncIterable[bytes] | None = None) -> AsyncIterator[UpstreamResponse]:
        """One upstream request (redirects are answers, not followed); raises UpstreamError when no usable
        response comes (and while streaming its body)."""
        self.requests += 1
        if url.startswith("file://"):
            yield _open_file(Path(unquote(urlsplit(url).path)), headers, method)
            return
        # aiohttp sends an idempotent request once more when its connection breaks before an answer (an idle
        # connection the origin closed just as it was reused); a POST, or a body already streamed, never.
        with self._as_upstream_errors("upstream unreachable"):
            resp = await self._client().request(method, url, headers=headers, data=data, allow_redirects=False)
        try:
            yield UpstreamResponse(resp.status, resp.headers, self._iter(resp), resp.reason or "")
        finally:
            resp.release()

    async def _iter(self, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        with self._as_upstream_errors("upstream connection lost"):
            async for chunk in resp.content.iter_any():
                yield chunk

    @contextmanager
    def _as_upstream_errors(self, down: str) -> Iterator[None]:
        """Client errors as UpstreamError: down (no connection: refused, DNS, connect timeout), stall (no data
        for stall_timeout_s), reset (the connection broke), invalid (not HTTP) or short (body broken off)."""
        try:
            yield
        except UpstreamError:
            raise
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as e:
            raise UpstreamError("down", f"{down}: {e}") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamError("stall", f"upstream stalled: no data for {self.stall_timeout_s:g} s") from None
        except aiohttp.ClientPayloadError as e:
            raise UpstreamError("short", f"upstream broke off the body: {e}") from None
        except aiohttp.ClientResponseError as e:
            raise UpstreamError("invalid", f"upstream sent an invalid response: {e.message}") from None
        except (aiohttp.ClientError, OSError) as e:
            raise UpstreamError("reset", f"upstream connection broke: {e}") from None


def _file_refusal(status: int, message: str) -> UpstreamResponse:
    """A lesson pack's answer to a request it cannot serve (a client error: the origin stays healthy)."""
    return UpstreamResponse(status, CIMultiDict({"Content-Type": "application/json"}),
                            _once(json.dumps({"error": message}).encode()))


def _file_etag(st: os.stat_result) -> str:
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def _open_file(path: Path, headers: Mapping[str, str], method: str) -> UpstreamResponse:
    """Answer like a small origin server for a lesson pack on disk (validators, 304, single ranges)."""
    out: CIMultiDict[str] = CIMultiDict()
    if method not in ("GET", "HEAD"):
        out["Allow"] = "GET, HEAD"
        out["Content-Type"] = "application/json"
        return UpstreamResponse(405, out, _once(b'{"error": "a lesson pack is read-only"}'))
    try:
        st = path.stat()
        if not path.is_file():
            raise FileNotFoundError(path)
    except (FileNotFoundError, NotADirectoryError):
        return _file_refusal(404, "not found in the lesson pack")
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:  # the client chose the name: its error, never the pack's health
            return _file_refusal(414, "the file name is longer than the lesson pack's file system allows")
        raise UpstreamError("down", f"lesson pack unreadable: {e.strerror}") from None
    etag = _file_etag(st)
    out["ETag"] = etag
    out["Last-Modified"] = http_date(st.st_mtime)
    out["Content-Type"] = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    status = check_conditionals(headers, etag, st.st_mtime)
    if status is not None:
        return UpstreamResponse(status, out, _once(b""))
    start, end = 0, st.st_size
    code = 200
    if if_range_allows(headers, etag, st.st_mtime):
        try:
            ranges = parse_range(headers.get("Range"), st.st_size)
        except Unsatisfiable:
            out["Content-Range"] = f"bytes */{st.st_size}"
            return UpstreamResponse(416, out, _once(b""))
        if ranges and len(ranges) == 1:
            (start, end), code = ranges[0], 206
            out["Content-Range"] = f"bytes {start}-{end - 1}/{st.st_size}"
    out["Content-Length"] = str(end - start)
    return UpstreamResponse(code, out, _read_file(path, start, end))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


async def _read_file(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = start
        while pos < end:
            # A USB stick can block for long: read in the default executor, not on the loop.
            data = await loop.run_in_executor(None, os.pread, fd, min(CHUNK, end - pos), pos)
            if not data:
                raise UpstreamError("short", "lesson pack file shrank while reading")
            pos += len(data)
            yield data
    finally:
        os.close(fd)
