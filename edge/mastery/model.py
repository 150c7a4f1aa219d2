"""In-memory mastery state for every (student, skill), updated with the BKT kernel.

Evidence is applied in (timestamp, id) order per (student, skill). When a batch brings evidence older than
what a cell has already seen (a Chromebook that was offline, a retried upload), that cell is reset to its
prior and replayed from the store, so the state always equals the sorted replay of the stored evidence.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from edge_native import bkt

from edge.params import ParamSet
from edge.xapi import Evidence

# (student, skill) -> that cell's stored evidence as (correct, ts_us, id), in (ts_us, id) order
History = Callable[[str, str], Sequence[tuple[bool, int, str]]]


@dataclass(frozen=True)
class CellView:
    student: str
    skill: str
    p_known: float
    responses: int


class MasteryState:
    """Per-(student, skill) P(known); thread-safe (the store's writer thread updates, handlers read)."""

    def __init__(self, params: ParamSet) -> None:
        self.params = params
        self.students: dict[str, int] = {}
        self.skills: dict[str, int] = {}
        self._lock = threading.Lock()
        self._state = np.zeros((0, 0, 2))
        self._params = np.zeros((0, bkt.N_PARAMS))
        self._counts = np.zeros((0, 0), dtype=np.int64)
        self._last: dict[tuple[int, int], tuple[int, str]] = {}
        self._grow(4, 4)

    def _param_row(self, skill: str | None) -> list[float]:
        sp = self.params.for_skill(skill) if skill is not None else self.params.default
        return bkt.param_row(sp.prior, sp.learn, sp.forget, sp.guess, sp.slip)

    def _grow(self, n_students: int, n_skills: int) -> None:
        """Make room for n_students x n_skills (doubling); new cells start at their skill's prior."""
        cap_s, cap_k = self._counts.shape
        if n_students <= cap_s and n_skills <= cap_k:
            return
        new_s = max(cap_s, 4)
        while new_s < n_students:
            new_s *= 2
        new_k = max(cap_k, 4)
        while new_k < n_skills:
            new_k *= 2
        names = {i: name for name, i in self.skills.items()}
        params = np.array([self._param_row(names.get(k)) for k in range(new_k)], dtype=np.float64)
        state = bkt.init_state(params, new_s)
        state[:cap_s, :cap_k] = self._state
        counts = np.zeros((new_s, new_k), dtype=np.int64)
        counts[:cap_s, :cap_k] = self._counts
        self._state, self._params, self._counts = state, params, counts

    def _index(self, student: str, skill: str) -> tuple[int, int]:
        s = self.students.setdefault(student, len(self.students))
        k = self.skills.get(skill)
        if k is None:
            k = self.skills[skill] = len(self.skills)
            self._grow(len(self.students), len(self.skills))
            self._params[k] = self._param_row(skill)
            self._state[:, k, 0] = 1.0 - self._params[k, bkt.PRIOR]
            self._state[:, k, 1] = self._params[k, bkt.PRIOR]
        self._grow(len(self.students), len(self.skills))
        return s, k

    def apply(self, evidence: Sequence[Evidence], history: History) -> int:
        """Apply newly stored evidence; returns how many cells had to be replayed (late evidence)."""
        ordered = sorted(evidence, key=lambda e: (e.ts_us, e.id))
        with self._lock:
            cells = [self._index(e.student, e.skill) for e in ordered]
            replay: set[tuple[int, int]] = set()
            last = dict(self._last)
            for e, cell in zip(ordered, cells, strict=True):
                key = (e.ts_us, e.id)
                prev = last.get(cell)
                if prev is not None and key < prev:
                    replay.add(cell)
                else:
                    last[cell] = key
            batch = [(e, c) for e, c in zip(ordered, cells, strict=True) if c not in replay]
            if batch:
                s = np.fromiter((c[0] for _, c in batch), np.int32, len(batch))
                k = np.fromiter((c[1] for _, c in batch), np.int32, len(batch))
                ok = np.fromiter((e.correct for e, _ in batch), np.uint8, len(batch))
                bkt.update(self._state, self._params, s, k, ok)
                np.add.at(self._counts, (s, k), 1)
                for e, c in batch:
                    self._last[c] = (e.ts_us, e.id)
            names_s = {i: n for n, i in self.students.items()}
            names_k = {i: n for n, i in self.skills.items()}
            for cell in sorted(replay):
                self._replay_cell(cell, history(names_s[cell[0]], names_k[cell[1]]))
            return len(replay)

    def replay(self, cells: Sequence[tuple[str, str]], history: History) -> None:
        """Recompute these (student, skill) cells from their stored history (e.g. after evidence was voided)."""
        with self._lock:
            for student, skill in cells:
                s, k = self.students.get(student), self.skills.get(skill)
                if s is not None and k is not None:
                    self._replay_cell((s, k), history(student, skill))

    def _replay_cell(self, cell: tuple[int, int], rows: Sequence[tuple[bool, int, str]]) -> None:
        s, k = cell
        prior = self._params[k, bkt.PRIOR]
        self._state[s, k] = (1.0 - prior, prior)
        n = len(rows)
        if n:
            bkt.update(self._state, self._params, np.full(n, s, np.int32), np.full(n, k, np.int32),
                       np.fromiter((r[0] for r in rows), np.uint8, n))
            self._last[cell] = (rows[-1][1], rows[-1][2])
        else:
            self._last.pop(cell, None)
        self._counts[s, k] = n

    def load(self, rows: Sequence[tuple[str, str, bool, int, str]]) -> None:
        """Rebuild from every stored (student, skill, correct, ts_us, id), already in cell/time order."""
        evidence = [Evidence(i, st, sk, c, ts) for st, sk, c, ts, i in rows]
        self.apply(evidence, lambda _s, _k: ())  # sorted input: nothing is late, no history needed

    def _view(self, s: int, k: int, student: str, skill: str) -> CellView:
        return CellView(student, skill, float(self._state[s, k, 1]), int(self._counts[s, k]))

    def by_skill(self, skill: str, also: Iterable[str] = ()) -> list[CellView]:
        """The students with evidence on `skill`, and the students in `also` (the roster's) even without any:
        they sit at the skill's prior. A student who answered only other skills is not listed."""
        with self._lock:
            k = self.skills.get(skill)
            prior = self.params.for_skill(skill).prior
            views = {st: self._view(s, k, st, skill) for st, s in self.students.items()
                     if k is not None and self._counts[s, k] > 0}
            for st in also:
                if st not in views:
                    views[st] = CellView(st, skill, prior, 0)
            return [views[st] for st in sorted(views)]

    def cells(self) -> list[CellView]:
        """Every (student, skill) with at least one response."""
        with self._lock:
            return [self._view(s, k, st, sk) for st, s in self.students.items() for sk, k in self.skills.items()
                    if self._counts[s, k] > 0]

    def by_student(self, student: str) -> list[CellView] | None:
        """The skills `student` has answered, or None for an unknown student."""
        with self._lock:
            s = self.students.get(student)
            if s is None:
                return None
            return [self._view(s, k, student, sk) for sk, k in sorted(self.skills.items())
                    if self._counts[s, k] > 0]


BAND_TOLERANCE = 1e-9  # P(known) is a float: one correct answer from the prior 0.2 gives 0.5999999999999999


def band(p: float, bands: list[float]) -> str:
    """needs_help below bands[0], practising below bands[1], else mastered; a boundary counts as the band above
    it, as the README says, also when floating point lands a hair below it."""
    return ("needs_help" if p + BAND_TOLERANCE < bands[0] else "practising" if p + BAND_TOLERANCE < bands[1]
            else "mastered")
