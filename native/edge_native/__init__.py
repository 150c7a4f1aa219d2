"""Compiled kernels (`_x_c.pyx`), each beside its pure-Python twin (`_x_py.py`) that serves as test oracle.

Installed as `edge_native` (not a generic `native`), and importing nothing of the app: the kernels sit below
every layer. A selector module per kernel (`bkt.py`) picks the compiled one or falls back to the twin with a
NativeFallbackWarning (never silently).
"""


class NativeFallbackWarning(UserWarning):
    """A compiled kernel is missing and its pure-Python twin is used instead."""
