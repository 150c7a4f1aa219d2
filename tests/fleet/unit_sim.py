"""A simulated unit for the discovery tests, run inside the test's network namespace:
health servers (GET /healthz) on the board/cache/intake ports and the real Advertiser (thread front-end).

    python -m tests.fleet.unit_sim --room R --school S --id ID --ports 8000,8080,8090 [--unhealthy cache]
                                   [--no-advertise] [--check-every 0.3]

Prints one JSON line {"ready": true, "name": ...} once announced; SIGTERM stops it (goodbye packets)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading

from aiohttp import web

from edge.config import parse_config
from edge.fleet.advertise import Advertiser, AsyncAdvertiser


def health_app(service: str, healthy: bool) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok" if healthy else "failing", "service": service},
                                 status=200 if healthy else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--room", required=True)
    ap.add_argument("--school", default="")
    ap.add_argument("--id", required=True)
    ap.add_argument("--ports", default="8000,8080,8090")
    ap.add_argument("--unhealthy", action="append", default=[])
    ap.add_argument("--no-advertise", action="store_true")
    ap.add_argument("--check-every", type=float, default=10.0)
    ap.add_argument("--version", default="1.2.3")
    ap.add_argument("--asyncio", action="store_true", help="the asyncio core (async with) instead of the thread")
    args = ap.parse_args()
    web_port, cache_port, mastery_port = (int(p) for p in args.ports.split(","))
    config = parse_config({"unit": {"room": args.room, "school": args.school, "id": args.id,
                                    "advertise": not args.no_advertise, "state_dir": "/nonexistent"},
                           "web": {"port": web_port}, "cache": {"port": cache_port},
                           "mastery": {"port": mastery_port}}, "unit_sim.toml")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    loop = asyncio.new_event_loop()
    runners = []
    for service, port in (("web", web_port), ("cache", cache_port), ("mastery", mastery_port)):
        runner = web.AppRunner(health_app(service, service not in args.unhealthy))
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        runners.append(runner)
    if args.asyncio:  # the asyncio core, as an aiohttp service would use it, on the health servers' loop
        async def run_async() -> None:
            async with AsyncAdvertiser(config, version=args.version, check_every_s=args.check_every) as core:
                name = core.info.name if core.info is not None else None
                print(json.dumps({"ready": True, "name": name, "error": None}), flush=True)
                while not stop.is_set():
                    await asyncio.sleep(0.2)

        loop.run_until_complete(run_async())
        print(json.dumps({"stopped": True}), flush=True)
        return
    threading.Thread(target=loop.run_forever, daemon=True).start()
    with Advertiser(config, version=args.version, check_every_s=args.check_every) as adv:
        name = adv.info.name if adv.info is not None else None
        print(json.dumps({"ready": True, "name": name, "error": adv.error}), flush=True)
        while not stop.wait(0.2):
            pass
    print(json.dumps({"stopped": True}), flush=True)


if __name__ == "__main__":
    main()
