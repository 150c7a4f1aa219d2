"""`edge image personalise`: write one unit's card files onto an image's FAT partition (or a card), or one
image per row of a CSV. Everything is validated before the first byte is written; with --csv, images are
written under temporary names and published together, so a failure leaves nothing half-written."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.exc import ConfigError, EdgeError
from edge.image.copy import copy_image
from edge.image.fat import FatVolume
from edge.image.mbr import DiskLayout, is_block_device, read_layout
from edge.image.unitfile import UnitCard, build_card, parse_ssh_keys
from edge.tomlfile import read_toml

CSV_COLUMNS = ("room", "school", "district_url", "district_token", "ssh_key")
BOOT_MARKERS = ("config.txt", "cmdline.txt")
MAX_ROWS = 5000  # units in one --csv run (a district of many schools, one image each)


@dataclass(frozen=True)
class Defaults:
    """What the command line gives every unit (a CSV cell, when not empty, wins)."""

    room: str = ""
    school: str = ""
    district_url: str = ""
    district_token: str = ""
    ssh_key_files: tuple[Path, ...] = ()
    extra: Mapping[str, Any] | None = None


def _keys_from(files: Sequence[Path]) -> list[str]:
    keys: list[str] = []
    for f in files:
        try:
            text = f.read_text()
        except OSError as e:
            raise ConfigError(str(f), "", f"cannot read: {e.strerror}") from None
        keys.extend(parse_ssh_keys(text, str(f)))
    return keys


def card_from_flags(d: Defaults) -> UnitCard:
    return build_card(room=d.room, school=d.school, source="command line", district_url=d.district_url,
                      district_token=d.district_token, ssh_keys=_keys_from(d.ssh_key_files), extra=d.extra)


def cards_from_csv(path: Path, d: Defaults) -> list[UnitCard]:
    """One card per row; every bad row is reported (by line) in one error, and then nothing is written."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise EdgeError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise EdgeError(f"{path}: cannot read: not UTF-8 text ({e.reason} at byte {e.start}); "
                        "save it as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _cards(path, reader, d)
    except csv.Error as e:
        raise EdgeError(f"{path}: line {reader.reader.line_num}: bad CSV: {e}") from None  # (DictReader lags)


def _cards(path: Path, reader: csv.DictReader[str], d: Defaults) -> list[UnitCard]:
    """The rows of an opened --csv file as cards (all bad rows named in one error)."""
    header = [h.strip() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if not header:
        raise EdgeError(f"{path}: empty (a header row naming {', '.join(CSV_COLUMNS)} comes first)")
    if unknown:
        raise EdgeError(f"{path}: line 1: unknown column {unknown[0]!r} (known: {', '.join(CSV_COLUMNS)})")
    cards: list[UnitCard] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if len(seen) + len(errors) >= MAX_ROWS:
            raise EdgeError(f"{path}: more than {MAX_ROWS} rows (one image per row)")
        cell = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if None in row:
            errors.append(f"{path}: line {line}: more cells than columns")
            continue
        source = f"{path}: line {line}"
        try:
            key_files = [path.parent / cell["ssh_key"]] if cell.get("ssh_key") else list(d.ssh_key_files)
            card = build_card(room=cell.get("room") or d.room, school=cell.get("school") or d.school,
                              source=source, district_url=cell.get("district_url") or d.district_url,
                              district_token=cell.get("district_token") or d.district_token,
                              ssh_keys=_keys_from(key_files), extra=d.extra)
        except ConfigError as e:
            errors.append(f"{source}: {e.key + ': ' if e.key else ''}{e.reason}" if e.file == source else str(e))
            continue
        if card.hostname in seen:
            errors.append(f"{source}: hostname {card.hostname} is already line {seen[card.hostname]}'s")
            continue
        seen[card.hostname] = line
        cards.append(card)
    if errors:
        raise EdgeError(f"{len(errors)} bad row(s), nothing written:\n  " + "\n  ".join(errors))
    if not cards:
        raise EdgeError(f"{path}: no rows")
    return cards


def check_image(image: Path) -> DiskLayout:
    layout = read_layout(image)
    vol = FatVolume(image, layout.boot)
    names = {n.lower() for n in vol.names()}
    if not any(m in names for m in BOOT_MARKERS):
        raise EdgeError(f"{image}: the FAT partition has no config.txt or cmdline.txt: not a Raspberry Pi boot "
                        "partition")
    return layout


def write_card(image: Path, layout: DiskLayout, card: UnitCard) -> None:
    vol = FatVolume(image, layout.boot)
    # the TOML last: it is what the unit acts on, so a card interrupted before it changes nothing
    for name, data in card.files().items():
        vol.write(name, data)


def personalise(image: Path, cards: Sequence[UnitCard], out: Path | None) -> list[tuple[Path, str]]:
    """Write the cards; returns (path, how it was copied) per unit. A block device is written in place."""
    layout = check_image(image)
    if is_block_device(image):
        if out is not None or len(cards) != 1:
            raise EdgeError(f"{image} is a card (block device): it is personalised in place for one unit; "
                            "drop --out/--csv")
        write_card(image, layout, cards[0])
        return [(image, "in place")]
    if out is None:
        raise EdgeError("--out DIR is required for an image file (the original stays as built)")
    out.mkdir(parents=True, exist_ok=True)
    done: list[tuple[Path, Path, str]] = []
    try:
        for card in cards:
            final = out / f"{card.hostname}.img"
            tmp = out / f".{card.hostname}.img.partial"
            tmp.unlink(missing_ok=True)
            how = copy_image(image, tmp)
            done.append((tmp, final, how))
            write_card(tmp, layout, card)
    except BaseException:
        for tmp, _, _ in done:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final, _ in done:
        os.replace(tmp, final)
    return [(final, how) for _, final, how in done]


def cmd_personalise(args: Any) -> int:
    extra = read_toml(args.with_file) if args.with_file else None
    d = Defaults(room=args.room or "", school=args.school or "", district_url=args.district_url or "",
                 district_token=args.district_token or "", ssh_key_files=tuple(args.ssh_key or ()), extra=extra)
    t0 = time.monotonic()
    cards = cards_from_csv(args.csv, d) if args.csv else [card_from_flags(d)]
    written = personalise(args.image, cards, args.out)
    for path, how in written:
        print(f"{path} ({how})")
    print(f"personalised {len(written)} unit(s) in {time.monotonic() - t0:.1f} s")
    return 0
