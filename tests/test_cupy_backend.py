"""gpu_media.cuda.backend: the module's wiring without a GPU, its parity with cpu_fallback on one.

Without a GPU: the module is imported under a stand-in ``cupy`` (NumPy arrays, the
kernels run by their serial host twins, see tests/kernels_host.py), which checks its
plumbing (kernel compile options and cache, launches, pinned copies, encode paths,
chunk size). Every semantic test of the suite also runs with ``device="gpu"`` where
a GPU exists; the GPU tests here add sizes that span many blocks and tiles, every
dtype, strided inputs and non-default streams, compared bit for bit with the CPU.
"""

from __future__ import annotations

import importlib
import io
import sys
import threading
import types
import zlib

import numpy as np
import pytest
from PIL import Image

import cpu_fallback
import gpu_media
import kernels_host
from gpu_media import codecs
from gpu_media.cuda import kernels as cuda_kernels
from gpu_media.errors import HostFallbackWarning

DTYPES = ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
          "float16", "float32", "float64")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if kernels_host.compiler() is None:
        pytest.skip("no C++ compiler (g++, c++, clang++ or $CXX) to build the kernels' host library")
    return kernels_host.build(tmp_path_factory.mktemp("kernels_host"))


@pytest.fixture
def stand_in(lib, monkeypatch):
    """gpu_media.cuda.backend imported under the stand-in cupy; removed again afterwards."""
    log: list = []
    cp, cpx = kernels_host.fake_cupy(lib, log)
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "cupyx", cpx)
    monkeypatch.delitem(sys.modules, "gpu_media.cuda.backend", raising=False)
    monkeypatch.delattr(gpu_media, "cupy_backend", raising=False)
    codecs._resolve.cache_clear()  # the codec table's encoders must be this module's functions
    module = importlib.import_module("gpu_media.cuda.backend")
    module.launches = log
    yield module
    sys.modules.pop("gpu_media.cuda.backend", None)  # monkeypatch then restores any real one
    codecs._resolve.cache_clear()
    if getattr(gpu_media, "cupy_backend", None) is module:
        delattr(gpu_media, "cupy_backend")


def _photo_batch(rng, n=3, h=9, w=7, c=3):
    return rng.random((n, h, w, c)).astype(np.float32)


def test_stand_in_satisfies_the_backend_protocol(stand_in):
    from gpu_media.backend import Backend

    assert isinstance(stand_in, Backend) and stand_in.name == "gpu"


def test_stand_in_normalize_masks_boxes(stand_in):
    rng = np.random.default_rng(0)
    x = _photo_batch(rng)
    x[1] = x[1] * 2 - 1
    x[2, 0, 0, 0] = np.nan
    for layout, arr in (("NHWC", x), ("NCHW", x.transpose(0, 3, 1, 2).copy())):
        np.testing.assert_array_equal(stand_in.normalize(arr, layout, True), cpu_fallback.normalize(arr, layout, True))
    assert stand_in.launches[:3] == ["gm_range_f32", "gm_codes", "gm_convert_f32"]
    masks = rng.integers(0, 300, (2, 5, 6)).astype(np.float64)
    masks[0, 0, 0] = 0.5
    for got, want in zip(stand_in.mask_stats(masks), cpu_fallback.mask_stats(masks)):
        np.testing.assert_array_equal(got, want)
    u8 = rng.integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
    rects = np.array([[0, 0, 5, 5], [2, 2, 7, 7]], np.int64)
    args = (rects, np.array([0, 0]), np.array([[1, 2, 3], [4, 5, 6]], np.uint8), 2)
    np.testing.assert_array_equal(stand_in.draw_outlines(u8, *args), cpu_fallback.draw_outlines(u8, *args))
    assert len(stand_in._modules) == 1  # loaded once, then cached


