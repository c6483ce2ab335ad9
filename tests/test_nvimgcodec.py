"""gpu_media.cuda.nvimgcodec: nvImageCodec's CPU-only codecs here, nvJPEG where a GPU is.

The CPU-only half runs wherever ``nvidia-nvimgcodec-cu13`` installs (Linux x86-64 and
aarch64, no GPU or CUDA driver needed) and skips, saying why, where it cannot be
imported. The GPU half (marker ``gpu``) needs CuPy, a CUDA device and the nvJPEG wheel.
"""

import io
import itertools
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

import cpu_fallback
from gpu_media import DeviceError, ImageError, MediaError
from gpu_media.cli import demo_input
from gpu_media.cuda import nvimgcodec as ne

CPU_ONLY = ne.CPU_ONLY
HAVE_NVIMGCODEC = ne.available()
needs_nvimgcodec = pytest.mark.skipif(
    not HAVE_NVIMGCODEC, reason=f"nvImageCodec cannot be imported here: {ne._state.get('error')}")


def _gpu_reason():
    if not HAVE_NVIMGCODEC:
        return f"nvImageCodec cannot be imported here: {ne._state.get('error')}"
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device is visible"
    except Exception as exc:  # noqa: BLE001 (ImportError, CUDARuntimeError, ...)
        return f"needs CuPy and a CUDA device ({type(exc).__name__}: {exc})"
    return None


GPU_REASON = _gpu_reason()


def photos() -> np.ndarray:
    """The 8 demo photographs, (8, 256, 256, 3) uint8."""
    with np.load(demo_input()) as z:
        return np.ascontiguousarray(z["images"])


def decode(data: bytes):
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.format, im.mode, im.size, np.asarray(im)


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def sampling(data: bytes) -> int:
    """Pillow's name for the JPEG's chroma subsampling: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0, -1 = grayscale."""
    with Image.open(io.BytesIO(data)) as im:
        return JpegImagePlugin.get_sampling(im)


def test_missing_nvimgcodec_names_the_install(monkeypatch):
    monkeypatch.setattr(ne, "_state", {})
    monkeypatch.setattr(ne, "_encoders", {})
    monkeypatch.setitem(sys.modules, "nvidia", None)  # import of nvidia.* now fails
    with pytest.raises(DeviceError, match=r'pip install "\.\[gpu\]"'):
        ne.encode_device(np.zeros((1, 8, 8, 3), np.uint8), 75)
    assert not ne.available()
    with pytest.raises(DeviceError, match="nvidia-nvimgcodec-cu13"):
        ne.get_encoder(CPU_ONLY)


@needs_nvimgcodec
def test_cpu_only_jpeg_batch_decodes_like_pillow():
    x = photos()
    out = ne.encode_device(x, 75, "jpeg", device_id=CPU_ONLY)
    ref = cpu_fallback.encode(x, "jpg", 75)
    assert isinstance(out, list) and len(out) == len(x) and all(isinstance(b, bytes) for b in out)
    for a, b, r in zip(x, out, ref):
        fmt, mode, size, d = decode(b)
        assert (fmt, mode, size) == ("JPEG", "RGB", (256, 256))
        assert psnr(d, a) > 30
        assert sampling(b) == sampling(r) == 2  # 4:2:0, Pillow's default
        # same quality scale as libjpeg/Pillow: identical quantization tables
        with Image.open(io.BytesIO(b)) as ours, Image.open(io.BytesIO(r)) as pil:
            assert ours.quantization == pil.quantization
        assert np.abs(d.astype(int) - decode(r)[3].astype(int)).mean() <= 2.0  # docs/SPEC.md 5


@needs_nvimgcodec
def test_cpu_only_default_device_for_host_arrays_and_jpg_alias():
    x = photos()[:2]
    assert ne.encode_device(x, 80, "jpg") == ne.encode_device(x, 80, "jpeg", device_id=CPU_ONLY)


@needs_nvimgcodec
def test_cpu_only_grayscale_jpeg_is_mode_L():
    g = photos()[:3, :, :, 1:2].copy()  # (3, 256, 256, 1)
    out = ne.encode_device(g, 90)
    ref = cpu_fallback.encode(g, "jpg", 90)
    for a, b, r in zip(g, out, ref):
        fmt, mode, size, d = decode(b)
        assert (fmt, mode, size, d.shape) == ("JPEG", "L", (256, 256), (256, 256))
        assert sampling(b) == -1 and decode(r)[1] == "L"
        assert psnr(d, a[:, :, 0]) > 30
        assert np.abs(d.astype(int) - decode(r)[3].astype(int)).mean() <= 2.0


