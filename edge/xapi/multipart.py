"""multipart/mixed statement requests and responses (xAPI 1.0.3 Communication 1.5.2): the statements in a
first application/json part, then one part per attachment, named by its SHA-2 in X-Experience-API-Hash.

Parsing is strict where the spec is (a boundary in the header and the body, the JSON part first, every
other part binary and hashed, no part that no attachment asks for, no attachment without its part) and
checks each part's hash against its content, so what is stored is what the statement describes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.exc import StatementError

HASHES = {56: hashlib.sha224, 64: hashlib.sha256, 96: hashlib.sha384, 128: hashlib.sha512}
MAX_PARTS = 101  # the statements and at most 100 attachments
SIGNATURE_USAGE = "http://adlnet.gov/expapi/attachments/signature"


@dataclass(frozen=True)
class Part:
    content_type: str
    data: bytes


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart/mixed Content-Type (400 when there is none)."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"')
    raise StatementError("Content-Type", "multipart/mixed needs a boundary parameter")


def _headers(block: bytes, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise StatementError(where, f"malformed part header {name[:40]!r}")
        out[name.strip().lower()] = value.strip()
    return out


def parse(body: bytes, content_type: str) -> tuple[bytes, dict[str, Part]]:
    """(the statements' JSON bytes, {sha2: attachment part}) of a multipart/mixed request body."""
    delimiter = b"\r\n--" + boundary_of(content_type).encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 3:
        raise StatementError("body", "multipart body without its boundary delimiters")
    if len(chunks) > MAX_PARTS + 2:
        raise StatementError("body", f"at most {MAX_PARTS} parts")
    if not chunks[-1].startswith(b"--"):
        raise StatementError("body", "multipart body without its closing delimiter")
    parts: list[tuple[dict[str, str], bytes]] = []
    for i, chunk in enumerate(chunks[1:-1]):
        where = f"part[{i}]"
        line_end = chunk.find(b"\r\n")
        if line_end < 0 or chunk[:line_end].strip(b" \t"):
            raise StatementError(where, "the boundary delimiter must end its line")
        rest = chunk[line_end + 2:]
        if rest.startswith(b"\r\n"):
            head, data = b"", rest[2:]
        else:
            head, sep, data = rest.partition(b"\r\n\r\n")
            if not sep:
                raise StatementError(where, "part without a blank line after its headers")
        parts.append((_headers(head, where), data))
    first_headers, statements = parts[0]
    if first_headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise StatementError("part[0]", "the first part must be the statements, Content-Type application/json")
    attachments: dict[str, Part] = {}
    for i, (headers, data) in enumerate(parts[1:], start=1):
        sha2 = headers.get("x-experience-api-hash", "").lower()
        if not sha2:
            raise StatementError(f"part[{i}]", "an attachment part needs an X-Experience-API-Hash header")
        if headers.get("content-transfer-encoding", "").lower() != "binary":
            raise StatementError(f"part[{i}]", "an attachment part needs Content-Transfer-Encoding: binary")
        algo = HASHES.get(len(sha2))
        if algo is None or algo(data).hexdigest() != sha2:
            raise StatementError(f"part[{i}]", "X-Experience-API-Hash does not match the part's content")
        attachments[sha2] = Part(headers.get("content-type", "application/octet-stream"), data)
    return statements, attachments


def expected_parts(statements: Iterable[Mapping[str, Any]]) -> set[str]:
    """The sha2 of every attachment sent without a fileUrl: each needs its part in the request."""
    return {str(a["sha2"]).lower() for st in statements for a in st.get("attachments", ())
            if "fileUrl" not in a}


def match_parts(statements: Sequence[Mapping[str, Any]], parts: Mapping[str, Part]) -> None:
    """400 when an attachment without fileUrl lacks its part, or a part belongs to no attachment (one with a
    fileUrl may bring its content too)."""
    missing = expected_parts(statements) - set(parts)
    if missing:
        raise StatementError("attachments", f"no part with X-Experience-API-Hash {sorted(missing)[0]}")
    described = {str(a["sha2"]).lower() for st in statements for a in st.get("attachments", ())}
    extra = set(parts) - described
    if extra:
        raise StatementError("body", f"part {sorted(extra)[0]} belongs to no attachment of the statements")


def build(statements_json: bytes, parts: Iterable[Part | tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/mixed message: the statements, then each (sha2, type, data)."""
    boundary = uuid.uuid4().hex
    out = [f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(), statements_json]
    for p in parts:
        sha2, ctype, data = p if isinstance(p, tuple) else (hashlib.sha256(p.data).hexdigest(), p.content_type, p.data)
        out.append(f"\r\n--{boundary}\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: binary\r\n"
                   f"X-Experience-API-Hash: {sha2}\r\n\r\n".encode())
        out.append(data)
    out.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/mixed; boundary={boundary}"