def test_stand_in_normalize_method_from_the_environment(stand_in, monkeypatch):
    """GPU_MEDIA_NORMALIZE picks the docs/SPEC.md 2 path.

    Two-pass by default, "fused" (one kernel, planned from the device's SM count and L2
    size) when asked; another value is an error.
    """
    rng = np.random.default_rng(4)
    x = _photo_batch(rng, n=5, h=33, w=31)
    x[1] = x[1] * 2 - 1
    x[3] *= 300
    want = cpu_fallback.normalize(x, "NHWC", True)
    for env, launches in ((None, ["gm_range_f32", "gm_codes", "gm_convert_f32"]), ("two-pass", None),
                          ("fused", ["gm_normalize_f32"]), (" Fused ", ["gm_normalize_f32"])):
        if env is None:
            monkeypatch.delenv("GPU_MEDIA_NORMALIZE", raising=False)
        else:
            monkeypatch.setenv("GPU_MEDIA_NORMALIZE", env)
        stand_in.launches.clear()
        np.testing.assert_array_equal(stand_in.normalize(x, "NHWC", True), want)
        assert stand_in.launches == (launches or ["gm_range_f32", "gm_codes", "gm_convert_f32"])
    assert stand_in._device_info() == cuda_kernels.DeviceInfo(4, 1 << 20)  # the stand-in device's properties
    monkeypatch.setenv("GPU_MEDIA_NORMALIZE", "three-pass")
    with pytest.raises(ValueError, match="GPU_MEDIA_NORMALIZE must be one of two-pass, fused"):
        stand_in.normalize(x, "NHWC", True)


def test_stand_in_kernels_from_fatbin_or_nvrtc(stand_in, monkeypatch):
    """The shipped fatbin while its stamp matches the sources; NVRTC when stale or asked for."""
    assert cuda_kernels.fatbin_path() == cuda_kernels.FATBIN  # committed up to date (see test_kernels_compile)
    assert stand_in._module().options == ("fatbin",)
    monkeypatch.setattr(stand_in, "_modules", {})
    monkeypatch.setenv("GPU_MEDIA_KERNELS", "nvrtc")
    assert "--fmad=false" in stand_in._module().options
    monkeypatch.delenv("GPU_MEDIA_KERNELS")
    monkeypatch.setattr(stand_in, "_modules", {})
    monkeypatch.setattr(cuda_kernels, "source_digest", lambda: "0" * 64)  # a kernel changed, not rebuilt
    assert cuda_kernels.fatbin_path() is None
    assert "--fmad=false" in stand_in._module().options


def test_stand_in_encode_and_host_copies(stand_in, monkeypatch):
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, (3, 6, 5, 4), dtype=np.uint8)
    monkeypatch.setitem(stand_in._png_state, "module", None)  # no nvCOMP: Pillow's PNG
    for ft in ("png", "bmp"):
        assert stand_in.encode(u8, ft, 75) == cpu_fallback.encode(u8, ft, 75)
    items = [u8[0], u8[1, :4, :3], u8[2, :, :, :1]]
    assert stand_in.encode(items, "png", 75, 6) == cpu_fallback.encode(items, "png", 75, 6)
    monkeypatch.setitem(stand_in._jpeg_state, "module", None)  # no nvImageCodec: Pillow's JPEG
    rgb = np.ascontiguousarray(u8[..., :3])
    assert stand_in.encode(rgb, "jpg", 80) == cpu_fallback.encode(rgb, "jpg", 80)
    assert stand_in.encode(rgb, "jpeg", 80) == cpu_fallback.encode(rgb, "jpg", 80)  # the table's alias
    assert stand_in.CHUNK_MIN <= stand_in.chunk_bytes() <= stand_in.CHUNK_MAX
    assert isinstance(stand_in.to_host(u8), np.ndarray)


