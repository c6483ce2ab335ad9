"""cpu_fallback.native (the compiled loops of cpu_fallback/native.cpp) against the NumPy code, bit for bit.

The CPU backend runs ``_gpu_media_native`` where ``pip install .`` built it; its NumPy
code otherwise. Both must give the same bytes for every input: here every dtype, both
layouts, strided views, NaN and infinities, rules decided late (bands converted again),
widths around the vector loops' steps, and both vector paths (AVX2 and SSE2, the latter
in a subprocess with ``GPU_MEDIA_NATIVE_AVX2=0``). The semantic tests (test_normalize*.py,
test_encode*.py) check the backend against docs/SPEC.md whichever path it runs.

In CI (``CI=true``) the module must have been built: a green CI then covers it.
"""

import importlib
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_normalize import float_batches
from test_normalize_chunks import batch_with_late_changes

from cpu_fallback import native
from gpu_media import png

cpu_norm = importlib.import_module("cpu_fallback.normalize")
cpu_encode = importlib.import_module("cpu_fallback.encode")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_native = pytest.mark.skipif(not native.built(), reason="_gpu_media_native was not built here (no C++ compiler)")


def test_built_in_ci():
    """CI installs the package with a C++ compiler present: the module must be there and on."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI requires the compiled module (elsewhere it may be absent: the NumPy code runs)")
    assert native.built() and native.get() is not None
    assert native.get().simd() in ("avx2", "sse2")


def both(fn, *args, **kw):
    """(compiled result, NumPy result) of ``fn``."""
    got = fn(*args, **kw)
    with native.disabled():
        want = fn(*args, **kw)
    return got, want


@pytest.fixture
def chunk_sizes(monkeypatch):
    """Set CHUNK_BYTES (and tasks of 2 chunks, threads from 1 KiB) for one test."""

    def set_sizes(chunk):
        monkeypatch.setattr(cpu_norm, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(cpu_norm, "NATIVE_CHUNK_BYTES", chunk)
        monkeypatch.setattr(cpu_norm, "TASK_BYTES", 2 * chunk)
        monkeypatch.setattr(cpu_norm, "PARALLEL_BYTES", 1 << 10)

    return set_sizes


def layouts(x):
    """(array, layout) pairs of one NHWC batch: itself, its NCHW copy, and an NCHW view."""
    return [(x, "NHWC"), (np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "NCHW"), (x.transpose(0, 3, 1, 2), "NCHW")]


@needs_native
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=float_batches(), norm=st.booleans(), chunk=st.sampled_from([1, 40, 1 << 20]))
def test_floats_equal_numpy(chunk_sizes, x, norm, chunk):
    chunk_sizes(chunk)
    for arr, layout in layouts(x):
        got, want = both(cpu_norm.normalize, arr, layout, norm)
        np.testing.assert_array_equal(got, want)


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from([np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                              np.bool_]),
       shape=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 37), st.sampled_from([1, 3, 4])),
       top=st.sampled_from([1, 2, 255, 256, 70000]), signed=st.booleans(), chunk=st.sampled_from([1, 1 << 20]),
       seed=st.integers(0, 2**31))
def test_integers_equal_numpy(chunk_sizes, dtype, shape, top, signed, chunk, seed):
    chunk_sizes(chunk)
    info = np.iinfo(dtype) if dtype != np.bool_ else None
    lo = -top if signed and info is not None and info.min < 0 else 0
    hi = top if info is None else min(top, int(info.max))
    x = np.random.default_rng(seed).integers(lo, max(hi, 1), shape, endpoint=True)
    x = (x > 0) if dtype == np.bool_ else x.astype(dtype)
    for arr, layout in layouts(x):
        got, want = both(cpu_norm.normalize, arr, layout)
        np.testing.assert_array_equal(got, want)


@needs_native
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("chunk", [1, 64, 200, 1 << 20])
def test_late_rules_and_nonfinite_equal_numpy(chunk_sizes, dtype, chunk):
    """Images whose rule their last rows decide (bands redone), NaN, infinities, images without a finite value."""
    chunk_sizes(chunk)
    x = batch_with_late_changes(dtype, h=9, w=21, c=3)
    for arr, layout in layouts(x) + [(x[:, ::2, 1::3], "NHWC")]:
        for norm in (True, False):
            got, want = both(cpu_norm.normalize, arr, layout, norm)
            np.testing.assert_array_equal(got, want)


@needs_native
@pytest.mark.parametrize("w", [1, 3, 4, 5, 7, 8, 9, 10, 11, 15, 16, 17, 31, 32, 33, 65, 8193])
@pytest.mark.parametrize("c", [1, 3, 4])
def test_widths_around_vector_steps(w, c):
    """Rows of every length around the SIMD loops' 4/8/16/32 steps and the stop before a row's end."""
    rng = np.random.default_rng(w * 10 + c)
    h = 2 if w > 1000 else 5
    for scale, shift in ((1.0, 0.0), (2.0, -1.0), (600.0, -300.0)):
        x = (rng.random((3, h, w, c)) * scale + shift).astype(np.float32)
        x[1, 0, 0, 0] = np.nan
        x[2, -1, -1, -1] = np.inf
        for arr, layout in layouts(x) + layouts(x.astype(np.float64)):
            got, want = both(cpu_norm.normalize, arr, layout)
            np.testing.assert_array_equal(got, want)


@needs_native
def test_big_endian_and_unaligned_input_take_numpy():
    """Input the compiled loop does not take (non-native byte order, unaligned) gives the same bytes."""
    x = np.random.default_rng(0).random((2, 4, 5, 3)).astype(np.float32)
    swapped = x.astype(">f4")
    raw = np.zeros(x.nbytes + 1, np.uint8)[1:]
    unaligned = raw.view(np.float32).reshape(x.shape)
    unaligned[...] = x
    assert not unaligned.flags.aligned
    want = cpu_norm.normalize(x, "NHWC")
    for arr in (swapped, unaligned):
        np.testing.assert_array_equal(cpu_norm.normalize(arr, "NHWC"), want)


@needs_native
def test_normalize_chunk_rejects_what_it_cannot_take():
    nat = native.get()
    x = np.zeros((2, 3, 4, 3), np.float32)
    with pytest.raises(TypeError, match="uint8 NHWC destination"):
        nat.normalize_chunk(x, np.zeros((2, 3, 4, 2), np.uint8), False, np.inf, -np.inf, -1)
    with pytest.raises(TypeError, match="uint8 NHWC destination"):
        nat.normalize_chunk(x.astype(np.complex64), np.zeros((2, 3, 4, 3), np.uint8), False, np.inf, -np.inf, -1)
    with pytest.raises(ValueError, match="force"):
        nat.normalize_chunk(x, np.zeros((2, 3, 4, 3), np.uint8), False, np.inf, -np.inf, 3)
    lo, hi, nonfinite, codes = nat.normalize_chunk(x, np.zeros((2, 3, 4, 3), np.uint8), False, np.inf, -np.inf, -1)
    assert (lo, hi, nonfinite, list(codes)) == ([0.0, 0.0], [0.0, 0.0], False, [0, 0])


@needs_native
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 3), (5, 1, 4), (9, 13, 3), (16, 40, 1), (3, 1000, 4)])
def test_png_filter_equals_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    for a in (rng.integers(0, 256, shape, dtype=np.uint8), np.zeros(shape, np.uint8),
              np.full(shape, 255, np.uint8)):
        rows, zeros = native.get().png_filter_average(a)
        want = png.filter_average(a)
        assert rows == want.tobytes()
        assert zeros == want.size - np.count_nonzero(want)


@needs_native
def test_encode_png_same_bytes_both_paths():
    """The default PNG (filter, strategy, deflate, assembly) is the same file through either filter."""
    rng = np.random.default_rng(7)
    photo = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    mask = np.zeros((64, 64, 1), np.uint8)
    mask[10:20, 5:60] = 3
    for a in (photo, mask, photo[:, :, :1], np.dstack([photo, photo[:, :, :1]])):
        got, want = both(cpu_encode.encode_png, a)
        assert got == want
        assert zlib.crc32(got) == zlib.crc32(want)


@needs_native
def test_sse2_loops_equal_numpy():
    """The SSE2 loops (what CPUs without AVX2 run): this file's other tests again, in a child with AVX2 off."""
    if os.environ.get("GPU_MEDIA_NATIVE_AVX2") == "0":
        pytest.skip("already the child")
    path = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, GPU_MEDIA_NATIVE_AVX2="0", PYTHONPATH=path)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                           "not sse2_loops and not scalar_loops and not built_in_ci"], env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
    child = subprocess.run([sys.executable, "-c", "from cpu_fallback import native; print(native.get().simd())"],
                           env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert child.stdout.strip() == "sse2"


@needs_native
def test_scalar_loops_equal_numpy(tmp_path):
    """The plain C++ loops (what CPUs without SSE2 run, e.g. ARM): built with __SSE2__ undefined, run in a child."""
    import sysconfig

    from kernels_host import compiler

    if compiler() is None:
        pytest.skip("no C++ compiler here")
    so = tmp_path / ("_gpu_media_native" + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = [compiler(), "-O2", "-std=c++17", "-ffp-contract=off", "-U__SSE2__", "-shared", "-fPIC",
           f"-I{os.path.join(ROOT, 'gpu_media', 'cuda', 'src')}", f"-I{sysconfig.get_paths()['include']}",
           os.path.join(ROOT, "cpu_fallback", "native.cpp"), "-o", str(so)]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT, os.environ.get("PYTHONPATH", "")]))
    child = subprocess.run([sys.executable, "-c", "import _gpu_media_native as m; print(m.__file__, m.simd())"],
                           env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert child.stdout.split() == [str(so), "none"], child.stdout + child.stderr
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                           "not sse2_loops and not scalar_loops and not built_in_ci"], env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_disabled_runs_numpy_and_restores():
    before = native.get()
    with native.disabled():
        assert native.get() is None
        x = np.array([[[[0.5]]]], np.float32)
        assert cpu_norm.normalize(x, "NHWC").item() == 127
    assert native.get() is before


