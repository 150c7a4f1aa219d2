"""Credential checks every service shares: bearer tokens, HTTP Basic and signed tokens, in constant time.

Constant time because the tokens guard a school LAN where anyone can time requests; an empty configured
secret never matches (a feature with no secret set is off, not open).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def _same(sent: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, None for any other scheme."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` header, None if absent or malformed."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether the header carries exactly `token` (never true for an empty `token`)."""
    sent = bearer(header)
    return sent is not None and _same(sent, token)


def basic_ok(header: str | None, user: str, password: str) -> bool:
    """Whether the header carries `user`:`password` (both compared, in constant time)."""
    creds = basic(header)
    if creds is None:
        return False
    return _same(creds[0], user) & _same(creds[1], password)


def secret_ok(sent: str, expected: str) -> bool:
    """A PIN or key typed into a form (never true for an empty `expected`)."""
    return _same(sent, expected)


def sign(key: bytes, payload: bytes) -> str:
    """An HMAC-SHA256 of `payload` under `key`, base64url without padding (a signed token's second half)."""
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def signature_ok(key: bytes, payload: bytes, signature: str) -> bool:
    """Whether `signature` is `sign(key, payload)` (compared in constant time; an empty key never signs)."""
    return bool(key) and hmac.compare_digest(sign(key, payload).encode(), signature.encode())