class FakeNvcomp:
    """nvidia.nvcomp 6 as gpu_media.cuda.nvcomp calls it, over host memory: zlib's raw deflate.

    ``as_arrays(buffer, offsets, sizes)`` -> a batch, ``Codec.encode(batch)`` -> a batch with
    ``buffer_sizes`` and indexing (the ``BatchArray`` API). ``fail_if(chunk)`` makes an
    encode call fail when it holds such a chunk (an nvCOMP error on one image).
    """

    class BitstreamKind:
        RAW = "RAW"

    class BatchArray:  # its presence marks the nvCOMP 6 API
        pass

    def __init__(self, fail_if=None):
        self.codecs, self.calls, self.compressed = [], [], 0
        self.fail_if = fail_if or (lambda chunk: False)

    @staticmethod
    def as_arrays(buffer, offsets, sizes, cuda_stream=None):
        flat = buffer.reshape(-1)
        assert all(o % 16 == 0 for o in offsets)  # aligned image starts
        return [flat[o:o + s] for o, s in zip(offsets, sizes)]

    def _deflate(self, kw, src):
        assert all(len(a) == kw["uncomp_chunk_size"] for a in src)  # one chunk per image
        self.calls.append(len(src))
        if any(self.fail_if(a) for a in src):
            raise RuntimeError("nvCOMP: compression failed (fake)")
        outs = []
        self.compressed += len(src)
        for a in src:
            comp = zlib.compressobj(1, zlib.DEFLATED, -15)
            outs.append(np.frombuffer(comp.compress(np.asarray(a).tobytes()) + comp.flush(), np.uint8).copy())
        return outs

    def _wrap(self, outs):
        class Out:
            def __init__(self, arrays):
                self.arrays = arrays
                self.buffer_sizes = [len(a) for a in arrays]

            def __getitem__(self, i):
                a = self.arrays[i]
                return types.SimpleNamespace(__cuda_array_interface__={"data": (a.ctypes.data, False)})

        return Out(outs)

    def Codec(self, **kw):  # nvcomp's name
        self.codecs.append(kw)
        assert kw["algorithm"] == "Deflate" and kw["bitstream_kind"] == "RAW"
        fake = self

        class Codec:
            def encode(self, src):
                return fake._wrap(fake._deflate(kw, src))

        return Codec()


class FakeNvcomp5(FakeNvcomp):
    """nvidia.nvcomp 5.3's list API: ``as_arrays([views])`` -> list of Arrays, ``encode(list)`` -> list of Arrays."""

    def __getattribute__(self, name):
        if name == "BatchArray":  # nvCOMP 5 has none
            raise AttributeError(name)
        return object.__getattribute__(self, name)

    @staticmethod
    def as_arrays(sources, cuda_stream=None):
        assert isinstance(sources, list)
        return [np.asarray(a) for a in sources]

    def _wrap(self, outs):
        return [types.SimpleNamespace(buffer_size=len(a), keep=a, __cuda_array_interface__={"data": (a.ctypes.data,
                                                                                                      False)})
                for a in outs]


def _nvcomp(monkeypatch, stand_in, fake):
    from gpu_media.cuda import nvcomp as nd

    monkeypatch.setattr(nd, "_state", {"module": fake})
    monkeypatch.setattr(nd, "_local", threading.local())
    monkeypatch.setitem(stand_in._png_state, "module", nd)
    monkeypatch.setattr(stand_in, "_host_fallbacks", __import__("collections").Counter())
    return nd


