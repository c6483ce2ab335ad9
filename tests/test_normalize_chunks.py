"""cpu_fallback.normalize's chunks (issue 19.4) against docs/SPEC.md 2, on both backends.

The CPU backend converts a batch in chunks: whole images, or *bands* of rows of one
image converted by the rule of the image's range so far, with the bands whose rule a
later band overturns converted again (the redo). ``CHUNK_BYTES``, ``TASK_BYTES`` and
``PARALLEL_BYTES`` are shrunk here so that small batches take every path: one-row bands,
an image's bands spread over several thread-pool tasks, the redo. The GPU backend
ignores them and must give the same bytes.
"""

import importlib
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_normalize import float_batches

import gpu_media as gm
from media_helpers import host
from spec_reference import normalize_image

cpu_norm = importlib.import_module("cpu_fallback.normalize")


def ref_batch(x_nhwc, normalize=True):
    return np.stack([normalize_image(im, normalize) for im in x_nhwc])


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of ``bytes`` (default 1 row), tasks of 2 chunks, threads from 1 KiB; counts the redone bands."""
    redone = []
    redo = cpu_norm._Job.redo

    def counting(self, items):
        redone.extend((a, r0, r1) for a, _b, r0, r1, _code, _nf in items)
        return redo(self, items)

    monkeypatch.setattr(cpu_norm._Job, "redo", counting)

    def set_sizes(chunk=1, task=None, parallel=1 << 10):
        monkeypatch.setattr(cpu_norm, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(cpu_norm, "NATIVE_CHUNK_BYTES", chunk)  # the compiled loop's chunks too
        monkeypatch.setattr(cpu_norm, "TASK_BYTES", 2 * chunk if task is None else task)
        monkeypatch.setattr(cpu_norm, "PARALLEL_BYTES", parallel)

    set_sizes()
    return set_sizes, redone


def batch_with_late_changes(dtype, h=9, w=7, c=3):
    """Images whose rule is decided by their last rows: every band before must be redone."""
    rng = np.random.default_rng(3)
    x = rng.random((8, h, w, c)).astype(dtype)  # [0, 1]: row "unit"
    x[1, -1, -1, -1] = -0.5  # -> [-1, 1] in the last band
    x[2, -1, 0, 0] = 1.5  # -> clip
    x[3] = (x[3] * 2 - 1).astype(dtype)
    x[3, -1, -1, 0] = 7  # [-1, 1] bands first, then clip
    x[4, h // 2, 1, 0] = np.nan  # a non-finite value changes no range
    x[4, -1, 0, -1] = np.inf
    x[5, :2] = np.nan  # bands without a finite value come first
    x[5, -1, -1, -1] = -1.0
    x[6] = np.nan  # no finite value at all
    x[6, 0, 0, 0], x[6, -1, 0, 0] = np.inf, -np.inf
    x[7] = (x[7] * 600 - 300).astype(dtype)  # clip from the first band
    return x


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_rule_changed_by_a_later_band_is_redone(device, small_chunks, dtype, layout):
    _, redone = small_chunks
    x = batch_with_late_changes(dtype)
    arr = x.transpose(0, 3, 1, 2).copy() if layout == "NCHW" else x
    got = host(gm.normalize(arr, layout=layout, device=device))
    np.testing.assert_array_equal(got, ref_batch(x))
    if device == "cpu":  # images 1, 2, 3 and 5 changed rule after their first band
        assert {a for a, _, _ in redone} == {1, 2, 3, 5}
        assert all(r1 - r0 == 1 for _, r0, r1 in redone)  # bands of one row (CHUNK_BYTES=1)


@pytest.mark.parametrize("chunk", [1, 64, 200, 1 << 20])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("c", [1, 3, 4])
def test_every_chunking_gives_the_same_bytes(device, small_chunks, chunk, layout, c):
    """Bands of 1 row up to chunks of several whole images, odd sizes, 1/3/4 channels, serial and threaded."""
    set_sizes, _ = small_chunks
    set_sizes(chunk)
    x = batch_with_late_changes(np.float32, h=11, w=5, c=c)
    arr = x.transpose(0, 3, 1, 2).copy() if layout == "NCHW" else x
    want = ref_batch(x)
    got = host(gm.normalize(arr, layout=layout, device=device))
    assert got.shape == (8, 11, 5, c) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    if device == "cpu":  # the serial path (inside a gpu_media worker thread) too
        serial = []
        t = threading.Thread(target=lambda: serial.append(cpu_norm.normalize(arr, layout)), name="gpu-media-test")
        t.start()
        t.join()
        np.testing.assert_array_equal(serial[0], want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int64, np.bool_])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_integer_bands(device, small_chunks, dtype, layout):
    """Integer images whose last band widens the range ([0,1] -> [-1,1] -> clip), and uint8 kept as it is."""
    _, redone = small_chunks
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2, (4, 6, 5, 3)).astype(dtype)  # [0, 1]
    if dtype != np.bool_:
        x[1, -1, -1, -1] = 2  # -> clip in the last band
        x[2] = rng.integers(0, 256, (6, 5, 3)).astype(dtype)  # clip from the start
        if np.dtype(dtype).kind == "i":
            x[3, -1, 0, 0] = -1  # -> [-1, 1]
    arr = x.transpose(0, 3, 1, 2).copy() if layout == "NCHW" else x
    got = host(gm.normalize(arr, layout=layout, device=device))
    np.testing.assert_array_equal(got, ref_batch(x))
    if device == "cpu" and dtype != np.bool_:
        assert 1 in {a for a, _, _ in redone}


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_strided_views_and_normalize_false(device, small_chunks, layout):
    set_sizes, _ = small_chunks
    set_sizes(96)
    x = batch_with_late_changes(np.float32, h=14, w=10)
    view = x[::2, ::2, 1::2]  # not contiguous on any axis
    arr = view.transpose(0, 3, 1, 2) if layout == "NCHW" else view
    np.testing.assert_array_equal(host(gm.normalize(arr, layout=layout, device=device)), ref_batch(view))
    np.testing.assert_array_equal(host(gm.normalize(arr, layout=layout, normalize=False, device=device)),
                                  ref_batch(view, normalize=False))


def test_chunks_cover_the_batch_once():
    """_chunks: bands of about CHUNK_BYTES, evenly split, or runs of whole images; in batch order, no overlap."""
    for n, h, image_bytes in [(3, 512, 3 << 20), (5, 7, 100), (2, 1, 5 << 20), (4, 9, 1 << 20), (1, 1000, 1 << 22)]:
        chunks = cpu_norm._chunks(n, h, image_bytes)
        rows = [(i, r) for a, b, r0, r1 in chunks for i in range(a, b) for r in range(r0, r1)]
        assert rows == [(i, r) for i in range(n) for r in range(h)]
        for a, b, r0, r1 in chunks:
            assert b - a == 1 or (r0, r1) == (0, h)
            if b - a == 1 and (r0, r1) != (0, h):
                assert image_bytes * (r1 - r0 - 1) / h <= cpu_norm.CHUNK_BYTES  # at most one row over
        sizes = {r1 - r0 for a, b, r0, r1 in chunks}
        assert max(sizes) - min(sizes) <= max(1, max(sizes) // 2)  # no sliver band at an image's end


# the device fixture holds no state, so reusing it across hypothesis examples is safe
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=float_batches(), norm=st.booleans(), chunk=st.sampled_from([1, 8, 40, 1 << 20]),
       task=st.sampled_from([1, 3, 1 << 30]), nchw=st.booleans())
def test_property_any_chunking_matches_per_image_reference(device, x, norm, chunk, task, nchw):
    """Random float batches (NaN, inf, -0.0, boundary values) under random chunk/task sizes, threaded."""
    old = cpu_norm.CHUNK_BYTES, cpu_norm.TASK_BYTES, cpu_norm.PARALLEL_BYTES
    cpu_norm.CHUNK_BYTES, cpu_norm.TASK_BYTES, cpu_norm.PARALLEL_BYTES = chunk, chunk * task, 1
    try:
        arr = x.transpose(0, 3, 1, 2) if nchw else x
        got = host(gm.normalize(arr, layout="NCHW" if nchw else "NHWC", normalize=norm, device=device))
    finally:
        cpu_norm.CHUNK_BYTES, cpu_norm.TASK_BYTES, cpu_norm.PARALLEL_BYTES = old
    np.testing.assert_array_equal(got, ref_batch(x, norm))
