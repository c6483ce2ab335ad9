"""The CUDA kernels built for the host, for tests without a GPU (imported by name).

``build(out_dir)`` compiles ``tests/kernels_host_shim.cpp`` (the ``.cuh`` files of
``gpu_media/cuda/src/`` plus serial twins of every kernel, same names and arguments)
with the host C++ compiler, without FMA contraction. ``host_launch(lib)`` is a
``launch`` for :mod:`gpu_media.cuda.kernels` that runs those twins, and
:func:`fake_cupy` a stand-in ``cupy`` module (NumPy arrays; ``RawModule`` kernels run
by the twins) under which ``gpu_media.cuda.backend`` itself can be imported and run.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import types

import numpy as np

from gpu_media.cuda import kernels as cuda_kernels

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels_host_shim.cpp")


def compiler():
    """A host C++ compiler ($CXX, g++, c++ or clang++), or None."""
    for cand in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def build(out_dir) -> ctypes.CDLL:
    """Compile the shim into ``out_dir`` and load it (-O2 -ffp-contract=off, warnings are errors)."""
    out = os.path.join(str(out_dir), "libgm_kernels_host.so")
    cmd = [compiler(), "-O2", "-ffp-contract=off", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
           f"-I{cuda_kernels.KERNEL_DIR}", SHIM, "-o", out]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return ctypes.CDLL(out)


def call(lib, name: str, *args) -> None:
    """Call ``name`` of the shim: arrays by pointer to their first element, int32/int64 scalars by value.

    Any other argument is an error: CuPy maps a kernel's scalars by their NumPy type,
    so the driver must pass exactly ``numpy.int32`` / ``numpy.int64``.
    """
    fn = getattr(lib, name)
    fn.restype = None
    conv = []
    for a in args:
        if isinstance(a, np.ndarray):
            conv.append(ctypes.c_void_p(a.__array_interface__["data"][0]))
        elif type(a) is np.int32:
            conv.append(ctypes.c_int(int(a)))
        elif type(a) is np.int64:
            conv.append(ctypes.c_longlong(int(a)))
        else:
            raise TypeError(f"{name}: argument {a!r} of type {type(a).__name__} is not an array, int32 or int64")
    fn(*conv)


def host_launch(lib, log: list | None = None):
    """A ``launch(name, blocks, args)`` for gpu_media.cuda.kernels that runs the serial twins."""

    def launch(name, blocks, args):
        assert name in cuda_kernels.kernel_names(), name
        assert isinstance(blocks, int) and 1 <= blocks <= cuda_kernels.MAX_BLOCKS
        if log is not None:
            log.append(name)
        call(lib, name, *args)

    return launch


def fake_cupy(lib, log: list | None = None):
    """(cupy, cupyx) stand-in modules: NumPy arrays, kernels run by the host twins."""
    cp = types.ModuleType("cupy")
    cp.__getattr__ = lambda name: getattr(np, name)  # everything else: NumPy's
    cp.ndarray = np.ndarray

    class RawModule:
        def __init__(self, code=None, options=(), path=None, **kwargs):
            if path is not None:  # the shipped fatbin: the twins stand in for its code too
                assert code is None and path == cuda_kernels.FATBIN
                self.options = ("fatbin",)
                return
            assert code.startswith("// headers sha256 ")
            assert "--fmad=false" in options and f"-I{cuda_kernels.KERNEL_DIR}" in options
            self.options = options

        def get_function(self, name):
            launch = host_launch(lib, log)

            def kernel(grid, block, args):
                assert block == (cuda_kernels.BLOCK,) and len(grid) == 1
                launch(name, grid[0], args)

            return kernel

    class Stream:
        ptr = 0

        def synchronize(self):
            pass

    class Device:
        id = 0
        mem_info = (8 << 30, 16 << 30)

    class Pool:
        def free_bytes(self):
            return 1 << 30

    def asnumpy(a, stream=None, order="C", out=None, blocking=True):
        if out is None:
            return np.array(a)
        assert out.shape == a.shape and out.dtype == a.dtype and out.flags.c_contiguous
        out[...] = a
        return out

    cp.RawModule = RawModule
    cp.asnumpy = asnumpy
    cp.get_default_memory_pool = Pool
    def memcpy_async(dst, src, size, kind, stream):  # host "device" pointers: a plain copy
        assert kind == 2 and size >= 0  # cudaMemcpyDeviceToHost
        ctypes.memmove(dst, src, size)

    def device_properties(dev):  # a small device: the fused kernel's plan sees 4 SMs and 1 MiB of L2
        assert dev == 0
        return {"multiProcessorCount": 4, "l2CacheSize": 1 << 20, "name": b"host twins"}

    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, memcpyAsync=memcpy_async, memcpyDeviceToHost=2,
                                    getDeviceProperties=device_properties)
    cp.cuda = types.SimpleNamespace(runtime=runtime, Device=Device, get_current_stream=Stream, Stream=Stream)
    cpx = types.ModuleType("cupyx")
    cpx.empty_pinned = lambda shape, dtype=float, order="C": np.empty(shape, dtype=dtype, order=order)
    return cp, cpx
