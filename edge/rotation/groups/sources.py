"""Where a proposal's input comes from on a unit: the mastery store (read-only, replayed with the BKT kernel
through edge.mastery), a `student,skill,p_known,n` CSV, the imported roster, saved plans, the rotation state
and the lesson manifests (focus skill from the online station's lessons).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.config import EdgeConfig
from edge.csvfile import read_csv
from edge.exc import CsvFileError, GroupingError, PlanError, RosterError, StateError
from edge.limits import SKILL_MAX
from edge.mastery.lessons import lesson_skills
from edge.mastery.model import MasteryState
from edge.rotation.groups.model import MAX_EVIDENCE, MAX_STUDENTS, StudentScore, check_name
from edge.rotation.groups.propose import plan_membership
from edge.rotation.plan import Plan, parse_plan
from edge.rotation.state import JsonStateFile
from edge.rotation.store import PlanStore
from edge.sync.roster import Roster, load_roster

CSV_COLUMNS = ("student", "skill", "p_known", "n")
MAX_CSV_ROWS = 200_000


@dataclass(frozen=True)
class MasteryTable:
    """Scores of every skill known to the source, and every student it has seen (on any skill)."""

    skills: dict[str, dict[str, StudentScore]]
    students: frozenset[str]

    def for_skill(self, skill: str) -> dict[str, StudentScore]:
        if skill not in self.skills:
            known = ", ".join(sorted(self.skills)[:20]) or "none"
            raise GroupingError(f"unknown skill {skill!r} (known: {known})")
        return self.skills[skill]


def read_mastery_csv(path: str | Path) -> MasteryTable:
    """Parse a `student,skill,p_known,n` CSV; errors name the file and line."""
    file = str(path)
    skills: dict[str, dict[str, StudentScore]] = {}
    students: set[str] = set()
    try:
        for row in read_csv(path, CSV_COLUMNS, max_rows=MAX_CSV_ROWS):
            v = row.values
            try:
                student = check_name(v["student"], "student")
                skill = check_name(v["skill"], "skill", SKILL_MAX)
                score = StudentScore(_probability(v["p_known"]), _count(v["n"]))
            except GroupingError as e:
                raise GroupingError(f"{file}: line {row.line}: {e}") from None
            cell = skills.setdefault(skill, {})
            if student in cell:
                raise GroupingError(f"{file}: line {row.line}: {student!r} has a second row for skill {skill!r}")
            cell[student] = score
            students.add(student)
    except CsvFileError as e:
        raise GroupingError(str(e)) from None
    if len(students) > MAX_STUDENTS:
        raise GroupingError(f"{file}: {len(students)} students, at most {MAX_STUDENTS}")
    return MasteryTable(skills, frozenset(students))


def _probability(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise GroupingError(f"p_known must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise GroupingError(f"p_known must be a number in [0, 1], got {text!r}")
    return p


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_EVIDENCE:
        raise GroupingError(f"n must be a whole number in [0, {MAX_EVIDENCE}], got {text!r}")
    return int(text)


def mastery_db_path(config: EdgeConfig) -> Path:
    return config.state_dir / "mastery" / "mastery.sqlite3"


def read_mastery_store(config: EdgeConfig, skill: str) -> MasteryTable:
    """P(known) and response counts of `skill` replayed from the unit's evidence (read-only: the running
    mastery service is not disturbed) with the configured BKT parameters and kernel (edge.mastery.model).
    Every student seen in evidence is in the table; one without evidence on `skill` sits at its prior, n = 0.
    `skills` has the focus skill when evidence or a lesson manifest knows it."""
    path = mastery_db_path(config)
    if not path.exists():
        raise GroupingError(f"no mastery store at {path} (no evidence yet); use --mastery FILE.csv")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            students = {str(r[0]) for r in db.execute("SELECT DISTINCT student FROM evidence")}
            skills = {str(r[0]) for r in db.execute("SELECT DISTINCT skill FROM evidence")}
            rows = [(str(s), str(k), bool(c), int(t), str(i)) for s, k, c, t, i in db.execute(
                "SELECT student, skill, correct, ts_us, id FROM evidence WHERE skill = ?"
                " ORDER BY student, skill, ts_us, id", (skill,))]
        finally:
            db.close()
    except sqlite3.Error as e:
        raise GroupingError(f"cannot read the mastery store {path}: {e}") from None
    if len(students) > MAX_STUDENTS:
        raise GroupingError(f"the mastery store has {len(students)} students, at most {MAX_STUDENTS}")
    if skill not in skills and skill not in lesson_skills(config).values():
        known = ", ".join(sorted(skills)[:20]) or "none"
        raise GroupingError(f"unknown skill {skill!r} (skills with evidence: {known})")
    params = config.mastery.params
    state = MasteryState(params)
    state.load(rows)
    prior = params.for_skill(skill).prior
    scores = {s: StudentScore(prior, 0) for s in students}
    for cell in state.by_skill(skill):
        scores[cell.student] = StudentScore(min(1.0, max(0.0, cell.p_known)), cell.responses)
    return MasteryTable({skill: scores}, frozenset(students))


def focus_skills(config: EdgeConfig, plan: Plan) -> list[str]:
    """The skills of the lessons at the plan's online station(s), sorted."""
    by_path = lesson_skills(config)
    lessons = [lesson for s in plan.stations if s.kind == "online" for lesson in s.lessons]
    return sorted({by_path[lesson] for lesson in lessons if lesson in by_path})


