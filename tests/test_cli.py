"""The `edge` command as users run it: help, preview, errors as `edge: error: ...` with exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from tests.net import free_port
from tests.rotation.plans import PLAN_TOML


def edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock", **(env or {})})


def test_help_lists_the_commands() -> None:
    out = edge("--help")
    assert out.returncode == 0
    for cmd in ("run", "rotation", "doctor"):
        assert cmd in out.stdout


def test_preview_json_is_the_documented_format(tmp_path: Path) -> None:
    plan = tmp_path / "math.toml"
    plan.write_text(PLAN_TOML)
    out = edge("rotation", "preview", str(plan), "--json")
    assert out.returncode == 0, out.stderr
    segs = json.loads(out.stdout)
    assert segs[0] == {"round": 1, "phase": "work", "start_s": 0, "end_s": 840,
                       "assignments": {"A": "Online", "B": "Teacher", "C": "Practice"}}
    assert segs[-1]["end_s"] == 4 * 900 + 3 * 90


def test_preview_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "math.toml"
    plan.write_text(PLAN_TOML)
    assert main(["rotation", "preview", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "Math block: 4 rounds, 64:30 in all" in out
    assert "15:00  transition     2  A→Teacher, B→Practice, C→Games" in out


def test_invalid_plan_exits_1_with_file_key_reason(tmp_path: Path) -> None:
    plan = tmp_path / "bad.toml"
    plan.write_text(PLAN_TOML.replace("work_minutes = 15", "work_minutes = -5"))
    out = edge("rotation", "preview", str(plan))
    assert out.returncode == 1
    assert out.stderr == f"edge: error: {plan}: plan.work_minutes: must be greater than 0, got -5\n"
    assert "Traceback" not in out.stderr


def test_bad_config_exits_1_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text("[gpio]\nred = 99\n")
    out = edge("doctor", "--config", str(cfg))
    assert out.returncode == 1
    assert out.stderr == f"edge: error: {cfg}: gpio.red: must be a BCM GPIO number 0..27\n"
    out = edge("doctor", env={"EDGE_CONFIG": str(cfg)})
    assert out.returncode == 1 and "gpio.red" in out.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text("[gpio]\nred = 99\n")
    out = edge("doctor", "--config", str(cfg), env={"EDGE_DEBUG": "1"})
    assert out.returncode == 1 and "Traceback" in out.stderr


def test_save_list_delete_plans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[unit]\nstate_dir = "{tmp_path}/state"\n')
    plan = tmp_path / "math.toml"
    plan.write_text(PLAN_TOML)
    assert main(["rotation", "save", str(plan), "--config", str(cfg)]) == 0
    assert (tmp_path / "state" / "plans" / "math-block.toml").exists()
    assert main(["rotation", "list", "--config", str(cfg)]) == 0
    assert "Math block: 4 stations, 3 groups, 4 rounds, 64:30" in capsys.readouterr().out
    assert main(["rotation", "delete", "Math block", "--config", str(cfg)]) == 0
    assert main(["rotation", "delete", "Math block", "--config", str(cfg)]) == 1
    assert "no saved plan by that name" in capsys.readouterr().err




def test_edge_run_shows_the_demo_rotation_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal

    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[unit]\nstate_dir = "{tmp_path}/state"\n[cache]\nhost = "127.0.0.1"\nport = {free_port()}\n'
                   f'[mastery]\nhost = "127.0.0.1"\nport = {free_port()}\n'
                   f'[web]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    plan = tmp_path / "math.toml"
    plan.write_text(PLAN_TOML)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg), "--plan", str(plan)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        status = next(line for line in lines if line.startswith("WORK"))
        assert "round 1/4" in status and "G:on" in status and "A→Online" in status
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()
    # the running rotation was saved, so a restart resumes it
    state = json.loads((tmp_path / "state" / "rotation.json").read_text())
    assert (state["status"], state["round"]) == ("running", 1)


def test_edge_run_without_config_is_the_demo_with_one_off_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import edge.app

    seen: dict[str, Any] = {}

    def fake_run(config: object, plan: object = None, services: object = ()) -> int:
        seen.update(config=config, plan=plan, services=services)
        return 0

    monkeypatch.delenv("EDGE_CONFIG", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(edge.app, "run_foreground", fake_run)
    assert main(["run"]) == 0
    # saved as well: after "End rotation" the teacher page can start the demo again
    assert (tmp_path / "plans" / "demo-rotation.toml").exists()
    cfg = seen["config"]
    assert seen["plan"] is edge.app.DEMO_PLAN and seen["services"] == edge.app.ALL_SERVICES
    out = capsys.readouterr().out
    assert f"demo teacher PIN for this run: {cfg.web.teacher_pin}" in out
    assert f"class / {cfg.mastery.class_key}" in out
    assert len(cfg.web.teacher_pin) == 6 and cfg.mastery.class_key
