# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled Bayesian-knowledge-tracing forward update; same signature and semantics as `_bkt_py.py`.

Typed memoryviews and a `nogil` loop: indices are checked in one pass first (so a bad batch leaves the
state untouched), then the batch is applied in order. The state keeps P(not known) and P(known) side by
side so long runs of correct answers stay exact (see the twin's docstring).
"""

cdef enum:
    C_PRIOR = 0
    C_LEARN = 1
    C_FORGET = 2
    C_GUESS = 3
    C_SLIP = 4
    C_N_PARAMS = 5

# Columns of the per-skill parameter array (shape (n_skills, 5)); the same names as the twin's.
PRIOR, LEARN, FORGET, GUESS, SLIP = C_PRIOR, C_LEARN, C_FORGET, C_GUESS, C_SLIP
N_PARAMS = C_N_PARAMS


def update(double[:, :, ::1] state not None, double[:, ::1] params not None,
           int[::1] students not None, int[::1] skills not None, unsigned char[::1] correct not None,
           double[:, ::1] out=None):
    """Apply a batch of responses in order, in place (see `_bkt_py.update` for the arrays)."""
    cdef Py_ssize_t n = students.shape[0]
    cdef Py_ssize_t n_students = state.shape[0]
    cdef Py_ssize_t n_skills = state.shape[1]
    cdef Py_ssize_t i, bad = -1
    cdef int s, k, bad_student = 0
    cdef double u, p, ju, jp, total, post_u, post_p, learn, forget, guess, slip, p_correct, next_p
    cdef bint want_out = out is not None
    if state.shape[2] != 2:
        raise ValueError("state must have shape (n_students, n_skills, 2)")
    if params.shape[0] != n_skills or params.shape[1] != C_N_PARAMS:
        raise ValueError("params must have shape (n_skills, 5) matching state")
    if skills.shape[0] != n or correct.shape[0] != n:
        raise ValueError("students, skills and correct must have the same length")
    if want_out and (out.shape[0] != n or out.shape[1] != 2):
        raise ValueError("out must have shape (n, 2)")
    with nogil:
        for i in range(n):
            if students[i] < 0 or students[i] >= n_students:
                bad = i
                bad_student = 1
                break
            if skills[i] < 0 or skills[i] >= n_skills:
                bad = i
                break
    if bad >= 0:
        if bad_student:
            raise IndexError(f"students[{bad}] = {students[bad]} out of range 0..{n_students - 1}")
        raise IndexError(f"skills[{bad}] = {skills[bad]} out of range 0..{n_skills - 1}")

    with nogil:
        for i in range(n):
            s = students[i]
            k = skills[i]
            learn = params[k, C_LEARN]
            forget = params[k, C_FORGET]
            guess = params[k, C_GUESS]
            slip = params[k, C_SLIP]
            u = state[s, k, 0]
            p = state[s, k, 1]
            if correct[i]:
                ju = u * guess
                jp = p * (1.0 - slip)
            else:
                ju = u * (1.0 - guess)
                jp = p * slip
            p_correct = p * (1.0 - slip) + u * guess
            total = ju + jp
            post_u = ju / total
            post_p = jp / total
            next_p = post_u * learn + post_p * (1.0 - forget)
            state[s, k, 0] = post_u * (1.0 - learn) + post_p * forget
            state[s, k, 1] = next_p
            if want_out:
                out[i, 0] = p_correct
                out[i, 1] = next_p
