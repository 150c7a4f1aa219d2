"""Build the compiled kernels in native/edge_native/ (every `_x_c.pyx`); everything else is declared in pyproject.toml.

-ffp-contract=off: no fused multiply-add, so the Pi (arm64, where gcc fuses by default) computes the same
bits as the pure-Python twin.
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

kernels = [
    Extension(f"edge_native.{pyx.stem}", [str(pyx)], extra_compile_args=["-O3", "-ffp-contract=off"])
    for pyx in sorted(Path("native/edge_native").glob("_*_c.pyx"))
]

setup(ext_modules=cythonize(kernels, compiler_directives={"language_level": "3"}) if kernels else [])
