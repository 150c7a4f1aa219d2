"""Announce this unit on the LAN: one mDNS/DNS-SD `_classroom-edge._tcp` service per unit (python-zeroconf).

Two front-ends over one asyncio core:

    async with AsyncAdvertiser(config) as adv:     # inside an asyncio service (aiohttp)
        ...
    adv = Advertiser(config).start()               # from a threaded service (flask + waitress): own loop thread
    ...
    adv.stop()                                     # goodbye packets, then the thread ends (also `with Advertiser(...)`)

- TXT: txtvers, id, room, school, version, board/cache/intake ports, api path (see `txt_record`). The SRV
  record points at the board (pages) port on host `ce-<unit id>.local.`: never the machine's own host name,
  which avahi-daemon owns when it runs (both stacks then answer on UDP 5353 side by side, see
  tests/fleet/test_avahi.py).
- Addresses: every IPv4 address of the host except loopback (loopback only when there is nothing else).
  They are re-read every `check_every_s`; on a change the sockets are reconciled and the records are
  announced again with the new addresses.
- `stop()` (and leaving the context) sends goodbye packets (TTL 0) so browsers drop the unit at once.
- `[unit] advertise = false` makes start/stop do nothing (and say so once in the log).
- A unit whose network cannot do multicast keeps running: the error is logged and kept in `.error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from edge import __version__
from edge.config import EdgeConfig
from edge.fleet.identity import unit_id as default_unit_id

log = logging.getLogger(__name__)
SERVICE_TYPE = "_classroom-edge._tcp.local."
API_PATH = "/api/v1"
TXT_VERSION = "1"
MAX_TXT_VALUE = 100  # bytes per TXT value we write (the limit is 255 per key=value; keep packets small)
MAX_INSTANCE = 63  # DNS label limit for the instance name, in bytes
Interfaces = InterfaceChoice | Sequence[str]


def _clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes without splitting a character."""
    return text.encode()[:limit].decode(errors="ignore")


def txt_record(config: EdgeConfig, unit_id: str, version: str = __version__) -> dict[str, str]:
    return {
        "txtvers": TXT_VERSION,
        "id": unit_id,
        "room": _clip(config.unit.room, MAX_TXT_VALUE),
        "school": _clip(config.unit.school, MAX_TXT_VALUE),
        "version": _clip(version, MAX_TXT_VALUE),
        "board": str(config.web.port),
        "cache": str(config.cache.port),
        "intake": str(config.mastery.port),
        "api": API_PATH,
    }


def instance_name(config: EdgeConfig, unit_id: str) -> str:
    """`<room> · <school> [<id8>]`, at most 63 bytes; the id keeps two "Room 12"s of a district apart."""
    tail = f" [{unit_id[:8]}]"
    label = config.unit.room + (f" · {config.unit.school}" if config.unit.school else "")
    label = label.replace(".", " ")  # a dot would end the DNS label early in some browsers' parsing
    return _clip(label, MAX_INSTANCE - len(tail.encode())) + tail


def host_addresses() -> list[str]:
    """The host's IPv4 addresses, loopback excluded unless it is all there is (sorted, stable)."""
    found: set[str] = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.add(ip.ip)
    outside = sorted(a for a in found if not a.startswith("127."))
    return outside or sorted(found) or ["127.0.0.1"]


