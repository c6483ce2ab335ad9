"""gpu_media.warmup: the first call's one-time work, done ahead, on either backend."""

from __future__ import annotations

import sys

import pytest

import cpu_fallback  # noqa: F401 - loads cpu_fallback.encode, whose pool is checked
import gpu_media


def _pool():
    return sys.modules["cpu_fallback.encode"]._pool


def test_warmup_cpu_starts_the_encode_pool(monkeypatch):
    monkeypatch.setattr(sys.modules["cpu_fallback.encode"], "_pool", None)
    out = gpu_media.warmup(device="cpu")
    assert out["device"] == "cpu" and out["seconds"] >= 0
    assert _pool() is not None  # the thread pool the first batch would have started
    again = gpu_media.warmup(device="cpu")
    assert again["device"] == "cpu"


def test_warmup_auto_follows_the_device_rule(monkeypatch):
    monkeypatch.setenv("GPU_MEDIA_DEVICE", "cpu")
    assert gpu_media.warmup()["device"] == "cpu"
    monkeypatch.delenv("GPU_MEDIA_DEVICE")
    assert gpu_media.warmup()["device"] == ("gpu" if gpu_media.gpu_available() else "cpu")


def test_warmup_bad_device():
    with pytest.raises(ValueError, match="device must be one of"):
        gpu_media.warmup(device="tpu")


@pytest.mark.skipif(gpu_media.gpu_available(), reason="this machine has a usable GPU")
def test_warmup_gpu_without_a_gpu_raises():
    with pytest.raises(gpu_media.DeviceError):
        gpu_media.warmup(device="gpu")


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_media.gpu_available(), reason="no usable GPU backend (CuPy + CUDA device)")
def test_warmup_gpu_loads_the_kernels_and_encoders():
    import cupy

    be = gpu_media.backend.get_backend("gpu")
    out = gpu_media.warmup(device="gpu")
    assert out["device"] == "gpu"
    assert cupy.cuda.Device().id in be._modules
    assert "module" in be._png_state and "module" in be._jpeg_state
