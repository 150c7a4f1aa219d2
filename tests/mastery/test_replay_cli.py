"""`edge mastery replay`: parsing, de-duplication, ordering, output and errors naming the line or key."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from edge_native import bkt

import edge.cli
from edge.mastery.replay import Event, parse_timestamp, replay
from edge.params import ParamSet, SkillParams

PARAMS = """
[default]
prior = 0.3
learn = 0.1
guess = 0.2
slip = 0.1

[skills."fractions.add"]
prior = 0.5
forget = 0.02
"""

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def only_mastery_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate from sub-commands other packages are still building."""
    monkeypatch.setattr(edge.cli, "REGISTRARS", ("edge.mastery.cli",))


def _write(tmp_path: Path, events: str, params: str = PARAMS) -> tuple[Path, Path]:
    ev = tmp_path / "events.csv"
    ev.write_text(events)
    pa = tmp_path / "params.toml"
    pa.write_text(params)
    return ev, pa


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("1714557600") == Decimal(1714557600)
    assert parse_timestamp("1714557600.25") == Decimal("1714557600.25")
    assert parse_timestamp("2024-05-01T10:00:00Z") == Decimal(1714557600)
    assert parse_timestamp("2024-05-01T12:00:00.5+02:00") == Decimal("1714557600.5")
    assert parse_timestamp("2024-05-01T10:00:00") == Decimal(1714557600)  # no offset: UTC
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_timestamp("yesterday")