@pytest.mark.parametrize("api", [6, 5])
def test_stand_in_png_through_nvcomp(stand_in, monkeypatch, api):
    """The device PNG path's plumbing: kernels (host twins), nvCOMP calls (5.3's and 6's API), copies, order."""
    from test_png import zlib_read_png

    fake = FakeNvcomp() if api == 6 else FakeNvcomp5()
    nd = _nvcomp(monkeypatch, stand_in, fake)
    assert nd.api() == api
    monkeypatch.setattr(nd, "part_images", lambda n, per, budget=0: 2)  # parts of 2, 1 images: the order
    rng = np.random.default_rng(11)
    for c in (1, 3, 4):
        batch = rng.integers(0, 256, (3, 7, 5, c), dtype=np.uint8)
        for level, algo in ((None, 0), (6, 2), (9, 4)):
            stand_in.launches.clear()
            out = stand_in.encode(batch, "png", 75, level)
            assert stand_in.launches == ["gm_png_filter", "gm_png_adler"]
            assert fake.codecs[-1]["algorithm_type"] == algo and fake.codecs[-1]["uncomp_chunk_size"] == 7 * (1 + 5 * c)
            for data, img in zip(out, batch):
                assert data[:8] == b"\x89PNG\r\n\x1a\n"
                with Image.open(io.BytesIO(data)) as im:
                    np.testing.assert_array_equal(np.asarray(im).reshape(img.shape), img)
                np.testing.assert_array_equal(zlib_read_png(data), img)  # CRCs, Adler-32 too
    assert fake.calls[-2:] == [2, 1]
    items = [rng.integers(0, 256, s, dtype=np.uint8) for s in ((4, 3, 3), (1, 1, 3), (4, 3, 3), (2, 9, 4))]
    for data, img in zip(stand_in.encode(items, "png", 75, None), items):
        with Image.open(io.BytesIO(data)) as im:
            np.testing.assert_array_equal(np.asarray(im).reshape(img.shape), img)
    assert stand_in.host_fallbacks() == {}
    # rows longer than the kernel's exact sums allow: the host (Pillow's bytes), no kernel launched, a warning
    monkeypatch.setattr(cuda_kernels, "PNG_MAX_ROW", 3 * 5)
    stand_in.launches.clear()
    wide = rng.integers(0, 256, (2, 3, 5, 3), dtype=np.uint8)
    with pytest.warns(HostFallbackWarning, match="over the filter kernel"):
        assert stand_in.encode(wide, "png", 75, None) == cpu_fallback.encode(wide, "png", 75, None)
        assert stand_in.encode(list(wide), "png", 75, None) == cpu_fallback.encode(wide, "png", 75, None)
    assert stand_in.launches == []
    assert stand_in.host_fallbacks() == {"PNG": 4}


def test_whole_batch_in_one_nvcomp_call(stand_in, monkeypatch):
    """Issue 17.6: a batch that fits PART_BYTES is one nvCOMP call, whatever its image count."""
    fake = FakeNvcomp()
    nd = _nvcomp(monkeypatch, stand_in, fake)
    batch = np.random.default_rng(3).integers(0, 256, (300, 4, 3, 3), dtype=np.uint8)
    assert len(stand_in.encode(batch, "png", 75, None)) == 300 and fake.calls == [300]
    monkeypatch.setattr(nd, "PART_BYTES", 100 * nd.stride(4 * (1 + 3 * 3)))  # a memory bound of 100 images
    fake.calls.clear()
    stand_in.encode(batch, "png", 75, None)
    assert fake.calls == [100, 100, 100]


@pytest.mark.parametrize("api", [6, 5])
def test_an_nvcomp_failure_on_one_image_sends_only_that_image_to_the_host(stand_in, monkeypatch, api):
    """Issue 17.5: the failed call is retried image by image; the one that fails alone is Pillow's, with a warning.

    nvCOMP stays on: the next call goes to it as before.
    """
    zero = lambda chunk: not np.asarray(chunk).any()  # noqa: E731 - fails on an all-black image's rows
    fake = FakeNvcomp(zero) if api == 6 else FakeNvcomp5(zero)
    nd = _nvcomp(monkeypatch, stand_in, fake)
    rng = np.random.default_rng(12)
    u8 = rng.integers(1, 256, (5, 4, 6, 3), dtype=np.uint8)
    u8[2] = 0
    with pytest.warns(HostFallbackWarning, match="nvCOMP failed on image 2.*compression failed") as rec:
        out = stand_in.encode(u8, "png", 75, None)
    assert len(rec) == 1
    assert fake.calls == [5, 1, 1, 1, 1, 1]  # the batch, then one by one
    assert out[2] == cpu_fallback.encode(u8[2:3], "png", 75, None)[0]  # the host's bytes for image 2 only
    assert fake.compressed == 4  # images 0, 1, 3, 4 by nvCOMP, one by one
    for k in (0, 1, 3, 4):
        with Image.open(io.BytesIO(out[k])) as im:
            np.testing.assert_array_equal(np.asarray(im), u8[k])
    assert stand_in._png_state["module"] is nd and stand_in.host_fallbacks() == {"PNG": 1}
    fake.calls.clear()
    stand_in.encode(u8[3:], "png", 75, None)  # still nvCOMP
    assert fake.calls == [2]


