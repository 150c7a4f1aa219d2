"""BKT kernel benchmark: compiled kernel vs its pure twin vs pyBKT on 1M seeded synthetic events.

1,000 students x 50 skills x 20 responses, BKT-generated with per-skill parameters, interleaved at random
(each (student, skill) keeps its own order). The pure twin and pyBKT run on a subset and are extrapolated
to events/s; pyBKT is driven through `pyBKT.fit.predict_onestep.run` (the forward pass Model.predict uses),
one call per skill with fixed parameters. Accuracy: max |difference| against pyBKT on that subset.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_native import _bkt_py, bkt

SEED = 20240611
N_STUDENTS, N_SKILLS, PER_CELL = 1_000, 50, 20
N_EVENTS = N_STUDENTS * N_SKILLS * PER_CELL
BATCH = 100
TWIN_EVENTS = 100_000
PYBKT_STUDENTS = 40  # x 50 skills x 20 = 40,000 events


def make_data() -> tuple[Any, Any, Any, Any, Any]:
    """(params, students, skills, correct, step) for N_EVENTS events, seeded."""
    rng = np.random.default_rng(SEED)
    params = np.array([
        bkt.param_row(rng.uniform(0.05, 0.9), rng.uniform(0.02, 0.4), rng.uniform(0.0, 0.1),
                      rng.uniform(0.05, 0.35), rng.uniform(0.05, 0.3))
        for _ in range(N_SKILLS)
    ])
    n_cells = N_STUDENTS * N_SKILLS
    cell_skill = np.arange(n_cells) % N_SKILLS
    p = params[cell_skill]
    known = rng.random(n_cells) < p[:, bkt.PRIOR]
    responses = np.empty((n_cells, PER_CELL), dtype=np.uint8)
    for t in range(PER_CELL):  # the BKT generative model, vectorised over cells
        chance = np.where(known, 1.0 - p[:, bkt.SLIP], p[:, bkt.GUESS])
        responses[:, t] = rng.random(n_cells) < chance
        draw = rng.random(n_cells)
        known = np.where(known, draw >= p[:, bkt.FORGET], draw < p[:, bkt.LEARN])
    cell = np.repeat(np.arange(n_cells), PER_CELL)[rng.permutation(N_EVENTS)]
    step = np.empty(N_EVENTS, dtype=np.int64)  # the j-th appearance of a cell is its j-th response
    step[np.argsort(cell, kind="stable")] = np.tile(np.arange(PER_CELL), n_cells)
    students = (cell // N_SKILLS).astype(np.int32)
    skills = (cell % N_SKILLS).astype(np.int32)
    correct = responses[cell, step]
    return params, students, skills, np.ascontiguousarray(correct), step


def best_of(n: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run_pybkt(params: Any, students: Any, skills: Any, correct: Any, step: Any) -> tuple[float, int, Any]:
    """pyBKT on the first PYBKT_STUDENTS students: seconds, events, {(student, skill, step): (p_c, p_next)}."""
    from pyBKT.fit import predict_onestep

    preds: dict[tuple[int, int, int], tuple[float, float]] = {}
    pick = students < PYBKT_STUDENTS
    seq = np.zeros((PYBKT_STUDENTS, N_SKILLS, PER_CELL), dtype=np.int32)
    seq[students[pick], skills[pick], step[pick]] = correct[pick]
    elapsed = 0.0
    for k in range(N_SKILLS):
        prior, learn, forget, guess, slip = params[k]
        big_t = PYBKT_STUDENTS * PER_CELL
        data = {"data": (seq[:, k, :].reshape(1, big_t) + 1).astype(np.int32),
                "starts": np.arange(PYBKT_STUDENTS) * PER_CELL + 1,
                "lengths": np.full(PYBKT_STUDENTS, PER_CELL),
                "resources": np.ones(big_t, dtype=np.int64)}
        model = {"prior": np.float64(prior), "learns": np.array([learn]), "forgets": np.array([forget]),
                 "guesses": np.array([guess]), "slips": np.array([slip])}
        t0 = time.perf_counter()
        p_correct, states = predict_onestep.run(model, data, parallel=False)
        elapsed += time.perf_counter() - t0
        for s in range(PYBKT_STUDENTS):
            for t in range(PER_CELL):
                i = s * PER_CELL + t
                nxt = states[1][i + 1] if t + 1 < PER_CELL else np.nan
                preds[(s, k, t)] = (p_correct[i], nxt)
    return elapsed, int(pick.sum()), preds


def main() -> None:
    t_start = time.perf_counter()
    params, students, skills, correct, step = make_data()
    print(f"BKT benchmark: {N_EVENTS:,} events, {N_STUDENTS:,} students x {N_SKILLS} skills, seed {SEED}")
    print(f"kernel selected by edge_native.bkt: {bkt.IMPLEMENTATION}")
    out = np.empty((N_EVENTS, 2))
    rows: list[tuple[str, int, float]] = []

    if bkt.IMPLEMENTATION == "compiled":
        from edge_native import _bkt_c  # type: ignore[attr-defined]

        compiled: Callable[..., None] = _bkt_c.update
        state = bkt.init_state(params, N_STUDENTS)

        def one_call() -> None:
            state[...] = bkt.init_state(params, N_STUDENTS)
            compiled(state, params, students, skills, correct, out)

        # reset cost measured separately and subtracted: we time the kernel, not the reset
        reset = best_of(5, lambda: state.__setitem__(Ellipsis, bkt.init_state(params, N_STUDENTS)))
        rows.append(("compiled, one call", N_EVENTS, max(best_of(5, one_call) - reset, 1e-9)))
        batches = [(students[i:i + BATCH], skills[i:i + BATCH], correct[i:i + BATCH], out[i:i + BATCH])
                   for i in range(0, N_EVENTS, BATCH)]

        def batched() -> None:
            state[...] = bkt.init_state(params, N_STUDENTS)
            for s, k, c, o in batches:
                compiled(state, params, s, k, c, o)

        rows.append((f"compiled, batches of {BATCH}", N_EVENTS, max(best_of(5, batched) - reset, 1e-9)))
    else:
        print("compiled kernel not built: only the twin and pyBKT are measured (run `make native`)")

    n_twin = TWIN_EVENTS
    twin_state = bkt.init_state(params, N_STUDENTS)
    twin_out = np.empty((n_twin, 2))
    t0 = time.perf_counter()
    _bkt_py.update(twin_state, params, students[:n_twin], skills[:n_twin], correct[:n_twin], twin_out)
    rows.append((f"pure twin ({n_twin:,} events, extrapolated)", n_twin, time.perf_counter() - t0))
    if bkt.IMPLEMENTATION != "compiled":
        full = bkt.init_state(params, N_STUDENTS)
        bkt.update(full, params, students, skills, correct, out)
    twin_diff = float(np.max(np.abs(twin_out - out[:n_twin])))

    t_py, n_py, preds = run_pybkt(params, students, skills, correct, step)
    rows.append((f"pyBKT predict_onestep ({n_py:,} events)", n_py, t_py))

    worst = 0.0
    checked = 0
    for i in np.flatnonzero(students < PYBKT_STUDENTS):
        p_c, p_next = preds[(int(students[i]), int(skills[i]), int(step[i]))]
        worst = max(worst, abs(out[i, 0] - p_c))
        if not np.isnan(p_next):
            worst = max(worst, abs(out[i, 1] - p_next))
        checked += 1

    rate_py = n_py / t_py
    print()
    print(f"{'implementation':<42} {'events':>10} {'seconds':>9} {'events/s':>14} {'x pyBKT':>10}")
    for name, n, secs in rows:
        rate = n / secs
        print(f"{name:<42} {n:>10,} {secs:>9.4f} {rate:>14,.0f} {rate / rate_py:>10,.1f}")
    rates = {name: n / secs for name, n, secs in rows}
    twin_rate = rates[next(r for r in rates if r.startswith("pure twin"))]
    print()
    for name, rate in rates.items():
        if name.startswith("compiled"):
            print(f"{name}: {rate / twin_rate:,.0f}x the pure twin")
    print(f"max |difference| vs pyBKT ({checked:,} events, p_correct and next P(known)): {worst:.3e}")
    print(f"max |difference| twin vs selected kernel ({n_twin:,} events): {twin_diff:.3e}")
    print(f"goals: >= 50M events/s in batches of {BATCH}, >= 1,000x pyBKT, max difference <= 1e-9")
    print(f"total bench time {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
