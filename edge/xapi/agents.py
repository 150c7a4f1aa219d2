"""Agents and Groups (xAPI 1.0.3 Data 2.4.2): validation, and the inverse functional identifier (IFI) that
says two of them are the same person or group.

An Agent has exactly one IFI (mbox, mbox_sha1sum, openid, account); a Group is anonymous (no IFI, a
non-empty `member` list) or identified (one IFI, `member` optional); members are Agents, never Groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.exc import StatementError
from edge.serving import jsontext
from edge.xapi import fields as f
from edge.xapi.formats import is_iri, is_mbox, is_sha1

IFIS = ("mbox", "mbox_sha1sum", "openid", "account")
AGENT_KEYS = frozenset({"objectType", "name", *IFIS})
GROUP_KEYS = frozenset({*AGENT_KEYS, "member"})
ACCOUNT_KEYS = frozenset({"homePage", "name"})
MAX_MEMBERS = 1000


def _ifis(d: Mapping[str, Any], field: str) -> int:
    n = 0
    if "mbox" in d:
        n += 1
        if type(d["mbox"]) is not str or not is_mbox(d["mbox"]):
            raise StatementError(f"{field}.mbox", "must be a mailto: IRI of an e-mail address")
    if "mbox_sha1sum" in d:
        n += 1
        if type(d["mbox_sha1sum"]) is not str or not is_sha1(d["mbox_sha1sum"]):
            raise StatementError(f"{field}.mbox_sha1sum", "must be the 40 hex digits of a SHA-1")
    if "openid" in d:
        n += 1
        f.iri(d["openid"], f"{field}.openid")
    if "account" in d:
        n += 1
        account = f.keys(d["account"], f"{field}.account", ACCOUNT_KEYS, ACCOUNT_KEYS)
        home = f.string(account["homePage"], f"{field}.account.homePage")
        if not is_iri(home) or "://" not in home:
            raise StatementError(f"{field}.account.homePage", "must be an IRL (a URL such as https://...)")
        f.string(account["name"], f"{field}.account.name")
    return n


def agent(value: Any, field: str) -> dict[str, Any]:
    """An Agent (objectType absent or "Agent") with exactly one IFI."""
    d = f.keys(value, field, AGENT_KEYS)
    if d.get("objectType", "Agent") != "Agent":
        raise StatementError(f"{field}.objectType", "must be \"Agent\"")
    if "name" in d:
        f.string(d["name"], f"{field}.name")
    if _ifis(d, field) != 1:
        raise StatementError(field, "an Agent must have exactly one of mbox, mbox_sha1sum, openid, account")
    return d


def group(value: Any, field: str) -> dict[str, Any]:
    """A Group: anonymous (members, no IFI) or identified (one IFI)."""
    d = f.keys(value, field, GROUP_KEYS, ("objectType",))
    if d["objectType"] != "Group":
        raise StatementError(f"{field}.objectType", "must be \"Group\"")
    if "name" in d:
        f.string(d["name"], f"{field}.name")
    n = _ifis(d, field)
    if n > 1:
        raise StatementError(field, "a Group has at most one of mbox, mbox_sha1sum, openid, account")
    if "member" in d:
        members = f.each(d["member"], f"{field}.member", MAX_MEMBERS, "members", agent)
        if n == 0 and not members:
            raise StatementError(f"{field}.member", "an anonymous Group needs at least one member")
    elif n == 0:
        raise StatementError(f"{field}.member", "an anonymous Group (no IFI) must list its members")
    return d


def actor(value: Any, field: str) -> dict[str, Any]:
    """An Agent or a Group, by objectType (absent = Agent)."""
    d = f.obj(value, field)
    kind = d.get("objectType", "Agent")
    if kind == "Group":
        return group(d, field)
    if kind != "Agent":
        raise StatementError(f"{field}.objectType", "must be \"Agent\" or \"Group\"")
    return agent(d, field)


def ifi_key(value: Mapping[str, Any]) -> str | None:
    """The identity of a (validated) Agent or identified Group as one string; None for an anonymous Group."""
    if "mbox" in value:
        return "mbox:" + str(value["mbox"])
    if "mbox_sha1sum" in value:
        return "sha1:" + str(value["mbox_sha1sum"]).lower()
    if "openid" in value:
        return "openid:" + str(value["openid"])
    account = value.get("account")
    if isinstance(account, Mapping):
        return f"account:{account['homePage']}\x1f{account['name']}"
    return None


def ifi_only(value: Mapping[str, Any]) -> dict[str, Any]:
    """An Agent or Group reduced to what identifies it (format=ids): objectType, the IFI, and the members
    of an anonymous Group."""
    out: dict[str, Any] = {}
    if "objectType" in value:
        out["objectType"] = value["objectType"]
    for k in IFIS:
        if k in value:
            out[k] = value[k]
            return out
    if "member" in value:
        out["member"] = [ifi_only(m) for m in value["member"]]
    return out


def parse_agent_param(text: str, name: str) -> dict[str, Any]:
    """A JSON Agent (or identified Group) given as a query parameter; StatementError(400) naming `name`."""
    try:
        value = jsontext.loads(text)
    except ValueError:
        raise StatementError(name, "must be a JSON Agent object") from None
    d = actor(value, name)
    if ifi_key(d) is None:
        raise StatementError(name, "must identify one Agent or Group (an IFI)")
    return d
