"""Why the GPU is unusable, in one line (issue 17.3), checked with stand-ins for CuPy (no GPU needed).

Each probe of :func:`gpu_media.backend._gpu_unusable_reason` is driven by a fake CuPy
whose runtime answers as a machine would: no CuPy, no driver, a CUDA 12 driver under a
CUDA 13 CuPy (R535, what most clusters run), no device, NVRTC missing. The one line goes
to ``gpu_status()``, to ``device="gpu"``'s DeviceError and to ``gpu-media ... --device gpu``.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import gpu_media as gm
from gpu_media import backend


class FakeRuntimeError(RuntimeError):
    pass


def fake_cupy(*, runtime=13020, driver=13000, count=1, count_error=None, nvrtc_error=None, name=b"Fake H100"):
    def device_count():
        if count_error:
            raise FakeRuntimeError(count_error)
        return count

    def nvrtc_version():
        if nvrtc_error:
            raise FakeRuntimeError(nvrtc_error)
        return (runtime // 1000, 0)

    rt = types.SimpleNamespace(runtimeGetVersion=lambda: runtime, driverGetVersion=lambda: driver,
                               getDeviceCount=device_count, getDeviceProperties=lambda i: {"name": name})
    cuda = types.SimpleNamespace(runtime=rt, nvrtc=types.SimpleNamespace(getVersion=nvrtc_version),
                                 Device=lambda: types.SimpleNamespace(id=0))
    return types.SimpleNamespace(__version__="14.2.0", cuda=cuda)


@pytest.fixture
def machine(monkeypatch):
    """Install a fake CuPy (or an import failure) and a driver release; returns the setter."""
    monkeypatch.setattr(backend, "_gpu_state", {})
    monkeypatch.setattr(backend, "_loaded", {k: v for k, v in backend._loaded.items() if k != "gpu"})

    def set_machine(cupy=None, *, import_error=None, release="535.104.05"):
        def import_cupy():
            if import_error:
                raise import_error
            return cupy

        monkeypatch.setattr(backend, "_import_cupy", import_cupy)
        monkeypatch.setattr(backend, "_driver_release", lambda: release)

    return set_machine


def unusable_line() -> str:
    assert not gm.gpu_available()
    status = gm.gpu_status()
    assert status.startswith("unusable: ") and "\n" not in status, status
    with pytest.raises(gm.DeviceError) as err:
        backend.resolve_device("gpu")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("device='gpu' is unusable: ") and msg.endswith("device='cpu'")
    assert status[len("unusable: "):] == msg[len("device='gpu' is unusable: "):]
    return msg


def test_no_cupy(machine):
    machine(import_error=ModuleNotFoundError("No module named 'cupy'"))
    msg = unusable_line()
    assert "CuPy does not import" in msg and "No module named 'cupy'" in msg
    assert ".[gpu]" in msg and ".[gpu-cu12]" in msg and "R580" in msg


def test_cuda12_driver_under_a_cuda13_cupy(machine):
    """R535 (CUDA 12.2) under cupy-cuda13x: the driver's version, the one needed, and gpu-cu12."""
    machine(fake_cupy(runtime=13020, driver=12020), release="535.104.05")
    msg = unusable_line()
    for words in ("driver 535.104.05", "CUDA up to 12.2", "built for CUDA 13.2", "R580 or newer",
                  ".[gpu-cu12]", "uninstall cupy-cuda13x"):
        assert words in msg, (words, msg)


def test_cuda11_driver_has_no_extra(machine):
    machine(fake_cupy(runtime=12090, driver=11080), release=None)
    msg = unusable_line()
    assert "(version unknown)" in msg and "CUDA up to 11.8" in msg and "R525" in msg
    assert "no gpu-media extra supports it" in msg


def test_cuda12_cupy_on_an_older_cuda12_driver_is_fine(machine, monkeypatch):
    """CUDA minor version compatibility: cupy-cuda12x (12.9 runtime) runs on a 12.2 driver."""
    machine(fake_cupy(runtime=12090, driver=12020))
    assert backend._gpu_unusable_reason(backend._import_cupy()) is None