class AsyncAdvertiser:
    """The asyncio core: start/stop inside a running loop, or `async with`."""

    def __init__(self, config: EdgeConfig, *, interfaces: Interfaces = InterfaceChoice.All,
                 unit_id: str | None = None, version: str = __version__, check_every_s: float = 10.0) -> None:
        self.config = config
        self.enabled = config.unit.advertise
        self.interfaces = interfaces
        self.unit_id = unit_id or default_unit_id(config)
        self.version = version
        self.check_every_s = check_every_s
        self.info: ServiceInfo | None = None
        self.addresses: list[str] = []
        self.announcements = 0  # registrations + re-announcements after address changes
        self._azc: AsyncZeroconf | None = None
        self._watch: asyncio.Task[None] | None = None

    def _service_info(self, addresses: list[str]) -> ServiceInfo:
        name = instance_name(self.config, self.unit_id)
        return ServiceInfo(
            SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", port=self.config.web.port,
            properties=txt_record(self.config, self.unit_id, self.version),
            server=f"ce-{self.unit_id[:32].lower()}.local.", parsed_addresses=addresses,
        )

    async def async_start(self) -> None:
        if not self.enabled:
            log.info("mDNS advertising is off ([unit] advertise = false)")
            return
        if self._azc is not None:
            return
        self.addresses = host_addresses()
        self._azc = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        self.info = self._service_info(self.addresses)
        try:
            # a name taken by another unit gets " (2)" appended rather than failing the service
            await self._azc.async_register_service(self.info, allow_name_change=True)
        except BaseException:
            await self._azc.async_close()
            self._azc = None
            raise
        self.announcements += 1
        log.info("advertising %s on %s", self.info.name, ", ".join(self.addresses))
        self._watch = asyncio.create_task(self._watch_addresses())

    async def async_check_addresses(self) -> bool:
        """Re-read the host's addresses; on a change reconcile the sockets and announce again. True if changed."""
        if self._azc is None or self.info is None:
            return False
        now = host_addresses()
        if now == self.addresses:
            return False
        log.info("addresses changed (%s -> %s): announcing again", self.addresses, now)
        self.addresses = now
        with contextlib.suppress(OSError, RuntimeError):
            await self._azc.async_update_interfaces()
        # same (possibly conflict-renamed) instance name, new A records
        self.info = ServiceInfo(SERVICE_TYPE, self.info.name, port=self.info.port,
                                properties=txt_record(self.config, self.unit_id, self.version),
                                server=self.info.server, parsed_addresses=now)
        await self._azc.async_update_service(self.info)
        self.announcements += 1
        return True

    async def _watch_addresses(self) -> None:
        while True:
            await asyncio.sleep(self.check_every_s)
            try:
                await self.async_check_addresses()
            except Exception:  # a bad moment on the network must not end the watch
                log.exception("re-announcing after an address change failed")

    async def async_stop(self) -> None:
        """Goodbye packets for our service, then close the sockets."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._azc is not None:
            azc, self._azc = self._azc, None
            await azc.async_close()  # unregisters every service: TTL-0 goodbyes
            log.info("stopped advertising (goodbye sent)")

    async def __aenter__(self) -> Self:
        await self.async_start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.async_stop()


class Advertiser:
    """The thread front-end for threaded services (waitress/flask): its own event loop in a daemon thread.

    `start()` returns once the service is announced (or failed: see `.error`); `stop()` sends the goodbyes
    and ends the thread. Both may be called from any thread; a second call does nothing.
    """

    def __init__(self, config: EdgeConfig, *, interfaces: Interfaces = InterfaceChoice.All,
                 unit_id: str | None = None, version: str = __version__, check_every_s: float = 10.0,
                 start_timeout_s: float = 15.0) -> None:
        self.core = AsyncAdvertiser(config, interfaces=interfaces, unit_id=unit_id, version=version,
                                    check_every_s=check_every_s)
        self.start_timeout_s = start_timeout_s
        self.error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._ready = threading.Event()  # the registration finished (or failed)

    @property
    def info(self) -> ServiceInfo | None:
        return self.core.info

    def start(self, *, wait: bool = True) -> Self:
        """Announce; with `wait=False` return at once (the announcement goes on in the background)."""
        if self._thread is not None or not self.core.enabled:
            if not self.core.enabled:
                log.info("mDNS advertising is off ([unit] advertise = false)")
            return self
        ready = self._ready
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def main() -> None:
                try:
                    await self.core.async_start()
                except Exception as e:  # no multicast, no address, a zeroconf refusal: the service runs on
                    self.error = f"cannot advertise on the LAN: {e or type(e).__name__}"
                    log.warning("%s (the unit keeps running without mDNS)", self.error)
                finally:
                    ready.set()

            loop.run_until_complete(main())
            loop.run_forever()  # until stop() schedules the goodbyes and stops the loop
            loop.close()

        self._thread = threading.Thread(target=run, name="edge-advertise", daemon=True)
        self._thread.start()
        if wait and not ready.wait(self.start_timeout_s):
            self.error = f"mDNS registration did not finish within {self.start_timeout_s} s"
            log.warning(self.error)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._thread is None or self._loop is None or self._stopped.is_set():
            return
        self._stopped.set()
        self._ready.wait(self.start_timeout_s)  # a background start must finish before its goodbyes
        loop = self._loop
        try:
            asyncio.run_coroutine_threadsafe(self.core.async_stop(), loop).result(timeout_s)
        except (TimeoutError, RuntimeError, OSError) as e:
            log.warning("mDNS goodbye failed: %s", e)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def interfaces_for(host: str) -> Interfaces:
    """Where to announce a service that listens on `host`: everywhere for 0.0.0.0/::, else only there."""
    return InterfaceChoice.All if host in ("", "0.0.0.0", "::") else [host]
