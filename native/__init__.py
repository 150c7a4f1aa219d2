"""Compiled kernels (`_x_c.pyx`), each beside its pure-Python twin (`_x_py.py`) that serves as test oracle."""
