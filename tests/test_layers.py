"""Every module of the unit sits in exactly one layer of the import contract (pyproject.toml), so a new module
cannot slip past `lint-imports` unconstrained; the layer contract itself holds; and no module outgrows the sizes
the house keeps (a class of at most 300 lines, a module of at most 500: past that a job wants its own room)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"edge": ROOT / "edge", "content_cache": ROOT / "content_cache",
            "edge_native": ROOT / "native" / "edge_native"}


def _modules() -> set[str]:
    found = set()
    for name, path in PACKAGES.items():
        for py in path.rglob("*.py"):
            rel = py.relative_to(path).with_suffix("")
            parts = [name, *rel.parts]
            if parts[-1] == "__init__":
                parts.pop()
            found.add(".".join(parts))
    return found


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in layers]


def test_every_module_is_in_exactly_one_layer() -> None:
    listed = [m for layer in _layers() for m in layer]
    assert len(listed) == len(set(listed)), "a module is listed twice"
    missing = sorted(m for m in _modules() if not any(m == entry or m.startswith(entry + ".") for entry in listed)
                     and not any(entry.startswith(m + ".") for entry in listed))
    assert missing == [], f"modules in no layer of pyproject.toml's import contract: {missing}"
    unknown = sorted(m for m in listed if m not in _modules())
    assert unknown == [], f"layers name modules that do not exist: {unknown}"


def test_the_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a dev dependency (make lint runs it)"
    result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


def test_no_class_over_300_lines_and_no_module_over_500() -> None:
    too_big = []
    for path in PACKAGES.values():
        for py in sorted(path.rglob("*.py")):
            source = py.read_text()
            if (lines := len(source.splitlines())) > 500:
                too_big.append(f"{py.relative_to(ROOT)}: {lines} lines")
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ClassDef) and (span := (node.end_lineno or 0) - node.lineno + 1) > 300:
                    too_big.append(f"{py.relative_to(ROOT)}: class {node.name} spans {span} lines")
    assert too_big == []
