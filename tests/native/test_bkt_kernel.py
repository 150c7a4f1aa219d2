"""The BKT kernel: compiled and pure twin agree with each other, with pyBKT and with exact arithmetic."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from collections.abc import Callable
from decimal import Decimal, getcontext
from pathlib import Path
from typing import Any

import edge_native
import edge_native.bkt
import numpy as np
import pytest
from edge_native import NativeFallbackWarning, _bkt_py
from edge_native.bkt import init_state, param_row
from hypothesis import given, settings
from hypothesis import strategies as st

NO_EXT = os.environ.get("EDGE_NO_EXTENSIONS") == "1"


def _compiled() -> Callable[..., None]:
    from edge_native import _bkt_c  # type: ignore[attr-defined]

    fn: Callable[..., None] = _bkt_c.update
    return fn


IMPLS: dict[str, Callable[[], Callable[..., None]]] = {
    "python": lambda: _bkt_py.update, "compiled": _compiled,
}


@pytest.fixture(params=sorted(IMPLS))
def update(request: pytest.FixtureRequest) -> Callable[..., None]:
    if request.param == "compiled" and NO_EXT:
        pytest.skip("EDGE_NO_EXTENSIONS=1")
    return IMPLS[request.param]()


def test_compiled_kernel_was_built() -> None:
    """CI must fail when the extension did not build (rather than quietly testing the twin twice)."""
    if NO_EXT:
        assert edge_native.bkt.IMPLEMENTATION == "python"
        return
    _compiled()
    assert edge_native.bkt.IMPLEMENTATION == "compiled"


def _load_selector_fresh() -> Any:
    path = Path(edge_native.bkt.__file__)
    spec = importlib.util.spec_from_file_location("native_bkt_fresh_copy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fallback_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_NO_EXTENSIONS", raising=False)
    monkeypatch.setitem(sys.modules, "edge_native._bkt_c", None)  # makes the import fail
    monkeypatch.delattr(edge_native, "_bkt_c", raising=False)
    with pytest.warns(NativeFallbackWarning, match="make native"):
        module = _load_selector_fresh()
    assert module.IMPLEMENTATION == "python"
    assert module.update is _bkt_py.update


def test_env_forces_twin_without_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_NO_EXTENSIONS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = _load_selector_fresh()
    assert module.IMPLEMENTATION == "python"


def _batch(students: list[int], skills: list[int], correct: list[int]) -> tuple[Any, Any, Any]:
    return (np.array(students, dtype=np.int32), np.array(skills, dtype=np.int32),
            np.array(correct, dtype=np.uint8))


def test_one_step_matches_the_formulas(update: Callable[..., None]) -> None:
    prior, learn, forget, guess, slip = 0.3, 0.1, 0.05, 0.2, 0.1
    params = np.array([param_row(prior, learn, forget, guess, slip)])
    for correct in (0, 1):
        state = init_state(params, 1)
        out = np.zeros((1, 2))
        update(state, params, *_batch([0], [0], [correct]), out)
        p = prior
        p_correct = p * (1 - slip) + (1 - p) * guess
        if correct:
            post = p * (1 - slip) / (p * (1 - slip) + (1 - p) * guess)
        else:
            post = p * slip / (p * slip + (1 - p) * (1 - guess))
        nxt = post * (1 - forget) + (1 - post) * learn
        assert out[0] == pytest.approx([p_correct, nxt], abs=1e-15)
        assert state[0, 0] == pytest.approx([1 - nxt, nxt], abs=1e-15)


def test_out_is_optional_and_empty_batch_is_fine(update: Callable[..., None]) -> None:
    params = np.array([param_row(0.3, 0.1, 0.0, 0.2, 0.1)])
    state = init_state(params, 2)
    update(state, params, *_batch([1], [0], [1]))
    assert state[1, 0, 1] > 0.3 and state[0, 0, 1] == 0.3
    update(state, params, *_batch([], [], []), np.zeros((0, 2)))


@pytest.mark.parametrize(
    ("students", "skills", "exc", "match"),
    [([0, 2], [0, 0], IndexError, r"students\[1\] = 2"), ([0, 0], [0, -1], IndexError, r"skills\[1\] = -1")],
)
def test_bad_index_raises_and_changes_nothing(
    update: Callable[..., None], students: list[int], skills: list[int], exc: type[Exception], match: str
) -> None:
    params = np.array([param_row(0.3, 0.1, 0.0, 0.2, 0.1)])
    state = init_state(params, 2)
    before = state.copy()
    with pytest.raises(exc, match=match):
        update(state, params, *_batch(students, skills, [1, 1]))
    assert (state == before).all()


def test_shape_and_dtype_errors(update: Callable[..., None]) -> None:
    params = np.array([param_row(0.3, 0.1, 0.0, 0.2, 0.1)])
    state = init_state(params, 2)
    s, k, c = _batch([0, 1], [0, 0], [1, 0])
    with pytest.raises(ValueError, match="same length"):
        update(state, params, s, k[:1], c)
    with pytest.raises(ValueError, match="out must have shape"):
        update(state, params, s, k, c, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="params must have shape"):
        update(state, np.zeros((2, 5)), s, k, c)
    with pytest.raises(ValueError):
        update(state, params, s.astype(np.int64), k, c)
    with pytest.raises(ValueError):
        update(state[:, :, :1].copy(), params, s, k, c)


def _random_params(rng: np.random.Generator, n_skills: int) -> Any:
    return np.array([
        param_row(rng.uniform(0.01, 0.99), rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.2),
                  rng.uniform(0.01, 0.49), rng.uniform(0.01, 0.49))
        for _ in range(n_skills)
    ])


@settings(max_examples=60, deadline=None, database=None)  # no .hypothesis/ outside tmp_path
@given(
    seed=st.integers(0, 2**32 - 1),
    n_students=st.integers(1, 6),
    n_skills=st.integers(1, 5),
    n=st.integers(0, 300),
)
def test_compiled_equals_twin_on_random_batches(seed: int, n_students: int, n_skills: int, n: int) -> None:
    if NO_EXT:
        pytest.skip("EDGE_NO_EXTENSIONS=1")
    rng = np.random.default_rng(seed)
    params = _random_params(rng, n_skills)
    s = rng.integers(0, n_students, n, dtype=np.int32)
    k = rng.integers(0, n_skills, n, dtype=np.int32)
    c = rng.integers(0, 2, n, dtype=np.uint8)
    results = []
    for fn in (_bkt_py.update, _compiled()):
        state = init_state(params, n_students)
        out = np.full((n, 2), np.nan)
        # two calls: the state carries over between batches
        half = n // 2
        fn(state, params, s[:half], k[:half], c[:half], out[:half])
        fn(state, params, s[half:], k[half:], c[half:], out[half:])
        results.append((state, out))
    (st_py, out_py), (st_c, out_c) = results
    # identical on x86-64; a compiler that contracts to FMA (aarch64) may differ in the last bit
    assert np.max(np.abs(out_py - out_c), initial=0.0) <= 1e-13
    assert np.max(np.abs(st_py - st_c)) <= 1e-13


def _synthetic(seed: int, n_students: int, n_skills: int, lengths: tuple[int, int]) -> tuple[Any, ...]:
    """Seeded BKT-generated responses: per (student, skill) sequence lengths drawn from `lengths`."""
    rng = np.random.default_rng(seed)
    params = _random_params(rng, n_skills)
    seqs: dict[tuple[int, int], Any] = {}
    for s in range(n_students):
        for k in range(n_skills):
            prior, learn, forget, guess, slip = params[k]
            t_len = int(rng.integers(*lengths))
            known = rng.random() < prior
            resp = np.empty(t_len, dtype=np.uint8)
            for t in range(t_len):
                resp[t] = rng.random() < ((1 - slip) if known else guess)
                known = (rng.random() >= forget) if known else (rng.random() < learn)
            seqs[(s, k)] = resp
    return params, seqs, rng


def test_equals_pybkt_predict_onestep(update: Callable[..., None]) -> None:
    pytest.importorskip("sklearn")
    predict_onestep = pytest.importorskip("pyBKT.fit.predict_onestep")
    n_students, n_skills = 30, 6
    params, seqs, rng = _synthetic(20240611, n_students, n_skills, (1, 400))

    # Ours: every event in one batch, cells interleaved at random but each cell in its own order.
    owners = np.concatenate([np.full(len(r), i) for i, r in enumerate(seqs.values())])
    rng.shuffle(owners)
    cursor = dict.fromkeys(range(len(seqs)), 0)
    keys = list(seqs)
    s_arr, k_arr, c_arr, pos = [], [], [], []
    for o in owners:
        s, k = keys[o]
        t = cursor[o]
        cursor[o] += 1
        s_arr.append(s)
        k_arr.append(k)
        c_arr.append(seqs[(s, k)][t])
        pos.append((s, k, t))
    state = init_state(params, n_students)
    out = np.zeros((len(s_arr), 2))
    update(state, params, *_batch(s_arr, k_arr, c_arr), out)
    ours = {p: out[i] for i, p in enumerate(pos)}

    worst = 0.0
    total = 0
    for k in range(n_skills):
        prior, learn, forget, guess, slip = params[k]
        resp = [seqs[(s, k)] for s in range(n_students)]
        lengths = np.array([len(r) for r in resp])
        starts = np.concatenate([[1], 1 + np.cumsum(lengths)[:-1]])
        big_t = int(lengths.sum())
        data = {"data": (np.concatenate(resp).astype(np.int32) + 1).reshape(1, big_t), "starts": starts,
                "lengths": lengths, "resources": np.ones(big_t, dtype=np.int64)}
        model = {"prior": np.float64(prior), "learns": np.array([learn]), "forgets": np.array([forget]),
                 "guesses": np.array([guess]), "slips": np.array([slip])}
        p_correct, states = predict_onestep.run(model, data, parallel=False)
        for s in range(n_students):
            base = int(starts[s]) - 1
            for t in range(int(lengths[s])):
                mine = ours[(s, k, t)]
                worst = max(worst, abs(mine[0] - p_correct[base + t]))
                if t + 1 < lengths[s]:  # pyBKT's states are BEFORE each response: ours after = its next
                    worst = max(worst, abs(mine[1] - states[1][base + t + 1]))
                total += 1
            assert states[1][base] == pytest.approx(prior, abs=1e-15)
    assert total == len(s_arr) and total > 30_000
    assert worst <= 1e-9


def test_long_correct_run_then_wrong_answers_stays_exact(update: Callable[..., None]) -> None:
    """forget = 0: keeping only P(known) rounds it to 1.0 and ignores later wrong answers (errors ~0.6+)."""
    prior, learn, forget, guess, slip = 0.3, 0.1, 0.0, 0.2, 0.1
    answers = [1] * 100 + [0] * 150
    params = np.array([param_row(prior, learn, forget, guess, slip)])
    state = init_state(params, 1)
    out = np.zeros((len(answers), 2))
    update(state, params, *_batch([0] * len(answers), [0] * len(answers), answers), out)

    getcontext().prec = 60
    one = Decimal(1)
    g, sl, lr = Decimal(str(guess)), Decimal(str(slip)), Decimal(str(learn))
    u, p = one - Decimal(str(prior)), Decimal(str(prior))
    naive = prior
    worst_ours = worst_naive = 0.0
    for i, a in enumerate(answers):
        ju, jp = (u * g, p * (one - sl)) if a else (u * (one - g), p * sl)
        u, p = ju / (ju + jp) * (one - lr), ju / (ju + jp) * lr + jp / (ju + jp)
        post = naive * (1 - slip) / (naive * (1 - slip) + (1 - naive) * guess) if a else \
            naive * slip / (naive * slip + (1 - naive) * (1 - guess))
        naive = post + (1 - post) * learn
        worst_ours = max(worst_ours, abs(out[i, 1] - float(p)))
        worst_naive = max(worst_naive, abs(naive - float(p)))
    assert float(p) < 0.5  # the wrong answers really do bring mastery down
    assert worst_naive > 0.5  # the case is hard: P(known)-only arithmetic gets it badly wrong
    assert worst_ours < 1e-13