@needs_nvimgcodec
def test_cpu_only_list_of_sizes_and_channels_keeps_order():
    rng = np.random.default_rng(1)
    p = photos()
    items = [p[0, :100, :37], p[1, :, :, :1].copy(), p[2, :64, :200, 0].copy(), p[3, 5:, 3:]]
    out = ne.encode_device(items, 95, "jpeg")
    modes = [decode(b)[1] for b in out]
    sizes = [decode(b)[2] for b in out]
    assert modes == ["RGB", "L", "L", "RGB"]
    assert sizes == [(37, 100), (256, 256), (200, 64), (253, 251)]
    for a, b in zip(items, out):
        a = a if a.ndim == 3 else a[:, :, None]
        d = decode(b)[3]
        assert psnr(d.reshape(a.shape), a) > 30
    noise = rng.integers(0, 256, (3, 9, 11, 3), dtype=np.uint8)  # odd sizes, not multiples of 8
    assert [decode(b)[2] for b in ne.encode_device(noise, 75)] == [(11, 9)] * 3


@needs_nvimgcodec
@pytest.mark.parametrize("file_type,fmt", [("png", "PNG"), ("bmp", "BMP")])
@pytest.mark.parametrize("c,mode", [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_cpu_only_lossless_round_trip(file_type, fmt, c, mode):
    rng = np.random.default_rng(c)
    x = rng.integers(0, 256, (3, 13, 21, c), dtype=np.uint8)
    out = ne.encode_device(x, 75, file_type, device_id=CPU_ONLY)
    for a, b in zip(x, out):
        f, m, size, d = decode(b)
        assert (f, m, size) == (fmt, mode, (21, 13))
        np.testing.assert_array_equal(d.reshape(a.shape), a)


@needs_nvimgcodec
def test_cpu_only_png_compression_level():
    x = photos()[:2]
    sizes = {}
    for level in (0, 1, 9):
        out = ne.encode_device(x, 75, "png", compression_level=level)
        for a, b in zip(x, out):
            np.testing.assert_array_equal(decode(b)[3], a)
        sizes[level] = sum(map(len, out))
    assert sizes[9] < sizes[1] < sizes[0]


@needs_nvimgcodec
def test_quality_orders_size_and_fidelity():
    x = photos()
    qualities = [10, 30, 50, 75, 90, 100]
    sizes, fidelity = [], []
    for q in qualities:
        out = ne.encode_device(x, q)
        sizes.append(sum(map(len, out)))
        fidelity.append(np.mean([psnr(decode(b)[3], a) for a, b in zip(x, out)]))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), sizes
    assert all(f2 > f1 for f1, f2 in itertools.pairwise(fidelity)), fidelity


@needs_nvimgcodec
def test_non_contiguous_input():
    x = photos()[:2, ::2, ::2]
    assert not x.flags.c_contiguous
    out = ne.encode_device(x, 75, "png")
    for a, b in zip(x, out):
        np.testing.assert_array_equal(decode(b)[3], a)


@needs_nvimgcodec
def test_one_encoder_per_device_created_once_and_reused(monkeypatch):
    nvimgcodec = ne.load()
    real = nvimgcodec.Encoder
    made = []

    def counting(*args, **kwargs):
        made.append(kwargs.get("device_id"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ne, "_encoders", {})
    monkeypatch.setattr(nvimgcodec, "Encoder", counting)
    x = photos()[:4]
    first = ne.encode_device(x, 75)
    enc = ne.get_encoder(CPU_ONLY)
    results, errors = [], []

    def work():
        try:
            results.append(ne.encode_device(x, 75))
            results.append(ne.encode_device(list(x[:2]), 75, "png"))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert made == [CPU_ONLY]
    assert ne.get_encoder(CPU_ONLY) is enc
    assert list(ne.cached_encoders()) == [CPU_ONLY] and ne.cached_encoders()[CPU_ONLY] is enc
    assert all(r == first for r in results if len(r) == 4)


@needs_nvimgcodec
def test_bad_input_raises():
    x = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ImageError, match="uint8"):
        ne.encode_device(x.astype(np.float32), 75)
    with pytest.raises(ImageError, match="image 1: jpeg takes 1 or 3 channels, got 4"):
        ne.encode_device([x[0], np.zeros((8, 8, 4), np.uint8)], 75)
    with pytest.raises(ImageError, match="channels, got 2"):
        ne.encode_device(np.zeros((1, 8, 8, 2), np.uint8), 75, "png")
    with pytest.raises(ImageError, match=r"\(N,H,W,C\)"):
        ne.encode_device(x[0], 75)
    with pytest.raises(ImageError, match="empty"):
        ne.encode_device([], 75)
    with pytest.raises(ImageError, match="empty"):
        ne.encode_device(x[:0], 75)
    with pytest.raises(ImageError, match="height 0"):
        ne.encode_device([np.zeros((0, 8, 3), np.uint8)], 75)
    with pytest.raises(ImageError, match="NumPy"):
        ne.encode_device([[1, 2, 3]], 75)
    for q in (0, 101, True, 7.5, "75"):
        with pytest.raises(MediaError, match="quality"):
            ne.encode_device(x, q)
    with pytest.raises(MediaError, match="file_type"):
        ne.encode_device(x, 75, "gif")
    with pytest.raises(MediaError, match="compression_level"):
        ne.encode_device(x, 75, "png", compression_level=10)
    for dev in (-5, "cpu", 1.0, True):
        with pytest.raises(MediaError, match="device_id"):
            ne.encode_device(x, 75, device_id=dev)


@needs_nvimgcodec
def test_cpu_only_is_quiet_on_stderr():
    """No notices about optional libraries, no per-image 'Unable to get device count' errors."""
    code = ("import numpy as np; from gpu_media.cuda import nvimgcodec as ne; "
            "x = np.zeros((6, 16, 16, 3), np.uint8); "
            "assert len(ne.encode_device(x, 75)) == 6; assert len(ne.encode_device(x, 75, 'png')) == 6")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "PYNVIMGCODEC_VERBOSITY"}
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def _fresh(monkeypatch, x, *args, **kwargs):
    """``ne.encode_device`` with new output code streams (no reuse), the reference bytes."""
    with monkeypatch.context() as m:
        m.setattr(ne, "REUSE_OUTPUTS", False)
        return ne.encode_device(x, *args, **kwargs)


