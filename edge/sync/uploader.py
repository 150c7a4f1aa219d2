"""Upload the outbox to the district xAPI LRS: batches POSTed to `<lrs_url>/statements` (xAPI 1.0.3).

Delivery rules (why each one is there):
- A batch is marked sent only after a 2xx. 204 to a re-sent batch means the LRS already held every statement
  (we crashed after it stored them, before we marked them): delivered. At-least-once + statement ids =
  exactly-once at the LRS.
- 409 (a *different* statement holds one of the ids) or 400 (the LRS rejects a statement) reject the whole
  batch. The batch is split in halves and each half re-posted, down to single statements, which are
  quarantined with the LRS's reason; the rest goes through. Every re-post is strictly smaller, so this
  terminates (≤ 2·k·log2(batch) extra requests for k bad statements): never a retry loop.
- A 5xx that keeps coming back for the same batch is treated like a rejection too: one bad statement can
  crash an LRS's handler (Ralph answers 500 to some invalid ones) and would otherwise hold every statement
  behind it. After SPLIT_AFTER_5XX failed attempts a batch is bisected; a single statement still failing is
  quarantined with the LRS's answer, but only in a round where the LRS accepted others (an LRS that fails
  everything is down, not picky: nothing is quarantined then). 502/503/504 never count (gateway, busy).
- Anything else (network error, timeout, a first 5xx, 429, 401/403) ends the round with nothing marked; the
  caller retries with exponential back-off and full jitter (and at least the server's Retry-After).
- Statements with attachments sent without a fileUrl go as multipart/mixed with their content (kept in the
  outbox file's attachments table), as xAPI requires.
- 413: the batch is halved for the rest of the process's life.
- gzip: xAPI says nothing about compressed requests; RFC 7694 does. The request body is gzipped once the LRS
  has listed gzip in an `Accept-Encoding` response header; a 415 to a gzipped request turns it off again.
- TLS verification is always on for https (`ca_file` adds the district's CA bundle).
Log lines carry counts and statement ids only (never statement bodies: they name students).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import random
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from edge.config import DistrictConfig
from edge.sync.outbox import Outbox, OutboxItem
from edge.xapi import multipart

log = logging.getLogger(__name__)
T = TypeVar("T")
XAPI_VERSION = "1.0.3"


def statements_url(lrs_url: str) -> str:
    """`<lrs_url>/statements` unless the configured URL already ends in /statements."""
    base = lrs_url.rstrip("/")
    return base if base.endswith("/statements") else base + "/statements"


def auth_header(district: DistrictConfig) -> str | None:
    if district.lrs_token:
        return f"Bearer {district.lrs_token}"
    if district.lrs_user:
        raw = f"{district.lrs_user}:{district.lrs_password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")
    return None


def ssl_context(district: DistrictConfig) -> ssl.SSLContext:
    """Verification on (hostname + chain); the district CA bundle added when configured."""
    return ssl.create_default_context(cafile=district.ca_file or None)


STATEMENT_REJECTIONS = (400, 409, 422)  # the LRS refuses (some of) the statements themselves
MAX_REJECTS_WITHOUT_SUCCESS = 20
SPLIT_AFTER_5XX = 3  # failed attempts (5xx) of the same statements before their batch is bisected
NOT_THE_STATEMENTS = (502, 503, 504)  # 5xx that say the LRS (or its gateway) is unavailable


class _TooLarge(Exception):
    """413: the request body is too large for the LRS."""


class TransientError(Exception):
    """This round cannot go on (LRS down, 5xx, auth); retry later. `retry_after` is the server's hint."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class RoundResult:
    sent: int = 0
    quarantined: int = 0
    requests: int = 0
    rejected: int = 0
    error: str | None = None
    retry_after: float | None = None
    suspects: list[tuple[OutboxItem, str]] = field(default_factory=list)  # single statements that keep 5xx-ing

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Backoff:
    """Exponential back-off with full jitter: delay ~ U(0, min(cap, base·2^failures)), ≥ Retry-After."""

    base_s: float = 1.0
    cap_s: float = 300.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.failures))
        self.failures += 1
        delay = self.rng.uniform(0, ceiling)
        return max(delay, min(retry_after or 0.0, self.cap_s))

    def reset(self) -> None:
        self.failures = 0