@needs_native
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_ranges_equal_numpy_finite_min_max(dtype):
    """normalize_chunk's per-image (lo, hi): the min/max over finite values, NaN and infinities anywhere in a row."""
    nat = native.get()
    rng = np.random.default_rng(5)
    for w in (1, 7, 31, 33, 64, 100, 257):
        for trial in range(12):
            x = (rng.random((2, 3, w, 3)) * 4 - 2).astype(dtype)
            k = rng.integers(0, 4)
            for _ in range(k):  # NaN/inf at random places, the last element included
                i, y, p = rng.integers(0, 2), rng.integers(0, 3), rng.integers(0, 3 * w)
                x[i, y].reshape(-1)[p] = rng.choice([np.nan, np.inf, -np.inf])
            if trial % 3 == 0:
                x[0, -1, -1, -1] = np.nan
            lo, hi, nonfinite, _ = nat.normalize_chunk(x, np.empty(x.shape, np.uint8), False, np.inf, -np.inf, -1)
            fin = np.where(np.isfinite(x), x, np.nan).astype(np.float64)
            with np.errstate(all="ignore"):
                want_lo = [np.nanmin(f) if np.isfinite(f).any() else np.inf for f in fin]
                want_hi = [np.nanmax(f) if np.isfinite(f).any() else -np.inf for f in fin]
            assert lo == want_lo and hi == want_hi, (w, trial)
            assert nonfinite == bool((~np.isfinite(x)).any())


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [64, 100])
def test_range_keeps_an_extreme_before_a_nan_in_its_lane(dtype, n):
    """A NaN 16 and 32 elements after the min and the max (their vector lane) leaves both in the range."""
    nat = native.get()
    for p in range(0, n - 32):
        x = np.full((1, 1, n, 1), 0.5, dtype)
        x[0, 0, p, 0], x[0, 0, (p + 1) % n, 0] = -1.0, 2.0
        for q in (p + 16, p + 32, p + 17, p + 33):
            if q < n:
                x[0, 0, q, 0] = np.nan
        lo, hi, nonfinite, codes = nat.normalize_chunk(x, np.empty(x.shape, np.uint8), False, np.inf, -np.inf, -1)
        assert (lo, hi, nonfinite, codes[0]) == ([-1.0], [2.0], True, 2), p
