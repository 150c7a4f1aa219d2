"""Saved plans: one TOML file per plan in the plans directory, so IT can copy them between rooms."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from edge.exc import PlanError
from edge.fsutil import atomic_write
from edge.rotation.plan import Plan, load_plan, parse_plan


def slug(name: str) -> str:
    """File-name form of a plan name ("Math block" -> "math-block")."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "plan"


@dataclass(frozen=True)
class BrokenPlan:
    """A saved plan file that does not load: `name` deletes it (its file name), `message` says why."""

    name: str
    message: str


class PlanStore:
    """Create, list, read and delete saved plans; a name maps to `<slug>.toml`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / f"{slug(name)}.toml"

    def plans(self) -> list[Plan]:
        """Every readable saved plan, by name; a broken file is skipped (edge doctor reports it)."""
        plans = []
        for path in sorted(self.directory.glob("*.toml")):
            try:
                plans.append(load_plan(str(path)))
            except PlanError:
                continue
        return sorted(plans, key=lambda p: p.name.lower())

    def broken(self) -> list[BrokenPlan]:
        """Saved plan files that do not validate (e.g. saved before a limit existed): shown, and deletable."""
        found = []
        for path in sorted(self.directory.glob("*.toml")):
            try:
                load_plan(str(path))
            except PlanError as e:
                found.append(BrokenPlan(path.stem, str(e)))
        return found

    def get(self, name: str) -> Plan:
        path = self._path(name)
        if not path.exists():
            raise PlanError(str(self.directory), name, "no saved plan by that name")
        return load_plan(str(path))

    def save(self, plan: Plan, replace: bool = True) -> Path:
        """Write the plan (validated again from its own document, so a saved file always loads)."""
        doc = plan.to_toml()
        parse_plan(tomllib.loads(tomli_w.dumps(doc)), f"<plan {plan.name}>")
        path = self._path(plan.name)
        if not replace and path.exists():
            raise PlanError(str(self.directory), plan.name, f"a saved plan uses that name ({self._name_in(path)!r} "
                                                            f"in {path.name}); replace it on purpose (--force)")
        atomic_write(path, tomli_w.dumps(doc).encode())
        return path

    @staticmethod
    def _name_in(path: Path) -> str:
        """The name a saved file holds (its file name when it does not load)."""
        try:
            return load_plan(str(path)).name
        except PlanError:
            return path.stem

    def delete(self, name: str) -> None:
        path = self._path(name)
        if not path.exists():
            raise PlanError(str(self.directory), name, "no saved plan by that name")
        path.unlink()
