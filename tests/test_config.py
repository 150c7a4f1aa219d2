"""The one typed config: defaults with no file, and a clear file/key/reason for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeConfig, load_config
from edge.exc import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_defaults_work_with_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_CONFIG", raising=False)
    cfg = load_config(None)
    assert cfg == EdgeConfig()
    assert (cfg.gpio.red, cfg.gpio.amber, cfg.gpio.green, cfg.gpio.buzzer, cfg.gpio.button) == (9, 10, 11, 17, 27)
    assert (cfg.web.port, cfg.cache.port, cfg.mastery.port) == (8000, 8080, 8090)


def test_edge_config_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[unit]\nroom = "Room 12"\n[gpio]\ntonal = true\n[cache.origins]\ndistrict = "https://x.org"\n')
    monkeypatch.setenv("EDGE_CONFIG", str(path))
    cfg = load_config()
    assert (cfg.source, cfg.unit.room, cfg.gpio.tonal) == (str(path), "Room 12", True)
    assert cfg.cache.origins == {"district": "https://x.org"}


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[gpio]\nred = 40\n", "gpio.red", "BCM GPIO number"),
        ("[gpio]\nred = \"nine\"\n", "gpio.red", "must be an integer, got str"),
        ("[gpio]\ntonal = 1\n", "gpio.tonal", "must be true or false"),
        ("[gpio]\nred = 17\n", "gpio.buzzer", "already used by gpio.red"),
        ("[gpio]\ncolour = 1\n", "gpio.colour", "unknown key"),
        ("[nonsense]\na = 1\n", "nonsense", "unknown key"),
        ("[web]\nport = 70000\n", "web.port", "TCP port"),
        ("web = 3\n", "web", "must be a table"),
        ("[mastery]\nbands = [0.9, 0.5]\n", "mastery.bands", "0<low<high<1"),
        ("[mastery.params.default]\nprior = 2\n", "mastery.params.default.prior", "must be in [0, 1]"),
        ("[district]\nlrs_url = \"ftp://x\"\n", "district.lrs_url", "http://"),
        ("[district]\nlrs_user = \"u\"\n", "district.lrs_password", "go together"),
        ("[cache.origins]\n_cache = \"https://x\"\n", "cache.origins._cache", "origin names"),
        ("[cache.origins]\nusb = \"smb://x\"\n", "cache.origins.usb", "file://"),
        ("[[rotation.periods]]\nplan = \"math\"\nstart = \"25:00\"\n", "rotation.periods[0].start", "HH:MM"),
        ("[[rotation.periods]]\nplan = \"math\"\ndays = [\"monday\"]\n", "rotation.periods[0].days", "'monday'"),
        ("[[rotation.periods]]\nstart = \"09:00\"\n", "rotation.periods[0].plan", "missing"),
    ],
)
def test_errors_name_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert (err.value.file, err.value.key) == (str(path), key)
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{path}: {key}: ")


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"edge.toml: invalid TOML"):
        load_config(write(tmp_path, "[gpio\nred=1"))


def test_state_directory_from_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/a:{tmp_path}/b")
    monkeypatch.setenv("CACHE_DIRECTORY", f"{tmp_path}/c")
    cfg = EdgeConfig()
    assert (cfg.state_dir, cfg.plans_dir, cfg.cache_dir) == (tmp_path / "a", tmp_path / "a" / "plans", tmp_path / "c")
