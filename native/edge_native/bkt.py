"""Pick the BKT kernel: the compiled `_bkt_c` when it was built, else its pure twin with a warning.

`EDGE_NO_EXTENSIONS=1` forces the twin (tests and debugging). The fallback is never silent: it warns with
`NativeFallbackWarning` once, at import.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

from edge_native import NativeFallbackWarning, _bkt_py

Update = Callable[..., None]

update: Update
IMPLEMENTATION: str  # "compiled" or "python"

PRIOR, LEARN, FORGET, GUESS, SLIP, N_PARAMS = (
    _bkt_py.PRIOR, _bkt_py.LEARN, _bkt_py.FORGET, _bkt_py.GUESS, _bkt_py.SLIP, _bkt_py.N_PARAMS,
)


def _select() -> tuple[Update, str]:
    if os.environ.get("EDGE_NO_EXTENSIONS") == "1":
        return _bkt_py.update, "python"
    try:
        from edge_native import _bkt_c  # type: ignore[attr-defined]
    except ImportError as e:
        warnings.warn(
            f"compiled BKT kernel edge_native._bkt_c is not available ({e}); using the pure-Python twin, "
            "which is ~100x slower (build it with `make native`)",
            NativeFallbackWarning,
            stacklevel=3,
        )
        return _bkt_py.update, "python"
    fn: Update = _bkt_c.update
    return fn, "compiled"


update, IMPLEMENTATION = _select()


def param_row(prior: float, learn: float, forget: float, guess: float, slip: float) -> list[float]:
    """One row of the (n_skills, 5) parameter array, in column order."""
    row = [0.0] * N_PARAMS
    row[PRIOR], row[LEARN], row[FORGET], row[GUESS], row[SLIP] = prior, learn, forget, guess, slip
    return row


def init_state(params: Any, n_students: int) -> Any:
    """A fresh float64 state (n_students, n_skills, 2) at each skill's prior: [1 - prior, prior]."""
    import numpy as np  # only callers that hold numpy arrays need this helper

    pa = np.asarray(params, dtype=np.float64)
    state = np.empty((n_students, pa.shape[0], 2), dtype=np.float64)
    state[:, :, 0] = 1.0 - pa[:, PRIOR]
    state[:, :, 1] = pa[:, PRIOR]
    return state
