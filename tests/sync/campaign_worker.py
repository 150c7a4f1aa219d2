"""A stand-in for the mastery process in the SIGKILL campaign: an intake writer + the sync uploader.

    python -m tests.sync.campaign_worker DB ACKED_LOG LRS_URL SEED [--drain]

The writer thread does what the mastery intake does: in ONE transaction it stores a statement (its own
`statements` table) and queues it with `Outbox.add`; after COMMIT (fsynced: WAL + synchronous=FULL) it
"acknowledges" the statement by appending its id to ACKED_LOG. The uploader drains the outbox meanwhile.
The parent SIGKILLs this process at random moments. `--drain`: no writer; upload until the backlog is 0.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import sys
import threading
import uuid
from pathlib import Path

from edge.sync.outbox import Outbox, connect
from edge.sync.uploader import Backoff, Uploader
from tests.sync.helpers import district, statement


def writer(db_path: Path, acked_log: Path, seed: int, stop: threading.Event) -> None:
    rng = random.Random(seed)
    conn = connect(db_path)
    conn.execute("CREATE TABLE IF NOT EXISTS statements (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
    Outbox.install(conn)
    with open(acked_log, "a", buffering=1) as acks:
        i = 0
        while not stop.is_set():
            group = []
            for _ in range(rng.randint(1, 20)):
                st = statement(i)
                st["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                group.append((st["id"], json.dumps(st)))
                i += 1
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sid, body in group:
                    conn.execute("INSERT INTO statements (id, body) VALUES (?, ?)", (sid, body))
                    Outbox.add(conn, sid, body)
                conn.execute("COMMIT")
            except sqlite3.Error:
                conn.execute("ROLLBACK")
                raise
            acks.write("".join(f"{sid}\n" for sid, _ in group))  # the ack goes out only after the commit
            stop.wait(rng.uniform(0.0, 0.01))


async def main(db_path: Path, acked_log: Path, lrs_url: str, seed: int, drain: bool) -> int:
    outbox = Outbox(db_path)
    Outbox.install(outbox.db)
    outbox.db.execute("CREATE TABLE IF NOT EXISTS statements (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
    up = Uploader(outbox, district(lrs_url, batch_size=50), timeout_s=2.0, concurrency=2)
    if drain:
        for _ in range(200):
            result = await up.run_round()
            if result.ok and outbox.status()["backlog"] == 0:
                await up.close()
                print("drained", flush=True)
                return 0
            await asyncio.sleep(0.1)
        return 1
    stop_writer = threading.Event()
    t = threading.Thread(target=writer, args=(db_path, acked_log, seed, stop_writer), daemon=True)
    t.start()
    print("ready", flush=True)
    stop, wake = asyncio.Event(), asyncio.Event()
    await up.run_forever(stop, wake, interval_s=0.02, backoff=Backoff(base_s=0.02, cap_s=0.2))
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(asyncio.run(main(Path(args[0]), Path(args[1]), args[2], int(args[3]), "--drain" in args)))
