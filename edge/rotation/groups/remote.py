"""Mastery from the unit's mastery service, over HTTP on the unit (the processes share nothing else): what
the teacher page's regrouping reads, so it works under the separate systemd users of the services."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from edge.config import EdgeConfig
from edge.exc import GroupingError, MasteryUnavailable
from edge.rotation.groups.model import StudentScore
from edge.xapi import AUTH_USER

TIMEOUT_S = 5.0


def _base(config: EdgeConfig) -> str:
    host = config.mastery.host
    host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
    return f"http://{'[' + host + ']' if ':' in host else host}:{config.mastery.port}"


def fetch_scores(config: EdgeConfig, skill: str) -> dict[str, StudentScore]:
    """Every student the mastery service knows for `skill`: P(known) and opportunities (GroupingError when the
    service does not answer or has no class key)."""
    if not config.mastery.class_key:
        raise GroupingError("mastery.class_key is not set: the mastery service keeps no evidence to group by")
    auth = base64.b64encode(f"{AUTH_USER}:{config.mastery.class_key}".encode()).decode()
    req = urllib.request.Request(f"{_base(config)}/api/v1/mastery?skill={quote(skill, safe='')}",
                                 headers={"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            doc: Any = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise MasteryUnavailable(f"the mastery service answered {e.code} for skill {skill!r}") from None
    except (OSError, ValueError) as e:
        raise MasteryUnavailable(f"the mastery service does not answer on port {config.mastery.port} ({e})") \
            from None
    students = doc.get("students") if isinstance(doc, dict) else None
    if not isinstance(students, list):
        raise MasteryUnavailable("the mastery service answered something that is not a mastery report")
    return {str(s["student"]): StudentScore(float(s["p_known"]), int(s["responses"])) for s in students
            if isinstance(s, dict) and {"student", "p_known", "responses"} <= s.keys()}
