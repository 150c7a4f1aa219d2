"""Run inside the image's root (arm64, under qemu): the compiled BKT kernel must equal the pure twin bit for bit.

Seeded random batches (several parameter sets, state carried across calls); prints one JSON line.
"""

import json
import platform
import sys

import edge_native.bkt as bkt
import numpy as np
from edge_native import _bkt_c, _bkt_py


def main(cases: int) -> None:
    rng = np.random.default_rng(20261129)
    compared = 0
    for _ in range(cases):
        n_students, n_skills, n = int(rng.integers(1, 8)), int(rng.integers(1, 6)), int(rng.integers(0, 400))
        params = np.array([bkt.param_row(rng.uniform(0.01, 0.99), rng.uniform(0.0, 0.5),
                                                rng.uniform(0.0, 0.2), rng.uniform(0.01, 0.49),
                                                rng.uniform(0.01, 0.49)) for _ in range(n_skills)])
        s = rng.integers(0, n_students, n, dtype=np.int32)
        k = rng.integers(0, n_skills, n, dtype=np.int32)
        c = rng.integers(0, 2, n, dtype=np.uint8)
        results = []
        for fn in (_bkt_py.update, _bkt_c.update):
            state = bkt.init_state(params, n_students)
            out = np.full((n, 2), np.nan)
            half = n // 2
            fn(state, params, s[:half], k[:half], c[:half], out[:half])
            fn(state, params, s[half:], k[half:], c[half:], out[half:])
            results.append(state.tobytes() + out.tobytes())
        if results[0] != results[1]:
            print(json.dumps({"equal": False, "case": compared}))
            sys.exit(1)
        compared += n
    print(json.dumps({"equal": True, "machine": platform.machine(), "implementation": bkt.IMPLEMENTATION,
                      "kernel_file": _bkt_c.__file__, "responses": compared, "cases": cases}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
