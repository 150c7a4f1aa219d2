"""Pure-Python twin of `_bkt_c.pyx`: the Bayesian-knowledge-tracing forward update, readable and exact.

Same signature and semantics as the compiled kernel; it is the test oracle and the fallback when the
extension did not build. The state keeps P(not known) and P(known) side by side, each updated with its own
formula: with forget = 0 a long run of correct answers leaves P(known) a hair under 1.0 while P(not known)
keeps its relative precision, so a later wrong answer still counts (keeping only P(known) rounds to 1.0).
"""

from __future__ import annotations

from typing import Any

# Columns of the per-skill parameter array (shape (n_skills, 5)).
PRIOR, LEARN, FORGET, GUESS, SLIP = 0, 1, 2, 3, 4
N_PARAMS = 5


def _view(name: str, obj: Any, fmt: str, ndim: int) -> Any:
    """A C-contiguous buffer view of `obj` with item format `fmt` (the checks Cython's memoryviews make)."""
    if obj is None:
        raise TypeError(f"{name} must be a buffer, not None")
    view = memoryview(obj)
    if view.format != fmt or view.ndim != ndim:
        raise ValueError(f"{name}: buffer dtype/ndim mismatch (want format {fmt!r}, {ndim}-D)")
    if not view.c_contiguous:
        raise ValueError(f"{name}: buffer is not C contiguous")
    return view


def update(state: Any, params: Any, students: Any, skills: Any, correct: Any, out: Any = None) -> None:
    """Apply a batch of responses in order, in place.

    state    float64 (n_students, n_skills, 2): [.., 0] = P(not known), [.., 1] = P(known) before the next
             opportunity (start from `1 - prior`, `prior`).
    params   float64 (n_skills, 5): prior, learn, forget, guess, slip per skill (prior is not used here).
    students, skills  int32 (n,): indices into state; correct uint8 (n,): nonzero = correct.
    out      float64 (n, 2) or None: P(correct) predicted before each response, and P(known) after it and
             the learn/forget transition (the next opportunity's prior).
    Indices and shapes are checked before anything changes: a bad batch raises and leaves state untouched.
    """
    st = _view("state", state, "d", 3)
    pa = _view("params", params, "d", 2)
    su = _view("students", students, "i", 1)
    sk = _view("skills", skills, "i", 1)
    co = _view("correct", correct, "B", 1)
    n = su.shape[0]
    n_students, n_skills, two = st.shape
    if two != 2:
        raise ValueError("state must have shape (n_students, n_skills, 2)")
    if pa.shape != (n_skills, N_PARAMS):
        raise ValueError("params must have shape (n_skills, 5) matching state")
    if sk.shape[0] != n or co.shape[0] != n:
        raise ValueError("students, skills and correct must have the same length")
    ov = None
    if out is not None:
        ov = _view("out", out, "d", 2)
        if ov.shape != (n, 2):
            raise ValueError("out must have shape (n, 2)")
    for i in range(n):
        if not 0 <= su[i] < n_students:
            raise IndexError(f"students[{i}] = {su[i]} out of range 0..{n_students - 1}")
        if not 0 <= sk[i] < n_skills:
            raise IndexError(f"skills[{i}] = {sk[i]} out of range 0..{n_skills - 1}")

    for i in range(n):
        s, k = su[i], sk[i]
        learn, forget = pa[k, LEARN], pa[k, FORGET]
        guess, slip = pa[k, GUESS], pa[k, SLIP]
        u, p = st[s, k, 0], st[s, k, 1]
        # Joint probabilities of (state, observed response), then normalise: P(state | response).
        if co[i]:
            ju, jp = u * guess, p * (1.0 - slip)
        else:
            ju, jp = u * (1.0 - guess), p * slip
        p_correct = p * (1.0 - slip) + u * guess
        total = ju + jp
        post_u, post_p = ju / total, jp / total
        # Transition to the next opportunity: learn moves unknown -> known, forget known -> unknown.
        next_u = post_u * (1.0 - learn) + post_p * forget
        next_p = post_u * learn + post_p * (1.0 - forget)
        st[s, k, 0] = next_u
        st[s, k, 1] = next_p
        if ov is not None:
            ov[i, 0] = p_correct
            ov[i, 1] = next_p
