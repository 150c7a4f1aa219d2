"""Signed statements (xAPI 1.0.3 Data 2.6): a JWS (RFC 7515, compact form) in an attachment of usageType
SIGNATURE_USAGE and contentType application/octet-stream, whose payload is the statement as it was before
the signature was added.

The LRS checks the JWS is well formed, uses RS256/RS384/RS512, and that its payload is logically the
statement received; when the JWS header carries an X.509 certificate (x5c), the RSA signature is verified
against that certificate's key (PKCS#1 v1.5, with a minimal DER reader: no crypto library on the Pi).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from edge.exc import StatementError
from edge.serving import jsontext
from edge.xapi.multipart import SIGNATURE_USAGE, Part

ALGORITHMS = {"RS256": hashlib.sha256, "RS384": hashlib.sha384, "RS512": hashlib.sha512}
# DER DigestInfo prefixes (RFC 8017 section 9.2, note 1)
_DIGEST_INFO = {
    "RS256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "RS384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "RS512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
IGNORED = ("id", "authority", "stored", "version")


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise StatementError("signature", f"the JWS {what} is not base64url") from None


def _normal(st: Mapping[str, Any]) -> dict[str, Any]:
    """A statement without what the LRS sets and without its signatures, context activities as arrays."""
    out = {k: v for k, v in st.items() if k not in IGNORED}
    kept = [a for a in out.pop("attachments", ())
            if not (isinstance(a, dict) and a.get("usageType") == SIGNATURE_USAGE)]
    if kept:
        out["attachments"] = kept
    for holder in (out, out.get("object") if isinstance(out.get("object"), dict) else None):
        if holder and isinstance(holder.get("context"), dict):
            ca = holder["context"].get("contextActivities")
            if isinstance(ca, dict):
                holder["context"] = {**holder["context"], "contextActivities": {
                    k: v if isinstance(v, list) else [v] for k, v in ca.items()}}
    return out


def check(statement: Mapping[str, Any], parts: Mapping[str, Part], field: str) -> None:
    """400 unless every signature attachment of `statement` holds a valid JWS of it."""
    for i, a in enumerate(statement.get("attachments", ())):
        if a.get("usageType") != SIGNATURE_USAGE:
            continue
        where = f"{field}.attachments[{i}]"
        if str(a.get("contentType", "")).split(";")[0].strip().lower() != "application/octet-stream":
            raise StatementError(f"{where}.contentType", "a signature's contentType is application/octet-stream")
        part = parts.get(str(a.get("sha2", "")).lower())
        if part is None:
            raise StatementError(where, "a signature must be attached (a part), not referenced by fileUrl")
        _check_jws(part.data, statement, where)


def _check_jws(data: bytes, statement: Mapping[str, Any], where: str) -> None:
    try:
        header_b64, payload_b64, sig_b64 = data.decode("ascii").strip().split(".")
    except (UnicodeDecodeError, ValueError):
        raise StatementError(where, "the signature is not a compact JWS (header.payload.signature)") from None
    try:
        header = jsontext.loads(_b64(header_b64, "header"))
        payload = jsontext.loads(_b64(payload_b64, "payload"))
    except ValueError:
        raise StatementError(where, "the JWS header and payload must be JSON") from None
    if not isinstance(header, dict) or header.get("alg") not in ALGORITHMS:
        raise StatementError(where, "the JWS algorithm must be RS256, RS384 or RS512")
    if not isinstance(payload, dict):
        raise StatementError(where, "the JWS payload must be the statement (a JSON object)")
    if "id" in payload and "id" in statement and str(payload["id"]).lower() != str(statement["id"]).lower():
        raise StatementError(where, "the signed statement has another id")
    if _normal(payload) != _normal(statement):
        raise StatementError(where, "the signed statement differs from the statement")
    if "x5c" in header:
        chain = header["x5c"]
        if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
            raise StatementError(where, "x5c must be a list of base64 certificates")
        try:
            cert = base64.b64decode(chain[0], validate=True)
        except (binascii.Error, ValueError):
            raise StatementError(where, "x5c[0] is not base64") from None
        n, e = _rsa_key(cert, where)
        signed = f"{header_b64}.{payload_b64}".encode("ascii")
        if not _rsa_verify(n, e, str(header["alg"]), signed, _b64(sig_b64, "signature")):
            raise StatementError(where, "the JWS signature does not verify against its x5c certificate")


# -- PKCS#1 v1.5 verification with the public key of an X.509 certificate --------------------------------------
def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `pos`."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        tag, s, e = _der(data, start)
        out.append((tag, s, e))
        start = e
    return out


def _rsa_key(cert: bytes, where: str) -> tuple[int, int]:
    """(modulus, exponent) of a DER certificate's RSA subjectPublicKeyInfo."""
    try:
        _, s, e = _der(cert, 0)  # Certificate
        tbs = _children(cert, s, e)[0]
        fields = _children(cert, tbs[1], tbs[2])
        if fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        spki = fields[5]  # serial, signature, issuer, validity, subject, subjectPublicKeyInfo
        _, bits = _children(cert, spki[1], spki[2])
        key = cert[bits[1] + 1:bits[2]]  # BIT STRING: skip the unused-bits byte
        _, ks, ke = _der(key, 0)
        (_, ns, ne), (_, es, ee) = _children(key, ks, ke)[:2]
        return int.from_bytes(key[ns:ne], "big"), int.from_bytes(key[es:ee], "big")
    except (ValueError, IndexError):
        raise StatementError(where, "x5c[0] is not an X.509 certificate with an RSA key") from None


def _rsa_verify(n: int, e: int, alg: str, message: bytes, signature: bytes) -> bool:
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    t = _DIGEST_INFO[alg] + ALGORITHMS[alg](message).digest()
    if k < len(t) + 11:
        return False
    return em == b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