def test_an_image_over_nvcomps_largest_chunk_goes_to_the_host_directly(stand_in, monkeypatch):
    fake = FakeNvcomp()
    nd = _nvcomp(monkeypatch, stand_in, fake)
    monkeypatch.setattr(nd, "MAX_CHUNK_BYTES", 4 * (1 + 6 * 3) - 1)  # a 4x6 RGB image is one byte over
    u8 = np.random.default_rng(13).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    stand_in.launches.clear()
    with pytest.warns(HostFallbackWarning, match="over nvCOMP's largest chunk"):
        assert stand_in.encode(u8, "png", 75, None) == cpu_fallback.encode(u8, "png", 75, None)
    assert fake.calls == [] and stand_in.launches == []  # neither the filter kernels nor nvCOMP ran
    assert stand_in._png_state["module"] is nd and stand_in.host_fallbacks() == {"PNG": 2}
    with pytest.raises(gpu_media.DeviceError, match="at most"):
        nd.deflate(np.zeros(64, np.uint8), 1, nd.MAX_CHUNK_BYTES + 1, 0, device_id=0, stream_ptr=0)


def test_nvcomp_failing_everywhere_leaves_every_image_on_the_host(stand_in, monkeypatch):
    class Broken:
        class BitstreamKind:
            RAW = "RAW"

        BatchArray = object

        @staticmethod
        def as_arrays(*args, **kwargs):
            raise RuntimeError("no device")

    nd = _nvcomp(monkeypatch, stand_in, Broken)
    u8 = np.random.default_rng(12).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    with pytest.warns(HostFallbackWarning, match="nvCOMP failed.*no device"):
        out = stand_in.encode(u8, "png", 75, None)
    assert out == cpu_fallback.encode(u8, "png", 75, None)  # Pillow's bytes
    assert stand_in._png_state["module"] is nd and stand_in.host_fallbacks() == {"PNG": 2}


def test_nvcomp_wrapper_without_nvcomp(monkeypatch):
    from gpu_media.cuda import nvcomp as nvcomp_deflate

    monkeypatch.setattr(nvcomp_deflate, "_state", {"error": "ModuleNotFoundError: No module named 'nvidia.nvcomp'"})
    assert nvcomp_deflate.available() is False
    with pytest.raises(gpu_media.DeviceError, match="nvidia-nvcomp-cu13"):
        nvcomp_deflate.load()
    assert [nvcomp_deflate.algorithm_type(v) for v in (None, 0, 3, 4, 6, 7, 9)] == [0, 0, 0, 2, 2, 4, 4]
    assert [nvcomp_deflate.stride(v) for v in (1, 16, 17)] == [16, 16, 32]


# ---- on a GPU ---------------------------------------------------------------------------------

gpu = pytest.mark.skipif(not gpu_media.gpu_available(), reason="no usable GPU backend (CuPy + CUDA device)")


