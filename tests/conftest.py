"""One contract, two backends: every semantic test takes the ``device`` fixture.

"gpu" runs where CuPy and a CUDA device are usable and skips cleanly elsewhere.
"""

import os

import pytest

import gpu_media


@pytest.fixture(autouse=True)
def _no_device_env(monkeypatch):
    monkeypatch.delenv("GPU_MEDIA_DEVICE", raising=False)


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "gpu" and not gpu_media.gpu_available():
        pytest.skip("no usable GPU backend (CuPy + CUDA device) on this machine")
    return request.param


@pytest.fixture
def reference_dir():
    """What wandb 0.31 writes (tests/data/wandb-0.31/, made by make_reference.py there)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "wandb-0.31")


@pytest.fixture
def bounded():
    """The test fails after ``dataset_helpers.TEST_SECONDS`` instead of hanging (Ray and S3 tests)."""
    from dataset_helpers import time_limit

    with time_limit():
        yield


@pytest.fixture(scope="module")
def ray():
    """A local 2-CPU Ray for the module (``dataset_helpers.local_ray``), shut down after its last test."""
    from dataset_helpers import local_ray

    mod = local_ray()
    yield mod
    mod.shutdown()
