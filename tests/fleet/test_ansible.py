"""The Ansible side: ansible-lint and --syntax-check of the playbooks, `ansible-inventory --list` on inventories
`edge fleet inventory` generated (from the collector and from mDNS), Prometheus file_sd targets, and real runs
of the upgrade, config push and secret rotation plays against a local target (connection=local, a temporary
prefix; the restart command starts the release's health servers on 127.0.0.1).

ansible and ansible-lint come from Debian (`make fleet-deps`); without them these tests FAIL on purpose."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.fleet.inventory import Member, ansible_inventory, prometheus_targets
from tests.fleet.netns import NetNs, netns_iter
from tests.fleet.releases import build_wheel
from tests.fleet.restart_services import stop
from tests.fleet.test_discovery import ID1, start_unit
from tests.fleet.test_page_browser import Running
from tests.fleet.test_selfupdate import free_port

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
PLAYBOOKS = ["upgrade.yml", "config.yml", "rotate-secrets.yml"]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: run `make fleet-deps` (Debian's ansible and ansible-lint)")
    return path


def run(argv: list[str], cwd: Path = ANSIBLE, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_ansible_lint_passes() -> None:
    out = run([tool("ansible-lint"), "--nocolor", "--offline"])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook: str) -> None:
    out = run([tool("ansible-playbook"), "-i", "inventory.example.yml", "--syntax-check", playbook])
    assert out.returncode == 0, out.stderr


def inventory_list(path: Path) -> dict[str, Any]:
    out = run([tool("ansible-inventory"), "-i", str(path), "--list"])
    assert out.returncode == 0, out.stderr
    assert "[WARNING]" not in out.stderr, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_inventory_from_the_collector(fleet_config: Any, tmp_path: Path) -> None:
    from tests.fleet.conftest import FakeTime, heartbeat

    clock = FakeTime()
    running = Running(fleet_config, clock)
    try:
        assert running.beat(heartbeat(1)) == 204
        assert running.beat(heartbeat(2, unit={"id": "unit-00002", "room": 'Room "2": lab', "school":
                                               "Lincoln Elementary", "hostname": "pi"})) == 204
        assert running.beat(heartbeat(3, "Adams Middle")) == 204
        clock.t += 3600
        assert running.beat(heartbeat(1)) == 204
        inv = tmp_path / "inventory.yml"
        out = subprocess.run([sys.executable, "-m", "edge", "fleet", "inventory", "--from-collector", running.url,
                              "--out", str(inv)], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        prom = subprocess.run([sys.executable, "-m", "edge", "fleet", "inventory", "--from-collector",
                               running.url + "/api/v1/units", "--format", "prometheus"],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert prom.returncode == 0, prom.stderr
        down = subprocess.run([sys.executable, "-m", "edge", "fleet", "inventory", "--from-collector",
                               "http://127.0.0.1:9/"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert down.returncode == 1 and down.stderr.startswith("edge: error: cannot reach the collector")
    finally:
        running.close()
    listed = inventory_list(inv)
    assert sorted(listed["classroom_edge"]["children"]) == ["school_adams_middle", "school_lincoln_elementary"]
    assert sorted(listed["school_lincoln_elementary"]["hosts"]) == ["room-1-unit-000", "room-2-lab-unit-000"]
    assert listed["edge_offline"]["hosts"] == ["room-2-lab-unit-000", "room-3-unit-000"]
    host = listed["_meta"]["hostvars"]["room-2-lab-unit-000"]
    assert host["edge_room"] == 'Room "2": lab' and host["edge_school"] == "Lincoln Elementary"
    assert host["ansible_host"] == "127.0.0.1" and host["edge_ports"] == {"web": 8000, "cache": 8080, "mastery": 8090}
    targets = json.loads(prom.stdout)
    assert len(targets) == 9  # 3 units x (web, cache, mastery)
    assert targets[0] == {"targets": ["127.0.0.1:8000"], "labels": {
        "edge_unit": "unit-00003", "edge_school": "Adams Middle", "edge_room": "Room 3", "edge_service": "web",
        "edge_version": "0.1.0"}}


def test_inventory_from_discovery(tmp_path: Path) -> None:
    ns: NetNs
    for ns in netns_iter():
        start_unit(ns, "Room 12", ID1, "18000,18080,18090")
        out = ns.run([sys.executable, "-m", "edge", "fleet", "inventory", "--from-discovery", "--timeout", "2"])
    inv = tmp_path / "discovered.yml"
    inv.write_text(out.stdout)
    listed = inventory_list(inv)
    assert listed["school_lincoln"]["hosts"] == [f"room-12-{ID1[:8]}"]
    assert listed["_meta"]["hostvars"][f"room-12-{ID1[:8]}"]["edge_ports"] == {
        "web": 18000, "cache": 18080, "mastery": 18090}


def test_inventory_groups_stay_apart_and_names_cannot_inject_yaml(tmp_path: Path) -> None:
    members = [Member("a1", "St. Mary's", "R1", "1", "10.0.0.1"), Member("b2", "St Mary's", "R2", "1", "10.0.0.2"),
               Member("c3", "x\nall:\n  hosts: {evil: {}}", "R3", "1", "10.0.0.3")]
    inv = tmp_path / "tricky.yml"
    inv.write_text(ansible_inventory(members, "test"))
    listed = inventory_list(inv)
    groups = sorted(listed["classroom_edge"]["children"])
    assert groups == ["school_st_mary_s", "school_st_mary_s_2", "school_x_all_hosts_evil"]
    assert "evil" not in listed["_meta"]["hostvars"]
    assert prometheus_targets([Member("d4", "S", "R", "1", "fe80::1", {"web": 8000})])[0]["targets"] == [
        "[fe80::1]:8000"]


def test_upgrade_config_push_and_secret_rotation_against_a_local_target(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    prefix, state, cache = tmp_path / "opt", tmp_path / "services", tmp_path / "wheel-cache"
    wheelhouse = tmp_path / "wheelhouse"
    build_wheel(wheelhouse, "1.0.0")
    build_wheel(wheelhouse, "2.0.0", healthy=False)
    restart = (f"env EDGE_PREFIX={prefix} {sys.executable} {ROOT / 'tests/fleet/restart_services.py'} "
               f"--state {state} --ports {','.join(map(str, ports))}")
    config_path = tmp_path / "etc" / "edge.toml"
    inventory = tmp_path / "local.yml"
    inventory.write_text(json.dumps({"all": {"children": {"classroom_edge": {"children": {"school_test": {
        "vars": {"edge_school": "Test School"},
        "hosts": {"unit-local": {
            "ansible_connection": "local", "ansible_python_interpreter": shutil.which("python3"),
            "edge_room": "Room 1", "edge_become": False, "edge_prefix": str(prefix),
            "edge_command": str(Path(sys.executable).parent / "edge"), "edge_wheel_cache": str(cache),
            "edge_restart_command": restart, "edge_health_ports": ports, "edge_health_timeout_s": 10,
            "edge_config_path": str(config_path), "edge_secrets_dir": str(tmp_path / "secrets"),
            "edge_district": {"heartbeat_url": "https://it.district.example/api/v1/heartbeat"}}}}}}}}}))
    playbook = [tool("ansible-playbook"), "-i", str(inventory)]
    try:
        first = run([*playbook, "upgrade.yml", "-e", f"edge_wheelhouse={wheelhouse}",
                     "-e", "edge_wheel=classroom_edge-1.0.0-py3-none-any.whl"])
        assert first.returncode == 0, first.stdout[-3000:]
        assert "unit-local                 : ok=4    changed=2" in first.stdout
        assert os.readlink(prefix / "current") == "releases/1.0.0"
        assert (state / "restarts.log").read_text().split() == ["1.0.0"]

        sick = run([*playbook, "upgrade.yml", "-e", f"edge_wheelhouse={wheelhouse}",
                    "-e", "edge_wheel=classroom_edge-2.0.0-py3-none-any.whl"])
        assert sick.returncode != 0
        assert "rolled back to 1.0.0, which is healthy again" in sick.stdout
        assert "failed=1" in sick.stdout and "NO MORE HOSTS LEFT" in sick.stdout
        assert os.readlink(prefix / "current") == "releases/1.0.0"

        # config push: rendered, checked by `edge config check`, restarted, healthy
        push = run([*playbook, "config.yml"])
        assert push.returncode == 0, push.stdout[-3000:]
        text = config_path.read_text()
        assert 'room = "Room 1"' in text and 'school = "Test School"' in text
        assert 'heartbeat_url = "https://it.district.example/api/v1/heartbeat"' in text
        key = (tmp_path / "secrets/unit-local/class_key").read_text().split()[0]
        assert f'class_key = "{key}"' in text
        restarts = (state / "restarts.log").read_text().split()
        assert restarts[-1] == "?"  # the handler restarted the services (outside self-update)

        # a config the release refuses never replaces the live file
        bad = run([*playbook, "config.yml", "-e", '{"edge_extra_config": "[cache]\\nport = 99999\\n"}'])
        assert bad.returncode != 0 and "cache.port: must be a TCP port 0..65535" in bad.stdout
        assert config_path.read_text() == text

        # secret rotation: new class key and API token, pushed the same way
        rotated = run([*playbook, "rotate-secrets.yml"])
        assert rotated.returncode == 0, rotated.stdout[-3000:]
        new_text = config_path.read_text()
        new_key = (tmp_path / "secrets/unit-local/class_key").read_text().split()[0]
        assert new_key != key and f'class_key = "{new_key}"' in new_text
        assert new_text.split("api_token")[1].split("\n")[0] != text.split("api_token")[1].split("\n")[0]

        # rollout.sh: school by school (one school here); the unit already runs 1.0.0, so nothing changes
        rollout = run([str(ANSIBLE / "rollout.sh"), str(inventory), "-e", f"edge_wheelhouse={wheelhouse}",
                       "-e", "edge_wheel=classroom_edge-1.0.0-py3-none-any.whl"])
        assert rollout.returncode == 0, rollout.stdout[-3000:] + rollout.stderr[-2000:]
        assert "== school_test" in rollout.stdout and "edge self-update: unchanged" in rollout.stdout
        stopped = run([str(ANSIBLE / "rollout.sh"), str(inventory), "-e", f"edge_wheelhouse={wheelhouse}",
                       "-e", "edge_wheel=classroom_edge-2.0.0-py3-none-any.whl"])
        assert stopped.returncode == 1 and "rollout stopped: school_test failed" in stopped.stderr
        assert os.readlink(prefix / "current") == "releases/1.0.0"
    finally:
        stop(state / "pids")