def _values(rng, dtype, shape):
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(max(int(info.min), -50), min(int(info.max), 400), shape, endpoint=True).astype(dt)
    v = rng.normal(0.5, 0.4, shape)
    return v.astype(dt)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_normalize_parity_large(dtype):
    import cupy

    be = gpu_media.backend.get_backend("gpu")
    rng = np.random.default_rng(2)
    x = np.stack([_values(rng, dtype, (181, 243, 3)) for _ in range(5)])
    if x.dtype.kind == "f":
        x[1] = np.clip(x[1], 0, 1)
        x[2] = np.clip(x[2], -1, 1)
        x[3, 7, 9, 1] = np.nan
        x[4, ::5] = np.inf
    elif x.dtype.kind in "iu":
        x[1] = x[1] % 2
    for layout, arr in (("NHWC", x), ("NCHW", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))):
        d = cupy.asarray(arr)
        for view in (d, d[:, ::-1], d[::2]):
            want = cpu_fallback.normalize(cupy.asnumpy(view), layout, True)
            np.testing.assert_array_equal(cupy.asnumpy(be.normalize(view, layout, True)), want)
        np.testing.assert_array_equal(cupy.asnumpy(be.normalize(d, layout, False)),
                                      cpu_fallback.normalize(arr, layout, False))


@gpu
@pytest.mark.gpu
def test_gpu_every_float16_value_on_a_stream():
    import cupy

    be = gpu_media.backend.get_backend("gpu")
    every = np.arange(65536, dtype=np.uint16).view(np.float16).reshape(1, 256, 256, 1)
    x = np.concatenate([every, np.where(np.isfinite(every), every / np.float16(65504), every),
                        np.clip(every, -1, 1), np.clip(every, 0, 1)])
    with np.errstate(all="ignore"):
        want = cpu_fallback.normalize(x, "NHWC", True)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        got = be.normalize(cupy.asarray(x), "NHWC", True)
        host = cupy.asnumpy(got, stream=stream)
    np.testing.assert_array_equal(host, want)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_mask_stats_parity(dtype):
    import cupy

    be = gpu_media.backend.get_backend("gpu")
    rng = np.random.default_rng(3)
    m = np.stack([_values(rng, dtype, (301, 257)) for _ in range(3)])
    if m.dtype.kind == "f":
        m = np.round(m * 100).astype(dtype)
        m[1, 3, 4] = 0.5
        m[2, 5, 6] = np.nan
    got = be.mask_stats(cupy.asarray(m)[:, ::-1])
    for g, w in zip(got, cpu_fallback.mask_stats(m[:, ::-1])):
        g = cupy.asnumpy(g)
        assert g.dtype == np.asarray(w).dtype
        np.testing.assert_array_equal(g, w)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("c", [1, 3, 4])
def test_gpu_draw_outlines_parity(c):
    import cupy

    be = gpu_media.backend.get_backend("gpu")
    rng = np.random.default_rng(4)
    n, h, w, m = 4, 130, 170, 300
    images = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    x0, y0 = rng.integers(-20, w, m), rng.integers(-20, h, m)
    rects = np.stack([x0, y0, x0 + rng.integers(-5, 120, m), y0 + rng.integers(-5, 120, m)], axis=1).astype(np.int64)
    rects[::17] = [-(2**40), -(2**40), 2**40, 2**40]
    idx = rng.integers(0, n, m)
    cols = rng.integers(0, 256, (m, 3), dtype=np.uint8)
    for t in (1, 2, 5):
        got = cupy.asnumpy(be.draw_outlines(cupy.asarray(images), rects, idx, cols, t))
        np.testing.assert_array_equal(got, cpu_fallback.draw_outlines(images, rects, idx, cols, t))


