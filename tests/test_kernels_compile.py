"""The CUDA kernels compile for Ampere (sm_80) and Hopper (sm_90), without a GPU.

Three compilers, each tested where it is present: ``nvcc`` (CUDA toolkit in PATH or
CUDA_HOME; ``GPU_MEDIA_NVCC`` names another, or none when empty) and NVRTC, the run-time
compiler that CuPy itself uses, loaded with ctypes
from the ``nvidia-cuda-nvrtc`` wheel (``nvidia/cu13/lib/libnvrtc.so.13``; the CUDA 12
wheel's ``nvidia/cuda_nvrtc/lib/libnvrtc.so.12`` also works) or from the system
(``GPU_MEDIA_NVRTC`` names another library, or none when empty), and CUDA 12's NVRTC
(``nvidia-cuda-nvrtc-cu12``; ``GPU_MEDIA_NVRTC12``), which compiles the kernels for
``pip install ".[gpu-cu12]"`` on CUDA 12 drivers. All
compile with the backend's options (``--fmad=false -std=c++17 -I gpu_media/cuda/src``,
plus the ``-ftz=true`` that CuPy appends)
and must print no warning; the PTX must define every kernel the backend launches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess

import pytest

from gpu_media.cuda import kernels as cuda_kernels

ARCHS = (80, 90)


def _nvcc():
    if "GPU_MEDIA_NVCC" in os.environ:  # a path, or empty to test without nvcc
        return os.environ["GPU_MEDIA_NVCC"] or None
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc")
    return None


def _nvrtc_candidates():
    if "GPU_MEDIA_NVRTC" in os.environ:  # a library path, or empty to test without NVRTC
        if os.environ["GPU_MEDIA_NVRTC"]:
            yield os.environ["GPU_MEDIA_NVRTC"]
        return
    try:
        import nvidia  # namespace package of NVIDIA's wheels
    except ImportError:
        pass
    else:
        for root in list(getattr(nvidia, "__path__", [])):
            yield from sorted(glob.glob(os.path.join(root, "cu1*", "lib", "libnvrtc.so.1*")), reverse=True)
            yield from sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so.1*")), reverse=True)
    system = ctypes.util.find_library("nvrtc")
    if system:
        yield system


def _load_nvrtc():
    for path in _nvrtc_candidates():
        if "builtins" in os.path.basename(path):
            continue
        try:
            lib = ctypes.CDLL(path)
            lib.nvrtcVersion  # noqa: B018 - raises AttributeError on a wrong library
        except (OSError, AttributeError):
            continue
        return lib, path
    return None, None


def _load_nvrtc12():
    """CUDA 12's NVRTC (the ``nvidia-cuda-nvrtc-cu12`` wheel), where it is not already :data:`NVRTC`.

    What ``pip install ".[gpu-cu12]"`` compiles the kernels with on a CUDA 12 driver (the
    shipped fatbin is CUDA 13's), so they must compile with it too (issue 17.3).
    """
    if "GPU_MEDIA_NVRTC12" in os.environ:
        paths = [os.environ["GPU_MEDIA_NVRTC12"]] if os.environ["GPU_MEDIA_NVRTC12"] else []
    else:
        try:
            import nvidia
        except ImportError:
            return None, None
        paths = [p for root in list(getattr(nvidia, "__path__", []))
                 for p in sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so.12")))]
    for path in paths:
        if path == NVRTC_PATH:
            continue
        try:
            lib = ctypes.CDLL(path)
            major, minor = ctypes.c_int(), ctypes.c_int()
            lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
        except (OSError, AttributeError):
            continue
        if major.value == 12:
            return lib, path
    return None, None


NVCC = _nvcc()
NVRTC, NVRTC_PATH = _load_nvrtc()
NVRTC12, NVRTC12_PATH = _load_nvrtc12()
COMPILERS = [c for c, ok in (("nvcc", NVCC), ("nvrtc", NVRTC), ("nvrtc12", NVRTC12)) if ok]
if not COMPILERS:
    COMPILERS = [pytest.param(None, marks=pytest.mark.skip(
        reason="neither nvcc (PATH, CUDA_HOME) nor NVRTC (the nvidia-cuda-nvrtc wheel, "
               "`pip install nvidia-cuda-nvrtc`) is available to compile the CUDA kernels"))]


class NvrtcError(RuntimeError):
    pass


def nvrtc_compile(lib, code: str, options, *, cubin: bool) -> tuple[bytes, str]:
    """Compile ``code`` with NVRTC; returns (PTX or CUBIN bytes, the program log)."""
    prog = ctypes.c_void_p()
    check = _nvrtc_check(lib)
    check(lib.nvrtcCreateProgram(ctypes.byref(prog), code.encode(), b"kernels.cu", 0, None, None))
    try:
        opts = [o.encode() for o in options]
        res = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        check(lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value)
        check(lib.nvrtcGetProgramLog(prog, buf))
        log = buf.value.decode(errors="replace")
        if res != 0:
            raise NvrtcError(f"NVRTC error {res}:\n{log}")
        get_size, get = (lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN) if cubin else (lib.nvrtcGetPTXSize, lib.nvrtcGetPTX)
        check(get_size(prog, ctypes.byref(size)))
        out = ctypes.create_string_buffer(size.value)
        check(get(prog, out))
        return out.raw, log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _nvrtc_check(lib):
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def check(res):
        if res != 0:
            raise NvrtcError(lib.nvrtcGetErrorString(res).decode())

    return check


def compile_kernels(compiler: str, arch: int, kind: str, tmp_path) -> tuple[bytes, str]:
    """kernels.cu, as the backend compiles it, to ``kind`` ("ptx" or "cubin") for sm_<arch>."""
    if compiler in ("nvrtc", "nvrtc12"):
        target = f"sm_{arch}" if kind == "cubin" else f"compute_{arch}"
        options = [f"--gpu-architecture={target}", *cuda_kernels.NVRTC_OPTIONS, f"-I{cuda_kernels.KERNEL_DIR}",
                   *cuda_kernels.CUPY_APPENDED_OPTIONS]
        return nvrtc_compile(NVRTC12 if compiler == "nvrtc12" else NVRTC, cuda_kernels.source(), options,
                             cubin=kind == "cubin")
    src = tmp_path / "kernels.cu"
    src.write_text(cuda_kernels.source())
    out = tmp_path / f"kernels.{kind}"
    cmd = [NVCC, f"-arch=sm_{arch}", *cuda_kernels.NVRTC_OPTIONS, f"-I{cuda_kernels.KERNEL_DIR}",
           *cuda_kernels.CUPY_APPENDED_OPTIONS,
           f"-{kind}", "--Werror", "all-warnings", "-o", str(out), str(src)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return out.read_bytes(), proc.stdout + proc.stderr


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("compiler", COMPILERS)
def test_cubin(compiler, arch, tmp_path):
    """Full compile through ptxas to machine code: no error, no warning."""
    binary, log = compile_kernels(compiler, arch, "cubin", tmp_path)
    assert binary[:4] == b"\x7fELF"
    assert log.strip() == "", log


@pytest.mark.parametrize("compiler", COMPILERS)
def test_ptx_defines_every_launched_kernel(compiler, tmp_path):
    """Every name cuda_kernels launches is an extern "C" entry (no C++ mangling)."""
    ptx, log = compile_kernels(compiler, ARCHS[0], "ptx", tmp_path)
    assert log.strip() == "", log
    entries = set(re.findall(r"\.entry\s+(\w+)\s*\(", ptx.decode()))
    missing = sorted(set(cuda_kernels.kernel_names()) - entries)
    assert not missing, f"kernels launched but not defined: {missing}"
    # nothing compiled on the device uses FMA contraction of the docs/SPEC.md 2 math
    assert "fma.rn.f32" not in ptx.decode() and "fma.rn.f64" not in ptx.decode()


def test_source_is_self_contained():
    """Only our own headers are included (no CuPy header, no cuda_fp16.h, no system header).

    The source the backend compiles carries their digest (CuPy's cache key).
    """
    code = cuda_kernels.source()
    assert code.startswith("// headers sha256 ")
    texts = [code]
    for name in cuda_kernels.HEADERS:
        with open(os.path.join(cuda_kernels.KERNEL_DIR, name), encoding="utf-8") as f:
            texts.append(f.read())
    included = {m for t in texts for m in re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', t, re.MULTILINE)}
    assert included == set(cuda_kernels.HEADERS)


@pytest.mark.skipif(NVRTC is None, reason="NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
def test_nvrtc_reports_errors():
    """The NVRTC driver of these tests does fail on bad code (so a pass means something)."""
    with pytest.raises(NvrtcError, match="error"):
        nvrtc_compile(NVRTC, 'extern "C" __global__ void k() { undefined_symbol(); }',
                      ["--gpu-architecture=compute_80"], cubin=False)


def test_shipped_fatbin_is_built_from_the_current_sources():
    """The stamp of kernels.fatbin names the digest of today's kernels.cu, headers and options.

    After a kernel change: ``python scripts/build_kernels.py``, commit both files.
    """
    import json

    with open(cuda_kernels.FATBIN_STAMP, encoding="utf-8") as f:
        stamp = json.load(f)
    assert stamp["source_sha256"] == cuda_kernels.source_digest(), "run scripts/build_kernels.py"
    assert stamp["archs"] == list(cuda_kernels.FATBIN_ARCHS)
    assert cuda_kernels.fatbin_path() == cuda_kernels.FATBIN


def _cuobjdump():
    found = shutil.which("cuobjdump")
    if found:
        return found
    if NVCC:
        cand = os.path.join(os.path.dirname(NVCC), "cuobjdump")
        if os.path.isfile(cand):
            return cand
    return None


@pytest.mark.skipif(_cuobjdump() is None, reason="cuobjdump (CUDA toolkit) is not installed")
def test_shipped_fatbin_holds_every_arch_and_ptx():
    out = subprocess.run([_cuobjdump(), "--list-elf", "--list-ptx", cuda_kernels.FATBIN], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    archs = {int(a) for a in re.findall(r"\.sm_(\d+)\.cubin", out)}
    assert archs == set(cuda_kernels.FATBIN_ARCHS), out
    assert re.search(rf"\.sm_{cuda_kernels.FATBIN_ARCHS[0]}\.ptx", out), out


def test_fatbin_command_uses_the_backend_options(tmp_path):
    cmd = cuda_kernels.nvcc_fatbin_command("nvcc", "k.cu", "k.fatbin")
    for opt in (*cuda_kernels.NVRTC_OPTIONS, *cuda_kernels.CUPY_APPENDED_OPTIONS):
        assert opt in cmd
    for a in cuda_kernels.FATBIN_ARCHS:
        assert f"-gencode=arch=compute_{a},code=sm_{a}" in cmd