def pick_skill(config: EdgeConfig, plan: Plan | None) -> str:
    """The focus skill when the teacher named none: the one skill of the online station's lessons."""
    if plan is None:
        raise GroupingError("give --skill (there is no plan whose online lessons name a skill)")
    skills = focus_skills(config, plan)
    if not skills:
        raise GroupingError(f"give --skill (the lessons of plan {plan.name!r}'s online station map to no skill "
                            "in mastery.manifests)")
    if len(skills) > 1:
        raise GroupingError(f"give --skill: the online lessons of plan {plan.name!r} cover {', '.join(skills)}")
    return skills[0]


def load_current_plan(config: EdgeConfig, name: str | None) -> Plan | None:
    """The saved plan `name`, else the plan in the rotation state (running or last run), else None."""
    if name is not None:
        try:
            return PlanStore(config.plans_dir).get(name)
        except PlanError as e:
            raise GroupingError(str(e)) from None
    try:
        state = JsonStateFile(config.state_dir / "rotation.json").load()
    except StateError:
        return None
    if not state or "plan" not in state:
        return None
    try:
        return parse_plan(state["plan"], "<rotation state>")
    except PlanError:
        return None


def class_students(config: EdgeConfig, class_id: str | None, plan: Plan | None) -> list[str] | None:
    """The students of a roster class: `class_id`, else the only class, else the class sharing the most
    students with the plan's groups. None when no roster was imported (the caller then uses evidence + plan)."""
    try:
        roster = load_roster(config)
    except (OSError, ValueError, RosterError) as e:
        raise GroupingError(f"cannot read the imported roster: {e}") from None
    if roster is None:
        if class_id is not None:
            raise GroupingError("--class needs an imported roster (edge sync roster)")
        return None
    return pick_class(roster, class_id, plan)


def pick_class(roster: Roster, class_id: str | None, plan: Plan | None) -> list[str]:
    """See class_students."""
    if class_id is not None:
        if class_id not in roster.classes:
            raise GroupingError(f"class {class_id!r} is not in the roster")
        return roster.students_of(class_id)
    ids = sorted(roster.classes)
    if not ids:
        raise GroupingError("the imported roster has no classes")
    if len(ids) == 1:
        return roster.students_of(ids[0])
    members = set(plan_membership(plan))
    overlap = sorted(((len(members & set(roster.students_of(c))), c) for c in ids), reverse=True)
    if overlap[0][0] > 0 and overlap[0][0] > overlap[1][0]:
        return roster.students_of(overlap[0][1])
    raise GroupingError(f"the roster has {len(ids)} classes; pick one with --class ({', '.join(ids[:10])})")


def class_from_sources(roster_students: Sequence[str] | None, seen: frozenset[str], plan: Plan | None) -> list[str]:
    """The class: the roster's, else the students seen in evidence plus the plan's group members."""
    if roster_students is not None:
        return sorted(roster_students)
    return sorted(seen | set(plan_membership(plan)))

