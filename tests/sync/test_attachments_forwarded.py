"""Statements with attachments reach the district with their content: the uploader sends multipart/mixed
to a conformant LRS (this project's own, as a district would run one; Ralph takes no attachments)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from edge.config import DistrictConfig, parse_config
from edge.mastery.app import make_app
from edge.sync.outbox import Outbox
from edge.sync.uploader import Uploader
from edge.xapi import multipart

KEY = "district-key"
HEADERS = {"X-Experience-API-Version": "1.0.3"}


async def test_attachment_content_is_forwarded_as_multipart(tmp_path: Path) -> None:
    unit = TestServer(make_app(parse_config({"unit": {"state_dir": str(tmp_path / "unit")},
                                             "mastery": {"class_key": "unit-key"}})), host="127.0.0.1")
    district = TestServer(make_app(parse_config({"unit": {"state_dir": str(tmp_path / "district")},
                                                 "mastery": {"class_key": KEY}})), host="127.0.0.1")
    essay = b"Fractions are parts of a whole.\r\n" * 50
    sha2 = hashlib.sha256(essay).hexdigest()
    sid = str(uuid.uuid4())
    st = {"id": sid, "actor": {"account": {"homePage": "https://school.example", "name": "stu-1"}},
          "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
          "object": {"id": "https://lessons.example/essay"}, "timestamp": "2026-03-02T09:00:00Z",
          "attachments": [{"usageType": "http://id.tincanapi.com/attachment/supporting_media",
                           "display": {"en-US": "essay"}, "contentType": "text/plain", "length": len(essay),
                           "sha2": sha2}]}
    async with TestClient(unit) as u:
        data, ctype = multipart.build(json.dumps(st).encode(), [(sha2, "text/plain", essay)])
        r = await u.post("/xapi/statements", data=data, headers={
            **HEADERS, "Content-Type": ctype, "Authorization": "Basic " + _b64("class:unit-key")})
        assert r.status == 200, await r.text()
    async with TestClient(district) as d:
        outbox = Outbox(tmp_path / "unit" / "mastery" / "mastery.sqlite3")
        up = Uploader(outbox, DistrictConfig(lrs_url=str(d.make_url("/xapi")), lrs_user="class", lrs_password=KEY))
        try:
            result = await up.run_round()
        finally:
            await up.close()
            outbox.close()
        assert result.ok and result.sent == 1
        r = await d.get(f"/xapi/statements?statementId={sid}&attachments=true",
                        headers={**HEADERS, "Authorization": "Basic " + _b64(f"class:{KEY}")})
        statements, parts = multipart.parse(await r.read(), r.headers["Content-Type"])
        assert json.loads(statements)["id"] == sid and parts[sha2].data == essay


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
