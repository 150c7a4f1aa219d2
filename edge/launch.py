"""Lesson launches: who the student is, told to the lesson content with a credential scoped to them.

The student page (edge.rotation.web) issues launch links; the mastery service checks the credentials. They
share no state, only the class key: a launch token is its claims signed with a key derived from
`mastery.class_key` (HMAC-SHA256, edge.serving.auth), so it cannot be forged or altered, expires, and
stops working when the class key changes.

Two conventions, as lesson content expects them:
- TinCan/Rustici: `?endpoint=...&auth=Basic ...&actor={...}&registration=...&activity_id=...`; `auth` is
  the credential itself.
- cmi5: `?endpoint=...&fetch=...&actor={...}&registration=...&activityId=...`; the AU POSTs the one-time
  `fetch` URL for the credential (and the service writes the LMS.LaunchData state then).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

from edge.serving.auth import sign, signature_ok

TOKEN_USER = "launch"  # the HTTP Basic user name of a launch credential
CONVENTIONS = ("tincan", "cmi5")
_REGISTRATION_NS = uuid.UUID("a7a3f0a4-6c2e-5b1d-8f3e-2b9c0d4e5f61")
MAX_TOKEN = 2048
Kind = Literal["auth", "fetch"]


@dataclass(frozen=True)
class Claims:
    """What a launch token says: this student (account homePage + name), this registration and lesson."""

    student: str
    home_page: str
    registration: str
    activity: str
    expires: int  # epoch seconds
    kind: Kind  # "auth": an xAPI credential; "fetch": a cmi5 fetch URL (one use, `nonce` names it)
    nonce: str

    def actor(self) -> dict[str, Any]:
        """The student as an xAPI Agent (the pseudonymous id as name too: no roster name leaves the unit)."""
        return {"objectType": "Agent", "name": self.student,
                "account": {"homePage": self.home_page, "name": self.student}}

    def agent_key(self) -> str:
        """The IFI key edge.xapi.agents.ifi_key gives the actor."""
        return f"account:{self.home_page}\x1f{self.student}"


def _key(class_key: str) -> bytes:
    return hmac.new(class_key.encode(), b"classroom-edge launch v1", hashlib.sha256).digest() if class_key else b""


def issue(class_key: str, claims: Claims) -> str:
    """A token for `claims`: base64url(JSON claims) "." signature."""
    doc = {"s": claims.student, "h": claims.home_page, "r": claims.registration, "a": claims.activity,
           "e": claims.expires, "k": claims.kind, "n": claims.nonce}
    payload = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{payload}.{sign(_key(class_key), payload.encode())}"


def verify(class_key: str, token: str, now: float, kind: Kind) -> Claims | None:
    """The claims of a genuine, unexpired token of `kind`; None for anything else."""
    payload, _, sig = token.partition(".")
    if not sig or len(token) > MAX_TOKEN or not signature_ok(_key(class_key), payload.encode(), sig):
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims = Claims(str(doc["s"]), str(doc["h"]), str(doc["r"]), str(doc["a"]), int(doc["e"]), doc["k"],
                        str(doc["n"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if claims.kind != kind or claims.expires < now:
        return None
    return claims


def basic_credential(token: str) -> str:
    """The base64 user:password of a launch token (cmi5's auth-token; "Basic " + it is TinCan's `auth`)."""
    return base64.b64encode(f"{TOKEN_USER}:{token}".encode()).decode("ascii")


def registration_for(home_page: str, student: str, activity: str) -> str:
    """One registration per student and lesson, the same at every launch (so content resumes its state)."""
    return str(uuid.uuid5(_REGISTRATION_NS, "\x1f".join((home_page, student, activity))))


def new_claims(student: str, home_page: str, activity: str, now: float, lifetime_s: float, kind: Kind) -> Claims:
    return Claims(student, home_page, registration_for(home_page, student, activity), activity,
                  int(now + lifetime_s), kind, secrets.token_urlsafe(12))


def _join(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params, quote_via=quote)


def tincan_link(lesson_url: str, endpoint: str, class_key: str, claims: Claims) -> str:
    """A TinCan (Rustici) launch link carrying the xAPI credential itself."""
    return _join(lesson_url, {
        "endpoint": endpoint, "auth": "Basic " + basic_credential(issue(class_key, claims)),
        "actor": json.dumps(claims.actor(), separators=(",", ":")), "registration": claims.registration,
        "activity_id": claims.activity})


def cmi5_link(lesson_url: str, endpoint: str, fetch_base: str, class_key: str, fetch: Claims) -> str:
    """A cmi5 launch link; `fetch` claims (kind "fetch") make its one-time fetch URL."""
    return _join(lesson_url, {
        "endpoint": endpoint, "fetch": _join(fetch_base, {"token": issue(class_key, fetch)}),
        "actor": json.dumps(fetch.actor(), separators=(",", ":")), "registration": fetch.registration,
        "activityId": fetch.activity})
