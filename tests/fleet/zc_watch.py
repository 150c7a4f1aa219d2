"""Watch `_classroom-edge._tcp` inside the test's network namespace and print one JSON line per event
(added / updated / removed, with the resolved addresses), for the goodbye and re-announce tests."""

from __future__ import annotations

import asyncio
import json
import sys

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edge.fleet.advertise import SERVICE_TYPE


async def main(seconds: float) -> None:
    pending: set[asyncio.Future[None]] = set()
    async with AsyncZeroconf(ip_version=IPVersion.V4Only) as azc:

        async def report(name: str, change: ServiceStateChange) -> None:
            addresses: list[str] = []
            if change is not ServiceStateChange.Removed:
                info = AsyncServiceInfo(SERVICE_TYPE, name)
                if await info.async_request(azc.zeroconf, 3000):
                    addresses = info.parsed_addresses(IPVersion.V4Only)
            print(json.dumps({"event": change.name.lower(), "name": name, "addresses": addresses}), flush=True)

        def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
            task = asyncio.ensure_future(report(name, state_change))
            pending.add(task)
            task.add_done_callback(pending.discard)

        browser = AsyncServiceBrowser(azc.zeroconf, [SERVICE_TYPE], handlers=[on_change])
        print(json.dumps({"event": "watching"}), flush=True)
        await asyncio.sleep(seconds)
        await browser.async_cancel()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0))
