"""pytest-benchmark benchmarks of each stage on each available backend.

    pip install ".[bench]" && python -m pytest benchmarks -q

GPU cases skip where CuPy or a CUDA device is missing (same rule as tests/).
"""

import os
import sys

import pytest

import gpu_media

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import photo_batch, photo_masks  # noqa: E402


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "gpu" and not gpu_media.gpu_available():
        pytest.skip("no usable GPU backend (CuPy + CUDA device) on this machine")
    return request.param


@pytest.fixture(scope="session")
def photos():
    """64 different pictures from the demo photographs (``compare.photo_batch``), 256x256 RGB float32 in [0, 1]."""
    return photo_batch(64, 256)


@pytest.fixture(scope="session")
def photos_u8(photos):
    return gpu_media.normalize(photos, device="cpu")


@pytest.fixture(scope="session")
def masks(photos):
    return photo_masks(photos)