def test_replay_orders_dedupes_and_matches_the_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ev, pa = _write(tmp_path, "\n".join([
        "event_id,student,skill,correct,timestamp",
        "e3,s1,fractions.add,false,2024-05-01T10:00:02Z",
        "e1,s1,fractions.add,1,1714557600",
        "e2,s2,decimals,TRUE,1714557601",
        "e1,s1,fractions.add,1,1714557600",  # exact repeat: ignored
        "e0,s1,fractions.add,0,2024-05-01T10:00:02Z",  # same time as e3: e0 sorts first
        "",
    ]))
    assert edge.cli.main(["mastery", "replay", str(ev), "--params", str(pa)]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [r["event_id"] for r in rows] == ["e1", "e2", "e0", "e3"]
    assert list(rows[0]) == ["event_id", "student", "skill", "p_correct", "p_known_after"]

    # Independent check: the fractions.add cell by hand with the kernel, decimals with its defaults.
    frac = SkillParams(prior=0.5, learn=0.1, guess=0.2, slip=0.1, forget=0.02)
    p = frac.prior
    for r, correct in zip([rows[0], rows[2], rows[3]], [1, 0, 0], strict=True):
        p_correct = p * (1 - frac.slip) + (1 - p) * frac.guess
        post = p * (1 - frac.slip) / p_correct if correct else p * frac.slip / (1 - p_correct)
        p = post * (1 - frac.forget) + (1 - post) * frac.learn
        assert float(r["p_correct"]) == pytest.approx(p_correct, abs=1e-12)
        assert float(r["p_known_after"]) == pytest.approx(p, abs=1e-12)
    assert float(rows[1]["p_correct"]) == pytest.approx(0.3 * 0.9 + 0.7 * 0.2, abs=1e-15)


def test_out_file_and_subprocess(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    lines = ["event_id,student,skill,correct,timestamp"]
    for i in range(500):
        lines.append(f"ev{i:04d},st{rng.integers(0, 8)},sk{rng.integers(0, 3)},{rng.integers(0, 2)},"
                     f"{1714557600 + int(rng.integers(0, 10_000))}")
    ev, pa = _write(tmp_path, "\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    code = ("import sys, edge.cli; edge.cli.REGISTRARS = ('edge.mastery.cli',); "
            "raise SystemExit(edge.cli.main(sys.argv[1:]))")
    proc = subprocess.run(
        [sys.executable, "-c", code, "mastery", "replay", str(ev), "--params", str(pa), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    rows = _rows(out.read_text())
    assert len(rows) == 500
    # The same through the library, event by event in (timestamp, event_id) order.
    events = []
    for line in lines[1:]:
        ident, student, skill, correct, ts = line.split(",")
        events.append(Event(ident, student, skill, correct == "1", Decimal(ts)))
    direct = replay(events, ParamSet(default=SkillParams(0.3, 0.1, 0.2, 0.1, 0.0)))
    assert [r["event_id"] for r in rows] == [d.event_id for d in direct]
    assert [float(r["p_known_after"]) for r in rows] == [d.p_known_after for d in direct]


def test_replay_uses_the_selected_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = bkt.update

    def spy(state: object, params: object, s: np.ndarray, *rest: object) -> None:
        calls.append(len(s))
        real(state, params, s, *rest)

    monkeypatch.setattr(bkt, "update", spy)
    replay([Event("a", "s", "k", True, Decimal(1)), Event("b", "s", "k", False, Decimal(2))], ParamSet())
    assert calls == [2]  # one batch for the whole file


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ("", "line 1: empty file"),
        ("event_id,student,skill,correct\n", "line 1: missing column 'timestamp'"),
        ("event_id,student,skill,correct,timestamp\ne1,s,k,1,1\ne2,s,k,maybe,2\n",
         "line 3: correct must be 0, 1, true or false, got 'maybe'"),
        ("event_id,student,skill,correct,timestamp\ne1,s,k,1,soon\n", "line 2: timestamp must be ISO 8601"),
        ("event_id,student,skill,correct,timestamp\ne1,s,k,1\n", "line 2: has 4 fields, the header has 5"),
        ("event_id,student,skill,correct,timestamp\ne1,,k,1,1\n", "line 2: student is empty"),
        ("event_id,student,skill,correct,timestamp\ne1,s," + "k" * 201 + ",1,1\n",
         "line 2: skill must be at most 200 characters"),
        ("event_id,student,skill,correct,timestamp\ne1,s\u202e,k,1,1\n",
         "line 2: student must not contain control or text-direction characters"),
        # a field over the csv module's limit (a pasted blob) is a clean error, not csv.Error's traceback
        ("event_id,student,skill,correct,timestamp\ne1,s," + "k" * 200_000 + ",1,1\n",
         "line 2: bad CSV: field larger than field limit"),
        ("event_id,student,skill,correct,timestamp\ne1,s,k,1,1\n\ne1,s,k,0,1\n",
         "line 4: event_id 'e1' repeats line 2 with different content"),
    ],
)
def test_bad_events_name_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], events: str, message: str
) -> None:
    ev, pa = _write(tmp_path, events)
    assert edge.cli.main(["mastery", "replay", str(ev), "--params", str(pa)]) == 1
    err = capsys.readouterr().err
    assert err == f"edge: error: {ev}: {message}" + err.split(message, 1)[1]
    assert err.endswith("\n") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("[default]\nprior = 0.3\nlearn = 0.1\nguess = 0.2\n", "default.slip: missing"),
        ("[default]\nprior = 0.3\nlearn = 0.1\nguess = 0.2\nslip = 0.7\n", "default.slip: must be in (0, 0.5)"),
        (PARAMS + '\n[skills."x"]\nlearn = "fast"\n', 'skills."x".learn: must be a number, got str'),
        ("[default\n", "invalid TOML"),
    ],
)
def test_bad_params_name_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], params: str, message: str
) -> None:
    ev, pa = _write(tmp_path, "event_id,student,skill,correct,timestamp\n", params)
    assert edge.cli.main(["mastery", "replay", str(ev), "--params", str(pa)]) == 1
    assert capsys.readouterr().err.startswith(f"edge: error: {pa}: {message}")


def test_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ev, pa = _write(tmp_path, "event_id,student,skill,correct,timestamp\n")
    assert edge.cli.main(["mastery", "replay", str(tmp_path / "nope.csv"), "--params", str(pa)]) == 1
    assert "nope.csv: no such file" in capsys.readouterr().err
    assert edge.cli.main(["mastery", "replay", str(ev), "--params", str(tmp_path / "nope.toml")]) == 1
    assert "nope.toml: no such file" in capsys.readouterr().err
    assert edge.cli.main(["mastery", "replay", str(ev), "--params", str(pa)]) == 0
    assert capsys.readouterr().out == "event_id,student,skill,p_correct,p_known_after\n"
