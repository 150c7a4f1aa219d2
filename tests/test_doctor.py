"""`edge doctor` speaks in its own words: no raw Python warnings, and bell periods from both places."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_doctor_has_no_raw_warning_and_counts_the_teachers_periods(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "periods.json").write_text(json.dumps({"version": 1, "periods": [
        {"name": "P1", "plan": "Math", "days": ["mon"], "start": "09:00"},
        {"name": "P2", "plan": "Math", "days": ["tue"], "start": "10:00"}]}))
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[unit]\nstate_dir = "{state}"\n')
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}  # no GPIO here: the fallback
    proc = subprocess.run([sys.executable, "-m", "edge", "doctor", "--config", str(cfg)], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and ".py:" not in proc.stderr  # no `file.py:12: NoGPIOWarning: ...`
    assert "edge: warning: no GPIO on this host" in proc.stderr  # said once, in words
    assert "0 in " in proc.stdout and "2 set on the teacher page" in proc.stdout
    assert "fallback" in proc.stdout