@gpu
@pytest.mark.gpu
def test_gpu_encode_and_chunk_bytes():
    import cupy

    be = gpu_media.backend.get_backend("gpu")
    rng = np.random.default_rng(5)
    u8 = rng.integers(0, 256, (3, 40, 30, 4), dtype=np.uint8)
    d = cupy.asarray(u8)
    for data, img in zip(be.encode(d, "png", 75, None), u8):  # nvCOMP's bytes differ from Pillow's; pixels do not
        with Image.open(io.BytesIO(data)) as im:
            np.testing.assert_array_equal(np.asarray(im), img)
    assert be.encode([d[0], d[1, :20]], "bmp", 75) == cpu_fallback.encode([u8[0], u8[1, :20]], "bmp", 75)
    assert len(be.encode(d[..., :3], "jpg", 90)) == 3
    assert be.CHUNK_MIN <= be.chunk_bytes() <= be.CHUNK_MAX
    assert cuda_kernels.kernel_names()  # every kernel loads
    for name in cuda_kernels.kernel_names():
        be._module().get_function(name)


def _without_file_bytes(rec):
    """A dump record without what depends on the encoder's bytes (sha256, size, path)."""
    if isinstance(rec, dict):
        return {k: _without_file_bytes(v) for k, v in rec.items() if k not in ("sha256", "size", "path")}
    return rec


def _same_pixels(root_a, root_b, rec_a, rec_b):
    files = [(rec_a["path"], rec_b["path"])] + [(rec_a["masks"][k]["path"], rec_b["masks"][k]["path"])
                                                 for k in rec_a.get("masks") or {}]
    for fa, fb in files:
        with Image.open(root_a / fa) as a, Image.open(root_b / fb) as b:
            assert a.mode == b.mode
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("png_on_gpu", [False, True], ids=["host-png", "nvcomp-png"])
def test_gpu_dump_in_chunks_on_a_caller_stream_equals_cpu(tmp_path, monkeypatch, png_on_gpu):
    """Chunks in flight in two threads, all on the caller's stream: the CPU dump's files.

    Byte for byte with PNG encoded on the host; pixel for pixel with nvCOMP's PNG.
    """
    import cupy

    from gpu_media.cuda import nvcomp as nvcomp_deflate

    be = gpu_media.backend.get_backend("gpu")
    if png_on_gpu and not nvcomp_deflate.available():
        pytest.skip("nvCOMP (nvidia-nvcomp-cu13) is not installed")
    monkeypatch.setitem(be._png_state, "module", nvcomp_deflate if png_on_gpu else None)

    rng = np.random.default_rng(5)
    x = rng.random((9, 33, 17, 3), dtype=np.float32)
    masks = {"m": {"mask_data": rng.integers(0, 5, (9, 33, 17)).astype(np.uint8)}}
    cpu = gpu_media.write_dump(tmp_path / "cpu", x, key="k", masks=masks, chunk_size=2, device="cpu")
    with cupy.cuda.Stream(non_blocking=True):
        gpu = gpu_media.write_dump(tmp_path / "gpu", cupy.asarray(x), key="k",
                                   masks={"m": {"mask_data": cupy.asarray(masks["m"]["mask_data"])}},
                                   chunk_size=2, device="auto")
    if not png_on_gpu:
        assert gpu == cpu
        return
    assert [_without_file_bytes(r) for r in gpu] == [_without_file_bytes(r) for r in cpu]
    for a, b in zip(gpu, cpu):
        _same_pixels(tmp_path / "gpu", tmp_path / "cpu", a, b)


def _nvcomp_or_skip():
    from gpu_media.cuda import nvcomp as nvcomp_deflate

    if not nvcomp_deflate.available():
        pytest.skip("nvCOMP (nvidia-nvcomp-cu13) is not installed")
    be = gpu_media.backend.get_backend("gpu")
    if be._png_encoder() is None:
        pytest.skip("the GPU PNG encoder was switched off by an earlier failure")
    return be


