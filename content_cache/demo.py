"""The built-in demo lesson pack, generated on first run so `edge run` has lessons with no origins configured.

A few small HTML lessons and a short video-like binary clip (deterministic bytes, a few MB) that exercises
Range requests and seeking the way a lesson video does. Not a playable codec stream: generating one needs
an encoder the Pi image does not ship.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edge.fsutil import atomic_write

CLIP_BYTES = 3 * 1024 * 1024
VERSION = "1"  # bump to regenerate existing packs

LESSONS = {
    "fractions.html": ("Fractions on a number line",
                       "Place 1/2, 1/3 and 3/4 on the line. Which is closest to 1? Explain to your partner."),
    "water-cycle.html": ("The water cycle",
                         "Evaporation, condensation, precipitation, collection: draw the loop for your town."),
    "loops.html": ("Loops in code",
                   "Write a loop that prints the 5 times table. Then change it to stop at 50."),
}


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><body style='font-family:sans-serif;max-width:40em;margin:2em auto'>"
        f"<h1>{title}</h1>{body}<p><a href='index.html'>All lessons</a></p></body></html>\n"
    )


def _clip() -> bytes:
    """Deterministic pseudo-random bytes (sha256 counter stream): incompressible, like real video."""
    out = bytearray()
    i = 0
    while len(out) < CLIP_BYTES:
        out += hashlib.sha256(b"demo-clip-%d" % i).digest() * 64
        i += 1
    return bytes(out[:CLIP_BYTES])


def ensure_demo_pack(pack: Path) -> Path:
    """Create the demo pack at `pack` unless it is already there (same version); returns `pack`."""
    stamp = pack / ".demo-version"
    if stamp.exists() and stamp.read_text().strip() == VERSION:
        return pack
    links = "".join(f"<li><a href='{name}'>{title}</a></li>" for name, (title, _) in LESSONS.items())
    atomic_write(pack / "index.html", _page("Demo lessons", f"<ul>{links}<li><a href='video/clip.bin'>"
                                      "Video-like clip (3 MB test data for seeking)</a></li></ul>").encode())
    for name, (title, task) in LESSONS.items():
        atomic_write(pack / name, _page(title, f"<p>{task}</p>").encode())
    atomic_write(pack / "video" / "clip.bin", _clip())
    atomic_write(stamp, (VERSION + "\n").encode())
    return pack
