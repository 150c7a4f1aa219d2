"""`edge image ...`: personalise cards on the IT workstation, provision the unit at boot."""

from __future__ import annotations

import argparse
from pathlib import Path


def _personalise(args: argparse.Namespace) -> int:
    from edge.image.personalise import cmd_personalise

    return cmd_personalise(args)


def _firstboot(args: argparse.Namespace) -> int:
    from edge.image.firstboot import cmd_firstboot

    return cmd_firstboot(args)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    img = sub.add_parser("image", parents=[parent], help="personalise SD-card images per room; provision at boot")
    isub = img.add_subparsers(dest="image_command", metavar="COMMAND", required=True)

    p = isub.add_parser(
        "personalise", parents=[parent],
        help="write a unit's classroom-edge.toml and cloud-init files onto an image's boot partition (no root)",
        description="Validate, then write classroom-edge.toml, user-data and meta-data onto the FAT partition of "
                    "IMAGE (with mtools, no mount, no root). An image file is copied to DIR/edge-<school>-<room>.img "
                    "(a reflink or sparse copy); a card's block device is written in place.")
    p.add_argument("image", type=Path, metavar="IMAGE", help="a built image (.img) or a card's block device")
    p.add_argument("--room", help="room (e.g. 12); the hostname is edge-<school>-<room>")
    p.add_argument("--school", help="school (e.g. lincoln-es)")
    p.add_argument("--district-url", help="the district xAPI LRS ([district] lrs_url)")
    p.add_argument("--district-token", help="its bearer token ([district] lrs_token; removed from the card at boot)")
    p.add_argument("--ssh-key", type=Path, action="append", metavar="FILE",
                   help="the IT admins' public keys for user edge-admin (repeatable; no password login)")
    p.add_argument("--with", dest="with_file", type=Path, metavar="TOML",
                   help="settings every unit gets (an edge.toml fragment, e.g. the school's lesson origins)")
    p.add_argument("--csv", type=Path, metavar="UNITS.csv",
                   help="one image per row; columns: room, school, district_url, district_token, ssh_key "
                        "(a .pub path relative to the CSV); empty cells take the options above")
    p.add_argument("--out", type=Path, metavar="DIR", help="where the per-unit images go (image files only)")
    p.set_defaults(func=_personalise)

    f = isub.add_parser(
        "firstboot", parents=[parent],
        help="provision this unit from /boot/firmware/classroom-edge.toml (systemd runs it at every boot, as root)")
    f.add_argument("--root", default="/", metavar="DIR",
                   help="act on the tree under DIR instead of this system (tests, image builds)")
    f.set_defaults(func=_firstboot)
