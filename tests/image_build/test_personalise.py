"""`edge image personalise`: exactly three files on the FAT partition and not one other byte changed; CSV rows
all-or-nothing with errors by line; a card's block device in place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from edge.config import parse_config
from edge.image.fat import FatVolume
from edge.image.mbr import read_layout
from tests.image_build.fat32 import Fat32, hash_outside

WRITTEN = ("classroom-edge.toml", "meta-data", "user-data")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0vJ7Y7jKq1l0yqYt1c9X3cVf0m7m8m3q2XvJ0r7d1a it@district"


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})


@pytest.fixture
def pubkey(tmp_path: Path) -> Path:
    p = tmp_path / "admin.pub"
    p.write_text(KEY + "\n")
    return p


def fat(image: Path) -> FatVolume:
    return FatVolume(image, read_layout(image).boot)


def test_writes_exactly_the_three_files_and_not_one_other_byte(rpi_image: Path, pubkey: Path, tmp_path: Path) -> None:
    before_names = fat(rpi_image).names()
    before_files = {n: fat(rpi_image).read(n) for n in before_names}
    boot = read_layout(rpi_image).boot
    f_before = Fat32(rpi_image, boot.start)
    out = edge("image", "personalise", str(rpi_image), "--room", "12", "--school", "lincoln-es",
               "--district-url", "https://lrs.district.example/xAPI", "--district-token", "t0ken",
               "--ssh-key", str(pubkey), "--out", str(tmp_path / "cards"))
    assert out.returncode == 0, out.stderr
    card = tmp_path / "cards/edge-lincoln-es-12.img"
    assert out.stdout.splitlines()[0].startswith(str(card))
    assert fat(card).names() == sorted(before_names + list(WRITTEN))
    assert {n: fat(card).read(n) for n in before_names} == before_files
    # every byte outside the FATs, FSInfo, the root directory and the new files' clusters is unchanged
    f_after = Fat32(card, boot.start)
    allowed = f_before.metadata_ranges() + f_after.metadata_ranges()
    for name in WRITTEN:
        allowed += f_after.file_ranges(name)
    assert hash_outside(card, allowed) == hash_outside(rpi_image, allowed)
    # ... and inside the FATs only the entries of the new files' clusters changed
    new_clusters = {c for name in WRITTEN for c in f_after.chain(f_after.root_entries()[name][0])}
    changed = {i for i, (a, b) in enumerate(zip(f_before.entries(), f_after.entries(), strict=True)) if a != b}
    assert changed and changed <= new_clusters
    assert card.stat().st_size == rpi_image.stat().st_size
    assert rpi_image.read_bytes()[:512] == card.read_bytes()[:512]


def test_the_card_files(rpi_image: Path, pubkey: Path, tmp_path: Path) -> None:
    out = edge("image", "personalise", str(rpi_image), "--room", "Room 12", "--school", "Lincoln ES",
               "--ssh-key", str(pubkey), "--district-url", "https://lrs.district.example/xAPI",
               "--district-token", "t0ken", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    card = fat(tmp_path / "edge-lincoln-es-room-12.img")
    doc = tomllib.loads(card.read("classroom-edge.toml").decode())
    cfg = parse_config(doc, "card")  # the same loader the unit uses
    assert (cfg.unit.room, cfg.unit.school) == ("Room 12", "Lincoln ES")
    assert (cfg.district.lrs_url, cfg.district.lrs_token) == ("https://lrs.district.example/xAPI", "t0ken")
    user_data = card.read("user-data").decode()
    assert user_data.startswith("#cloud-config\n")
    ud = json.loads("\n".join(line for line in user_data.splitlines() if not line.startswith("#")))
    assert ud["hostname"] == "edge-lincoln-es-room-12" and ud["ssh_pwauth"] is False
    (admin,) = ud["users"]
    assert admin["name"] == "edge-admin" and admin["lock_passwd"] is True
    assert admin["ssh_authorized_keys"] == [KEY]
    meta = card.read("meta-data").decode()
    assert "local-hostname: edge-lincoln-es-room-12\n" in meta and "instance-id: edge-lincoln-es-room-12-" in meta


def test_csv_makes_one_image_per_row(rpi_image: Path, pubkey: Path, tmp_path: Path) -> None:
    rows = ["room,school,district_token"] + [f"{r},lincoln-es,tok-{r}" for r in range(1, 31)]
    (tmp_path / "units.csv").write_text("\n".join(rows) + "\n")
    out = edge("image", "personalise", str(rpi_image), "--csv", str(tmp_path / "units.csv"), "--ssh-key",
               str(pubkey), "--district-url", "https://lrs.district.example/xAPI", "--out", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    images = sorted((tmp_path / "o").iterdir())
    assert [p.name for p in images] == sorted(f"edge-lincoln-es-{r}.img" for r in range(1, 31))
    for r in (1, 17, 30):
        doc = tomllib.loads(fat(tmp_path / f"o/edge-lincoln-es-{r}.img").read("classroom-edge.toml").decode())
        assert doc["unit"]["room"] == str(r) and doc["district"]["lrs_token"] == f"tok-{r}"
    # copies share no bytes with each other on disk unless reflinked; sparse: allocation ~ the master's
    assert all(p.stat().st_blocks <= rpi_image.stat().st_blocks + 4096 for p in images)


def test_bad_rows_are_reported_by_line_and_nothing_is_written(rpi_image: Path, pubkey: Path, tmp_path: Path) -> None:
    (tmp_path / "units.csv").write_text(
        "room,school,district_url\n"
        "12,lincoln-es,\n"
        ",lincoln-es,\n"                                      # line 3: no room
        "14,lincoln-es,ftp://lrs.example\n"                   # line 4: bad URL
        "12,lincoln-es,\n"                                    # line 5: same unit as line 2
        "15,lincoln-es,\n")
    out = edge("image", "personalise", str(rpi_image), "--csv", str(tmp_path / "units.csv"),
               "--ssh-key", str(pubkey), "--out", str(tmp_path / "o"))
    assert out.returncode == 1
    assert out.stderr.startswith("edge: error: 3 bad row(s), nothing written:")
    csv = tmp_path / "units.csv"
    assert f"{csv}: line 3: unit.room: missing" in out.stderr
    assert f"{csv}: line 4: district.lrs_url: must be a URL starting with http:// or https://" in out.stderr
    assert f"{csv}: line 5: hostname edge-lincoln-es-12 is already line 2's" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize(("content", "message"), [
    ("room,school\n12,\u00e9cole-jean-moulin\n".encode("latin-1"), "cannot read: not UTF-8 text"),
    (b"room,school\n12," + b"s" * 200_000 + b"\n", "line 2: bad CSV: field larger than field limit"),
])
def test_an_unreadable_units_file_is_a_clean_error(rpi_image: Path, pubkey: Path, tmp_path: Path, content: bytes,
                                                   message: str) -> None:
    """A sheet saved as Latin-1 (older Excel) or holding a pasted blob: `edge: error:`, exit 1, nothing written."""
    (tmp_path / "units.csv").write_bytes(content)
    out = edge("image", "personalise", str(rpi_image), "--csv", str(tmp_path / "units.csv"),
               "--ssh-key", str(pubkey), "--out", str(tmp_path / "o"))
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr.startswith(f"edge: error: {tmp_path / 'units.csv'}: {message}"), out.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_a_failure_midway_leaves_no_image(rpi_image: Path, pubkey: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.exc import EdgeError
    from edge.image import personalise as pers

    cards = [pers.build_card(room=str(r), school="s", source="t", ssh_keys=[KEY]) for r in (1, 2, 3)]
    real = pers.write_card
    calls = []

    def flaky(image: Path, layout: Any, card: Any) -> None:
        calls.append(image)
        if len(calls) == 3:
            raise EdgeError("card full")
        real(image, layout, card)

    monkeypatch.setattr(pers, "write_card", flaky)
    with pytest.raises(EdgeError, match="card full"):
        pers.personalise(rpi_image, cards, tmp_path / "o")
    assert list((tmp_path / "o").iterdir()) == []


def test_a_card_block_device_is_written_in_place(rpi_image: Path, pubkey: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a loop device (standing in for the card reader) needs root")
    dev = subprocess.run(["losetup", "--find", "--show", str(rpi_image)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        out = edge("image", "personalise", dev, "--room", "7", "--school", "oak", "--ssh-key", str(pubkey))
        assert out.returncode == 0, out.stderr
        assert f"{dev} (in place)" in out.stdout
        refused = edge("image", "personalise", dev, "--room", "7", "--school", "oak", "--out", "/tmp/x")
        assert refused.returncode == 1 and "block device" in refused.stderr
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)
    doc = tomllib.loads(fat(rpi_image).read("classroom-edge.toml").decode())
    assert doc["unit"] == {"room": "7", "school": "oak"}


@pytest.mark.parametrize(("args", "message"), [
    (["--room", "1"], "command line: unit.school: missing"),
    (["--room", "1", "--school", "s", "--district-url", "lrs.example"], "district.lrs_url: must be a URL"),
])
def test_bad_flags_are_errors(rpi_image: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = edge("image", "personalise", str(rpi_image), *args, "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and message in out.stderr and not (tmp_path / "o").exists()


def test_a_private_key_or_a_non_image_is_refused(rpi_image: Path, tmp_path: Path) -> None:
    priv = tmp_path / "id_ed25519"
    priv.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n-----END OPENSSH PRIVATE KEY-----\n")
    out = edge("image", "personalise", str(rpi_image), "--room", "1", "--school", "s", "--ssh-key", str(priv),
               "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and f"edge: error: {priv}: is a private key" in out.stderr
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 4096)
    out = edge("image", "personalise", str(junk), "--room", "1", "--school", "s", "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and "no MBR partition table" in out.stderr


def test_school_settings_from_a_toml_fragment_are_validated(rpi_image: Path, tmp_path: Path) -> None:
    frag = tmp_path / "school.toml"
    frag.write_text('[cache.origins]\ndistrict = "https://lessons.district.example"\n')
    out = edge("image", "personalise", str(rpi_image), "--room", "1", "--school", "s", "--with", str(frag),
               "--out", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    doc = tomllib.loads(fat(tmp_path / "o/edge-s-1.img").read("classroom-edge.toml").decode())
    assert doc["cache"]["origins"] == {"district": "https://lessons.district.example"}
    frag.write_text('[unit]\nstate_dir = "/tmp/elsewhere"\n')
    out = edge("image", "personalise", str(rpi_image), "--room", "1", "--school", "s", "--with", str(frag),
               "--out", str(tmp_path / "o2"))
    assert out.returncode == 1 and "unit.state_dir: is set by the image's systemd units" in out.stderr