@gpu
@pytest.mark.gpu
def test_gpu_fatbin_loads_and_equals_nvrtc():
    """The shipped fatbin loads on this GPU, and its kernels give the NVRTC build's bits."""
    import cupy

    be = gpu_media.backend.get_backend("gpu")
    fat, rtc = be._load_fatbin(), be._compile_nvrtc()
    assert fat is not None, "the shipped fatbin did not load on this GPU"
    rng = np.random.default_rng(40)

    def launcher(mod):
        def launch(name, blocks, args):
            mod.get_function(name)((blocks,), (cuda_kernels.BLOCK,), tuple(args))
        return launch

    for dtype in ("float16", "float32", "float64", "int16", "uint8"):
        x = cupy.asarray(_values(rng, dtype, (4, 67, 45, 3)))
        a = cuda_kernels.normalize(x, "NHWC", True, xp=cupy, launch=launcher(fat))
        b = cuda_kernels.normalize(x, "NHWC", True, xp=cupy, launch=launcher(rtc))
        np.testing.assert_array_equal(a.get(), b.get())
    u8 = cupy.asarray(rng.integers(0, 256, (3, 31, 29, 4), dtype=np.uint8))
    fa, aa = cuda_kernels.png_rows(u8, xp=cupy, launch=launcher(fat))
    fb, ab = cuda_kernels.png_rows(u8, xp=cupy, launch=launcher(rtc))
    np.testing.assert_array_equal(fa.get(), fb.get())
    np.testing.assert_array_equal(aa.get(), ab.get())


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("c", [1, 3, 4])
def test_gpu_png_rows_equal_the_reference(c):
    """gm_png_filter / gm_png_adler on the device: libpng's rows (NumPy reference) and zlib's Adler-32."""
    import cupy

    from gpu_media import png

    be = gpu_media.backend.get_backend("gpu")
    rng = np.random.default_rng(20 + c)
    for n, h, w in ((1, 1, 1), (5, 37, 29), (3, 300, 257), (2, 1, 6000)):
        host = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
        host[0] = (np.add.outer(np.arange(h), np.arange(w))[..., None] * (np.arange(c) + 1) % 256).astype(np.uint8)
        per = h * (1 + w * c)
        filtered, adler = cuda_kernels.png_rows(cupy.asarray(host), xp=cupy, launch=be._launch,
                                                stride=-(-per // 16) * 16)
        filtered, adler = filtered.get(), adler.get()
        for i in range(n):
            rows, _ = png.filter_rows(host[i])
            np.testing.assert_array_equal(filtered[i, :per], rows)
            assert int(adler[i]) == zlib.adler32(rows.tobytes())


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("level", [None, 0, 4, 6, 9])
def test_gpu_png_decodes_exactly(level):
    """PNGs of nvCOMP: Pillow and a zlib-only reader (CRCs, zlib header, Adler-32) give back every pixel."""
    import cupy
    from test_png import zlib_read_png

    be = _nvcomp_or_skip()
    rng = np.random.default_rng(30)
    from gpu_media.cli import demo_input

    with np.load(demo_input()) as z:
        photo = z["images"][0]
    cases = [rng.integers(0, 256, (3, 17, 31, c), dtype=np.uint8) for c in (1, 3, 4)]
    cases += [np.stack([photo[:201, :133], photo[50:251, 7:140]]), np.zeros((2, 1, 1, 3), np.uint8)]
    for batch in cases:
        out = be.encode(cupy.asarray(batch), "png", 75, level)
        for data, img in zip(out, batch):
            with Image.open(io.BytesIO(data)) as im:
                np.testing.assert_array_equal(np.asarray(im).reshape(img.shape), img)
            np.testing.assert_array_equal(zlib_read_png(data), img)
    items = [cupy.asarray(rng.integers(0, 256, s, dtype=np.uint8)) for s in ((5, 3, 3), (9, 2, 3), (5, 3, 3))]
    for data, img in zip(gpu_media.encode(items, file_type="png", compression_level=level, device="gpu"), items):
        np.testing.assert_array_equal(zlib_read_png(data), img.get())
    assert be._png_state["module"] is not None  # nothing fell back to the host