class Uploader:
    """Drains an Outbox to the LRS. One instance per process; `run_round()` may be called repeatedly."""

    def __init__(
        self,
        outbox: Outbox,
        district: DistrictConfig,
        *,
        concurrency: int = 2,
        max_requests_per_s: float | None = None,
        timeout_s: float = 60.0,
        gzip_requests: bool | None = None,
    ) -> None:
        if not district.lrs_url:
            raise ValueError("no district.lrs_url: sync is off")
        self.outbox = outbox
        self.district = district
        self.url = statements_url(district.lrs_url)
        self.batch_size = district.batch_size
        self.concurrency = max(1, concurrency)
        self.min_interval = 1.0 / max_requests_per_s if max_requests_per_s else 0.0
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(10.0, timeout_s))
        self.gzip: bool = bool(gzip_requests)
        self._gzip_auto = gzip_requests is None
        self._headers = {"X-Experience-API-Version": XAPI_VERSION}
        if (auth := auth_header(district)) is not None:
            self._headers["Authorization"] = auth
        self._ssl: ssl.SSLContext | bool = ssl_context(district) if self.url.startswith("https://") else False
        self._session: aiohttp.ClientSession | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-outbox")  # SQLite off the loop
        self._next_request_at = 0.0
        self._lock = asyncio.Lock()
        self._failures: dict[str, int] = {}  # statement id -> 5xx answers to batches holding it
        self._stale_connections = 0  # pooled connections that may have died with a 5xx (see _post)

    async def _run_db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._db.shutdown(wait=True)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.concurrency, ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout,
                                                  auto_decompress=True, trust_env=False)
        return self._session

    # -- one round ---------------------------------------------------------------------------------------
    async def run_round(self) -> RoundResult:
        """Send everything pending now; stop at the first transient failure (nothing is lost: it stays queued)."""
        async with self._lock:  # `edge sync now` and the timer must not run two rounds at once
            result = RoundResult()
            try:
                await self._drain(result)
                await self._settle_suspects(result)
            except TransientError as e:
                result.error, result.retry_after = str(e), e.retry_after
                await self._run_db(self.outbox.note_error, str(e))
                log.warning("sync: %s (%d sent this round; will retry)", e, result.sent)
                return result
            await self._run_db(self.outbox.note_success)
            if result.sent or result.quarantined:
                log.info("sync: %d statements delivered, %d quarantined", result.sent, result.quarantined)
            return result

    async def _drain(self, result: RoundResult) -> None:
        cursor = 0
        in_flight: set[asyncio.Task[None]] = set()
        failure: TransientError | None = None
        try:
            while failure is None:
                items: list[OutboxItem] = await self._run_db(self.outbox.pending, self.batch_size, cursor)
                if not items:
                    break
                cursor = items[-1].seq
                while len(in_flight) >= self.concurrency:
                    done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    first = _first_failure(done)  # always: it retrieves every finished task's exception
                    failure = failure or first
                if failure is not None:
                    break
                in_flight.add(asyncio.create_task(self._deliver(items, result)))
            if in_flight:
                done, in_flight = await asyncio.wait(in_flight)
                first = _first_failure(done)
                failure = failure or first
        finally:
            for t in in_flight:  # cancelled from outside (shutdown): leave the rest queued
                t.cancel()
        if failure is not None:
            raise failure

    async def _deliver(self, items: Sequence[OutboxItem], result: RoundResult) -> None:
        """POST `items`; on a statement-level rejection split and recurse down to the culprit(s)."""
        for start in range(0, len(items), self.batch_size):  # batch_size may have shrunk after a 413
            chunk = items[start : start + self.batch_size]
            try:
                status, reason, retry_after = await self._post(chunk, result)
            except _TooLarge:
                if len(chunk) == 1:
                    await self._quarantine(chunk[0], "LRS answered 413: statement too large", result)
                    continue
                self.batch_size = max(1, len(chunk) // 2)
                log.warning("sync: LRS says the batch is too large; batch size now %d", self.batch_size)
                await self._deliver(chunk, result)
                continue
            if 200 <= status < 300:
                n = await self._run_db(self.outbox.mark_sent, [i.id for i in chunk])
                result.sent += n  # (not `+= await ...`: that reads `sent` before the await and loses updates)
                for i in chunk:
                    self._failures.pop(i.id, None)
            elif status >= 500:
                tries = 1 + max(self._failures.get(i.id, 0) for i in chunk)
                for i in chunk:
                    self._failures[i.id] = tries
                if tries < SPLIT_AFTER_5XX:
                    raise TransientError(f"LRS answered {status}: {reason}", retry_after)
                if len(chunk) == 1:
                    result.suspects.append((chunk[0], f"LRS answered {status} {tries} times: {reason}"))
                    continue
                half = len(chunk) // 2
                await self._deliver(chunk[:half], result)
                await self._deliver(chunk[half:], result)
            elif len(chunk) == 1:
                if status != 409:
                    # A request-level 400 (misconfiguration) would otherwise quarantine the whole backlog.
                    result.rejected += 1
                    if result.sent == 0 and result.rejected > MAX_REJECTS_WITHOUT_SUCCESS:
                        raise TransientError(f"LRS rejects every statement ({status}: {reason}); check the LRS")
                await self._quarantine(chunk[0], f"LRS answered {status}: {reason}", result)
            else:
                half = len(chunk) // 2
                await self._deliver(chunk[:half], result)
                await self._deliver(chunk[half:], result)

    async def _quarantine(self, item: OutboxItem, why: str, result: RoundResult) -> None:
        if await self._run_db(self.outbox.quarantine, item.id, why):
            result.quarantined += 1
        self._failures.pop(item.id, None)
        log.warning("sync: statement %s quarantined (%s)", item.id, why.split(":")[0])

    async def _settle_suspects(self, result: RoundResult) -> None:
        """Quarantine the statements that keep failing alone, if the LRS took others this round."""
        if not result.suspects:
            return
        if not result.sent:
            raise TransientError(f"LRS answers 5xx to every statement tried ({result.suspects[0][1]})")
        for item, why in result.suspects:
            await self._quarantine(item, why, result)

    async def _post(self, chunk: Sequence[OutboxItem], result: RoundResult) -> tuple[int, str, float | None]:
        """One POST; returns (status, reason, Retry-After) for 2xx, statement-level rejections and 5xx that
        may be the statements' fault; raises otherwise."""
        payload, ctype = await self._payload(chunk)
        attempts = 0
        while attempts < 2:  # a 415 to a gzipped request is retried once, uncompressed
            attempts += 1
            await self._pace()
            headers = {**self._headers, "Content-Type": ctype}
            data = payload
            if self.gzip:
                data = gzip.compress(payload, compresslevel=5)
                headers["Content-Encoding"] = "gzip"
            result.requests += 1
            try:
                async with self._client().post(self.url, data=data, headers=headers) as resp:
                    text = (await resp.text(errors="replace"))[:2000]
                    status = resp.status
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    if self._gzip_auto and "gzip" in resp.headers.get("Accept-Encoding", "").lower():
                        self.gzip = True
                if status >= 500:
                    # A server that failed may close its kept-alive connections unannounced (uvicorn does after
                    # an unhandled exception, e.g. Ralph's 500s): a reset on a pooled one is retried (once each).
                    self._stale_connections = self.concurrency
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as e:
                if self._stale_connections > 0:
                    self._stale_connections -= 1
                    attempts -= 1
                    continue
                raise TransientError(f"cannot reach the LRS: {type(e).__name__}") from None
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                raise TransientError(f"cannot reach the LRS: {type(e).__name__}") from None
            if 200 <= status < 300 or status in STATEMENT_REJECTIONS or (
                    status >= 500 and status not in NOT_THE_STATEMENTS):
                return status, _reason(text), retry_after
            if status == 415 and self.gzip:
                log.info("sync: LRS refused a gzipped request (415); sending uncompressed")
                self.gzip = self._gzip_auto = False
                continue
            if status == 413:
                raise _TooLarge()
            if status in (401, 403):
                raise TransientError(f"LRS refused the credentials ({status}): check district.lrs_* settings")
            raise TransientError(f"LRS answered {status}: {_reason(text)}", retry_after)
        raise TransientError("LRS refuses the request format (415)")

    async def _payload(self, chunk: Sequence[OutboxItem]) -> tuple[bytes, str]:
        """The request body: a JSON array, or multipart/mixed when statements carry attachment content."""
        statements = ("[" + ",".join(i.body for i in chunk) + "]").encode()
        wanted = {str(a["sha2"]).lower() for i in chunk if '"attachments"' in i.body
                  for a in json.loads(i.body).get("attachments", ()) if "fileUrl" not in a}
        if not wanted:
            return statements, "application/json"
        held: dict[str, tuple[str, bytes]] = await self._run_db(self.outbox.attachments, wanted)
        return multipart.build(statements, [(h, ctype, data) for h, (ctype, data) in sorted(held.items())])

    async def _pace(self) -> None:
        if not self.min_interval:
            return
        now = time.monotonic()
        wait = self._next_request_at - now
        self._next_request_at = max(now, self._next_request_at) + self.min_interval
        if wait > 0:
            await asyncio.sleep(wait)

    # -- the service loop --------------------------------------------------------------------------------
    async def run_forever(self, stop: asyncio.Event, wake: asyncio.Event, *, interval_s: float = 30.0,
                          backoff: Backoff | None = None) -> None:
        """Rounds every `interval_s` (or when `wake` is set); after a failure wait the back-off instead."""
        backoff = backoff or Backoff()
        while not stop.is_set():
            wake.clear()
            result = await self.run_round()
            if result.ok:
                backoff.reset()
                delay = interval_s
            else:
                delay = backoff.next_delay(result.retry_after)
            stopper = asyncio.ensure_future(stop.wait())
            waker = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({stopper, waker}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                waker.cancel()


def _first_failure(done: set[asyncio.Task[None]]) -> TransientError | None:
    """The first transient failure among finished tasks; every task's exception is retrieved (no asyncio
    "exception was never retrieved" noise), and an unexpected one is raised after looking at them all."""
    failure: TransientError | None = None
    unexpected: BaseException | None = None
    for t in done:
        exc = t.exception()
        if isinstance(exc, TransientError):
            failure = failure or exc
        elif exc is not None:
            unexpected = unexpected or exc
    if unexpected is not None:
        raise unexpected
    return failure


def _reason(text: str) -> str:
    """A short reason from an LRS error body, without echoing statement content (it names students).

    Ralph/FastAPI: {"detail": "text"} or {"detail": [{"loc": [...], "msg": "...", "input": ...}]}; only
    `detail` strings and the `loc`/`msg` of validation errors are kept.
    """
    try:
        body = json.loads(text)
    except ValueError:
        return "no JSON detail"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail[:200]
    if isinstance(detail, list):
        parts = []
        for err in detail[:3]:
            if isinstance(err, dict):
                loc = ".".join(str(x) for x in err.get("loc", []))
                parts.append(f"{loc}: {err.get('msg', '')}")
        return "; ".join(parts)[:200]
    return "no detail"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
