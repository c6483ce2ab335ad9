"""Root pytest configuration: what ``python -m pytest`` collects besides ``tests/``.

``pyproject.toml`` adds ``gpu_media/`` and ``cpu_fallback/`` to the test paths with
``--doctest-modules``, so every ``>>>`` example in a docstring runs as a test. Modules
that import CuPy at import time are left out where CuPy is not installed (their
examples, if any, run on a GPU machine).
"""

import importlib.util

#: Modules that import CuPy when imported (``import gpu_media`` never imports them).
CUPY_MODULES = ["gpu_media/cuda/backend.py"]

collect_ignore = [] if importlib.util.find_spec("cupy") is not None else list(CUPY_MODULES)