def test_no_driver(machine):
    machine(fake_cupy(driver=0), release=None)
    assert "no NVIDIA driver found" in unusable_line()


def test_no_device(machine, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    machine(fake_cupy(count=0))
    msg = unusable_line()
    assert "no CUDA device is visible" in msg and "CUDA_VISIBLE_DEVICES=" in msg and "535.104.05" in msg


def test_device_count_fails(machine):
    machine(fake_cupy(count_error="cudaErrorNoDevice: no CUDA-capable device is detected\n(second line)"))
    msg = unusable_line()
    assert "no usable CUDA device" in msg and "cudaErrorNoDevice" in msg and "(second line)" in msg


@pytest.mark.parametrize("runtime, extra", [(13020, "gpu"), (12090, "gpu-cu12")])
def test_nvrtc_missing(machine, runtime, extra):
    machine(fake_cupy(runtime=runtime, driver=13000, nvrtc_error="libnvrtc.so not found"))
    msg = unusable_line()
    major = runtime // 1000
    assert f"NVRTC for CUDA {major}" in msg and "libnvrtc.so not found" in msg
    assert f".[{extra}]" in msg and f"cuda-toolkit[nvrtc]=={major}.*" in msg


def test_a_driver_query_that_raises_means_no_driver(machine):
    cupy = fake_cupy()
    cupy.cuda.runtime.driverGetVersion = None  # calling it raises TypeError, as a missing libcuda would raise
    cupy.cuda.runtime.runtimeGetVersion = lambda: 13000
    machine(cupy)
    assert "no NVIDIA driver found" in unusable_line()


def test_usable_status_names_where_each_codec_runs(machine, monkeypatch):
    fake_backend = types.ModuleType("fake_gpu_backend_for_status")
    nvimg = types.SimpleNamespace(available=lambda: True, INSTALL_HINT="pip install '.[gpu]'")
    nvcomp = types.SimpleNamespace(available=lambda: False, INSTALL_HINT="pip install '.[gpu]' (nvcomp)")
    monkeypatch.setitem(sys.modules, fake_backend.__name__, fake_backend)
    monkeypatch.setitem(sys.modules, "fake_nvimg_for_status", nvimg)
    monkeypatch.setitem(sys.modules, "fake_nvcomp_for_status", nvcomp)
    monkeypatch.setattr(backend, "_GPU_MODULE", fake_backend.__name__)
    monkeypatch.setattr(backend, "_GPU_CODEC_MODULES", (("JPEG", "nvImageCodec", "fake_nvimg_for_status"),
                                                        ("PNG", "nvCOMP", "fake_nvcomp_for_status")))
    machine(fake_cupy(), release="580.95.05")
    assert backend._load_gpu() is fake_backend
    status = gm.gpu_status()
    assert status == ("usable: Fake H100 (device 0, driver 580.95.05, CuPy 14.2.0 for CUDA 13.2); "
                      "JPEG with nvImageCodec; PNG on the host (nvCOMP missing: pip install '.[gpu]' (nvcomp))")


def test_cli_device_gpu_prints_the_reason_in_one_line(machine, tmp_path, capsys):
    from gpu_media import cli

    machine(fake_cupy(runtime=13020, driver=12040), release="550.54.15")
    np.savez(tmp_path / "in.npz", images=np.zeros((1, 4, 4, 3), np.uint8))
    rc = cli.main(["dump", str(tmp_path / "in.npz"), str(tmp_path / "out"), "--device", "gpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "driver 550.54.15" in err and ".[gpu-cu12]" in err and "R580" in err


def test_driver_release_parses_proc(monkeypatch, tmp_path):
    text = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
            "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n")
    import builtins

    real_open = builtins.open

    def fake_open(path, *a, **k):
        if path == "/proc/driver/nvidia/version":
            p = tmp_path / "version"
            p.write_text(text)
            return real_open(p, *a, **k)
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert backend._driver_release() == "535.104.05"
    text = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build\n"
    assert backend._driver_release() == "580.95.05"
