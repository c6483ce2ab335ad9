"""The compiled part of gpu-media: ``_gpu_media_native`` (cpu_fallback/native.cpp), optional.

Everything else is in pyproject.toml. The extension speeds up the CPU backend (normalize,
the PNG filter); where no C++ compiler is found the build goes on without it (``optional``)
and the CPU backend runs its NumPy code, with the same results (cpu_fallback/native.py).
"""

import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """Compiler flags by compiler family: no FMA contraction (docs/SPEC.md 2's float rounding)."""

    def build_extensions(self):
        """Set each extension's flags for the compiler found, then build as setuptools does."""
        unix = self.compiler.compiler_type != "msvc"
        for ext in self.extensions:
            ext.extra_compile_args = (["-O3", "-std=c++17", "-ffp-contract=off", "-fno-math-errno"] if unix
                                      else ["/O2", "/std:c++17", "/fp:precise"])
        super().build_extensions()


setup(
    ext_modules=[Extension("_gpu_media_native", sources=["cpu_fallback/native.cpp"],
                           include_dirs=["gpu_media/cuda/src"], depends=sorted(glob.glob("gpu_media/cuda/src/*.cuh")),
                           language="c++", optional=True)],
    cmdclass={"build_ext": BuildExt},
)