@needs_nvimgcodec
def test_cpu_only_reused_output_streams_give_the_same_bytes(monkeypatch):
    monkeypatch.setattr(ne, "_outputs", {})
    x = photos()
    big = _fresh(monkeypatch, x, 90)
    small = _fresh(monkeypatch, list(x[:3, :40, :50]), 75)
    assert ne.encode_device(x[:2, :16, :16], 50) == _fresh(monkeypatch, x[:2, :16, :16], 50)  # buffers grow
    kept = list(ne._outputs[CPU_ONLY])
    assert len(kept) == 2
    assert ne.encode_device(x, 90) == big  # 8 images: the 2 kept streams reused, 6 more made
    assert ne.encode_device(list(x[:3, :40, :50]), 75) == small  # larger buffers, shorter files
    assert ne.encode_device(x, 90) == big
    assert ne._outputs[CPU_ONLY][:2] == kept and len(ne._outputs[CPU_ONLY]) == 8
    gray = [x[0, :, :, 0], x[1]]  # two channel counts: two encoder calls over the same streams
    assert ne.encode_device(gray, 80) == _fresh(monkeypatch, gray, 80)
    monkeypatch.setattr(ne, "MAX_OUTPUTS", 3)
    monkeypatch.setattr(ne, "_outputs", {})
    assert ne.encode_device(x, 90) == big and len(ne._outputs[CPU_ONLY]) == 3


@needs_nvimgcodec
@pytest.mark.parametrize("broken", ["code_stream", "encode"])
def test_cpu_only_output_reuse_that_fails_falls_back_for_good(monkeypatch, broken):
    nvimgcodec = ne.load()
    x = photos()[:3]
    ref = _fresh(monkeypatch, x, 75)
    monkeypatch.setattr(ne, "_outputs", {})
    monkeypatch.setattr(ne, "_encoders", {})
    calls = []
    if broken == "code_stream":
        def no_streams(*args, **kwargs):
            raise RuntimeError("no page-locked memory")

        monkeypatch.setattr(nvimgcodec, "CodeStream", no_streams)
    else:
        enc = ne.get_encoder(CPU_ONLY)

        class Refusing:
            def encode(self, imgs, codec, **kwargs):
                calls.append("code_stream_s" in kwargs)
                if "code_stream_s" in kwargs:
                    raise TypeError("code_stream_s is not supported")
                return enc.encode(imgs, codec, **kwargs)

        ne._encoders[CPU_ONLY] = (Refusing(), threading.Lock())
    assert ne.encode_device(x, 75) == ref
    assert ne._outputs[CPU_ONLY] is None
    assert ne.encode_device(x, 75) == ref
    if broken == "encode":
        assert calls == [True, False, False]  # tried once, then never again


# --- GPU: nvJPEG on CuPy arrays ---------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(GPU_REASON is not None, reason=str(GPU_REASON))
@pytest.mark.parametrize("quality", [75, 90])
def test_gpu_nvjpeg_from_cupy_batch(quality):
    import cupy

    x = photos()
    xd = cupy.asarray(x)
    out = ne.encode_device(xd, quality)  # device_id None: the array's GPU
    ref = cpu_fallback.encode(x, "jpg", quality)
    assert int(xd.device.id) in ne.cached_encoders()
    for a, b, r in zip(x, out, ref):
        fmt, mode, size, d = decode(b)
        assert (fmt, mode, size) == ("JPEG", "RGB", (256, 256))
        assert sampling(b) == 2
        assert psnr(d, a) > 30
        assert np.abs(d.astype(int) - decode(r)[3].astype(int)).mean() <= 2.0  # docs/SPEC.md 5


@pytest.mark.gpu
@pytest.mark.skipif(GPU_REASON is not None, reason=str(GPU_REASON))
def test_gpu_nvjpeg_grayscale_lists_streams_and_host_copies():
    import cupy

    x = photos()
    dev = cupy.cuda.Device().id
    g = cupy.asarray(x[:2, :, :, :1])
    for a, b in zip(x[:2, :, :, 0], ne.encode_device(g, 90)):
        fmt, mode, _, d = decode(b)
        assert (fmt, mode, d.shape) == ("JPEG", "L", (256, 256))
        assert psnr(d, a) > 30
    items = [cupy.asarray(x[0, :100, :37]), cupy.asarray(x[1, :, :, 2]), cupy.asarray(x[2, 5:, 3:])]
    out = ne.encode_device(items, 95)
    assert [decode(b)[1:3] for b in out] == [("RGB", (37, 100)), ("L", (256, 256)), ("RGB", (253, 251))]
    # produced on a non-default stream right before the encode: nvImageCodec must wait for it
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        flipped = cupy.ascontiguousarray(cupy.asarray(x)[:, :, ::-1]) + cupy.uint8(0)
        out = ne.encode_device(flipped, 90)
    for a, b in zip(x[:, :, ::-1], out):
        assert psnr(decode(b)[3], a) > 30
    # host arrays on a GPU encoder: copied once, same decode quality
    for a, b in zip(x[:2], ne.encode_device(x[:2], 90, device_id=dev)):
        assert psnr(decode(b)[3], a) > 30
    with pytest.raises(MediaError, match="CPU_ONLY"):
        ne.encode_device(cupy.asarray(x[:1]), 75, device_id=CPU_ONLY)
    with pytest.raises(ImageError, match="mixed"):
        ne.encode_device([x[0], cupy.asarray(x[1])], 75)
    enc = ne.get_encoder(dev)
    ne.encode_device(cupy.asarray(x[:2]), 75)
    assert ne.get_encoder(dev) is enc


@pytest.mark.gpu
@pytest.mark.skipif(GPU_REASON is not None, reason=str(GPU_REASON))
def test_gpu_reused_pinned_output_streams_give_the_same_bytes(monkeypatch):
    import cupy

    monkeypatch.setattr(ne, "_outputs", {})
    x = photos()
    dev = cupy.cuda.Device().id
    xd = cupy.asarray(x)
    small = cupy.asarray(x[:, :64, :80])
    ref_big, ref_small = _fresh(monkeypatch, xd, 75), _fresh(monkeypatch, small, 75)
    for _ in range(2):  # the streams grow on the first call and are reused on the next ones
        assert ne.encode_device(small, 75) == ref_small
        assert ne.encode_device(xd, 75) == ref_big
        assert ne.encode_device(small[:3], 75) == ref_small[:3]
    kept = ne._outputs[dev]
    assert kept is not None and len(kept) == len(x)
    assert all(cs.pin_memory for cs in kept)
