"""The CuPy backend of gpu_media: docs/SPEC.md 2-5 on the GPU, identical to ``cpu_fallback``.

Satisfies :class:`gpu_media.backend.Backend` (``normalize``, ``mask_stats``, ``confusion``,
``draw_outlines``, ``encode``, ``to_host``, ``chunk_bytes``, ``name``, ``xp``) and holds
the codec table's GPU encoders (:func:`encode_jpeg`, :func:`encode_png`,
:func:`encode_on_host`). ``gpu_media.backend`` imports
this module only once CuPy and a CUDA device are known to work; nothing else imports
it, so ``import gpu_media`` never imports CuPy.

The per-pixel work runs in the kernels of ``gpu_media/cuda/src/kernels.cu``: loaded from
the fatbin shipped beside it (nvcc, sm_80/86/89/90/100 + PTX, ``scripts/build_kernels.py``)
or, when that is stale or does not load, compiled once per device with NVRTC through
:class:`cupy.RawModule`; both with ``--fmad=false``, so every float operation is
rounded as NumPy rounds it. They are driven by
:mod:`gpu_media.cuda.kernels`. Every launch, allocation and copy goes to CuPy's
current stream (``cupy.cuda.get_current_stream()``); arrays come in as CuPy arrays (the
dispatcher has already taken PyTorch, DLPack and ``__cuda_array_interface__`` inputs
without a copy) and results stay on the device until :func:`to_host` or
:func:`encode`.
"""

from __future__ import annotations

import collections
import threading
import warnings

import cupy
import numpy as np

import cpu_fallback

# the CPU backend's encode threads also assemble the GPU's PNG files
from cpu_fallback.encode import executor as _encode_pool

from .. import codecs
from .. import png as _png
from . import kernels as _k

name = "gpu"
xp = cupy

_lock = threading.Lock()
_modules: dict = {}  # device id -> cupy.RawModule
_functions: dict = {}  # (device id, kernel name) -> cupy.RawKernel
_jpeg_state: dict = {}
_png_state: dict = {}
_host_fallbacks: collections.Counter = collections.Counter()  # host_fallbacks()

CHUNK_MIN = 16 << 20  # chunk_bytes() bounds
CHUNK_MAX = 1 << 30


def _load_fatbin():
    """The shipped precompiled kernels (``src/kernels.fatbin``) loaded on the current device, or None.

    None when the fatbin is missing or stale (its stamp's digest differs from the
    sources: see ``scripts/build_kernels.py``), when ``GPU_MEDIA_KERNELS=nvrtc`` asks
    for a compile, or when the driver cannot load it (no code for this GPU and no
    usable PTX). Loading a function forces the module load, so failures show here.
    """
    import os

    path = _k.fatbin_path()
    if path is None or os.environ.get("GPU_MEDIA_KERNELS", "").lower() == "nvrtc":
        return None
    try:
        mod = cupy.RawModule(path=path)
        mod.get_function(_k.kernel_names()[0])
        return mod
    except Exception:  # noqa: BLE001 - cupy's CUDADriverError and friends: compile instead
        return None


def _compile_nvrtc():
    """kernels.cu compiled for the current device with NVRTC (CuPy caches the binary on disk)."""
    return cupy.RawModule(code=_k.source(), options=_k.NVRTC_OPTIONS + (f"-I{_k.KERNEL_DIR}",))


def _module():
    """The kernels of the current device: the shipped fatbin, else compiled by NVRTC; loaded once, then cached."""
    dev = cupy.cuda.Device().id
    mod = _modules.get(dev)
    if mod is None:
        with _lock:
            mod = _modules.get(dev)
            if mod is None:
                mod = _load_fatbin() or _compile_nvrtc()
                _modules[dev] = mod
    return mod


def _launch(kernel: str, blocks: int, args) -> None:
    """Start ``kernel`` on ``blocks`` x :data:`cuda_kernels.BLOCK` threads, on the current stream."""
    key = (cupy.cuda.Device().id, kernel)
    fn = _functions.get(key)
    if fn is None:
        fn = _functions[key] = _module().get_function(kernel)
    fn((blocks,), (_k.BLOCK,), tuple(args))


_device_infos: dict = {}  # device id -> cuda_kernels.DeviceInfo


def _device_info():
    """SM count and L2 bytes of the current device (for the fused normalize kernel's plan), cached."""
    dev = cupy.cuda.Device().id
    info = _device_infos.get(dev)
    if info is None:
        props = cupy.cuda.runtime.getDeviceProperties(dev)
        info = _k.DeviceInfo(int(props.get("multiProcessorCount") or _k.DEFAULT_DEVICE.sms),
                             int(props.get("l2CacheSize") or _k.DEFAULT_DEVICE.l2_bytes))
        _device_infos[dev] = info
    return info


def normalize_method() -> str:
    """The docs/SPEC.md 2 conversion path: ``GPU_MEDIA_NORMALIZE`` ("two-pass" or "fused"), else the default.

    "two-pass" (the default: :data:`cuda_kernels.DEFAULT_NORMALIZE_METHOD`) reads the
    input twice (ranges, then conversion); "fused" is one kernel that reads each image
    about once from device memory (opt-in until a GPU run has checked it, see README).
    Raises ValueError on any other value (as ``GPU_MEDIA_DEVICE`` does).
    """
    import os

    method = os.environ.get("GPU_MEDIA_NORMALIZE", "").strip().lower() or _k.DEFAULT_NORMALIZE_METHOD
    if method not in _k.NORMALIZE_METHODS:
        raise ValueError(f"GPU_MEDIA_NORMALIZE must be one of {', '.join(_k.NORMALIZE_METHODS)}, got {method!r}")
    return method


def normalize(x, layout: str, normalize: bool = True):
    """(N,H,W,C) "NHWC" or (N,C,H,W) "NCHW" CuPy array of any supported dtype -> uint8 (N,H,W,C) CuPy.

    docs/SPEC.md 2, bit for bit as ``cpu_fallback.normalize``, by the path
    :func:`normalize_method` names: per-image ranges over finite values in one
    reduction over the batch, then one conversion pass ("two-pass"); or both in one
    kernel ("fused"). Raises ValueError on a bad ``GPU_MEDIA_NORMALIZE``.
    """
    method = normalize_method()
    return _k.normalize(cupy.asarray(x), layout, normalize, xp=cupy, launch=_launch, method=method,
                        device=_device_info() if method == "fused" else _k.DEFAULT_DEVICE)


def mask_stats(masks):
    """(N,H,W) CuPy masks -> (hist (N,256) int64, lo (N,), hi (N,), bad (N,) int64), CuPy arrays.

    docs/SPEC.md 3, as ``cpu_fallback.mask_stats`` (lo/hi in the mask's dtype, bool as uint8).
    """
    return _k.mask_stats(cupy.asarray(masks), xp=cupy, launch=_launch)


_confusion_lock = threading.Lock()
_confusion_kernel: list = []  # the ElementwiseKernel, made on first use


def confusion(gt, pred, num_classes: int):
    """(N,H,W) CuPy class-id masks -> (N, C, C) int64 CuPy confusion matrices, one per image.

    As ``cpu_fallback.confusion``: ``out[i, g, p]`` counts image i's pixels of
    ground-truth class g predicted as p; the masks are validated integers in [0, C)
    of any mask dtype. One kernel over the whole batch: each pixel adds 1 to its bin
    ``(i * C + g) * C + p`` with a 64-bit ``atomicAdd`` (a histogram of ``g * C + p``
    per image; counts are exact, so the result equals the CPU's bit for bit).
    """
    gt, pred = cupy.asarray(gt), cupy.asarray(pred)
    n, c = int(gt.shape[0]), int(num_classes)
    out = cupy.zeros((n, c, c), dtype=cupy.uint64)
    if gt.size:
        with _confusion_lock:
            if not _confusion_kernel:
                _confusion_kernel.append(cupy.ElementwiseKernel(
                    "T g, U p, int64 hw, int64 c", "raw uint64 out",
                    "atomicAdd(&out[((long long)(i / hw) * c + (long long)g) * c + (long long)p], "
                    "(unsigned long long)1)",
                    "gpu_media_confusion"))
            kernel = _confusion_kernel[0]
        kernel(gt, pred, np.int64(gt.size // max(n, 1)), np.int64(c), out)
    return out.view(cupy.int64)


def draw_outlines(images, rects, image_index, colors, thickness: int):
    """uint8 (N,H,W,C) CuPy images + host box arrays -> new uint8 (N,H,W,C') CuPy array (docs/SPEC.md 4).

    rects (M,4) int64 inclusive x0, y0, x1, y1; image_index (M,); colors (M,3) uint8;
    C=1 becomes RGB; the last box wins where outlines overlap; RGBA outline pixels get
    alpha 255. As ``cpu_fallback.draw_outlines``.
    """
    return _k.draw_outlines(cupy.asarray(images), rects, image_index, colors, thickness, xp=cupy, launch=_launch)


def to_host(x):
    """Any array of this backend (or a NumPy array) -> ``numpy.ndarray``."""
    if isinstance(x, cupy.ndarray):
        return cupy.asnumpy(x)
    return np.asarray(x)


def chunk_bytes() -> int:
    """Bytes of uint8 RGBA pixels that one dump chunk may hold on this device.

    A quarter of the device memory that is free now (CUDA's free memory plus the
    blocks CuPy's pool holds unused), kept within [16 MiB, 1 GiB]: a chunk's
    converted images, their drawn copies and the pinned host copy fit beside the
    caller's own tensors.
    """
    free, _total = cupy.cuda.Device().mem_info
    free += cupy.get_default_memory_pool().free_bytes()
    return int(max(CHUNK_MIN, min(free // 4, CHUNK_MAX)))


def _jpeg_encoder():
    """``gpu_media.cuda.nvimgcodec`` when nvImageCodec is installed and imports, else None."""
    if "module" not in _jpeg_state:
        try:
            from . import nvimgcodec as enc

            if not enc.available():
                enc = None
        except ImportError:
            enc = None
        _jpeg_state["module"] = enc
    return _jpeg_state["module"]


def _host_pinned(images):
    """uint8 CuPy (N,H,W,C) or a list of (H,W,C) -> NumPy arrays in page-locked host memory.

    One device-to-host copy for a batch (one per image for a list), on the current
    stream, which is synchronized before returning.
    """
    import cupyx

    if isinstance(images, np.ndarray):
        return images
    stream = cupy.cuda.get_current_stream()
    if isinstance(images, (list, tuple)):
        items = [cupy.ascontiguousarray(cupy.asarray(a)) for a in images]
        buf = cupyx.empty_pinned((sum(a.nbytes for a in items),), dtype=np.uint8)
        out, off = [], 0
        for a in items:
            view = buf[off : off + a.nbytes].view(a.dtype).reshape(a.shape)
            cupy.asnumpy(a, stream=stream, out=view)
            out.append(view)
            off += a.nbytes
    else:
        a = cupy.ascontiguousarray(cupy.asarray(images))
        out = cupyx.empty_pinned(a.shape, dtype=a.dtype)
        cupy.asnumpy(a, stream=stream, out=out)
    stream.synchronize()
    return out


def _png_encoder():
    """``gpu_media.cuda.nvcomp`` when nvCOMP is installed and imports, else None."""
    if "module" not in _png_state:
        from . import nvcomp as nd

        _png_state["module"] = nd if nd.available() else None
    return _png_state["module"]


def _fell_back(what: str, n: int, why: str) -> None:
    """Count ``n`` images of ``what`` ("PNG", "JPEG") encoded on the host after all, and warn (HostFallbackWarning)."""
    from ..errors import HostFallbackWarning

    with _lock:
        _host_fallbacks[what] += n
    warnings.warn(f"host fallback: {what}: {n} image(s) encoded on the host instead of the GPU: {why}",
                  HostFallbackWarning, stacklevel=5)


def host_fallbacks() -> dict:
    """Images encoded on the host by this process although the GPU encoder was meant to: ``{"PNG": n, "JPEG": n}``.

    Each one also raised a :class:`gpu_media.errors.HostFallbackWarning`. Not counted:
    the host path where nvCOMP or nvImageCodec is not installed (``gpu_media.gpu_status()``
    says so) and BMP, which has no device encoder.
    """
    with _lock:
        return dict(_host_fallbacks)


def _png_on_host(images, compression_level) -> list:
    return cpu_fallback.encode(_host_pinned(images), "png", 75, compression_level)


def _png_group(images, compression_level, nd) -> list:
    """uint8 CuPy (N,H,W,C), one shape -> PNG bytes per image, filtered and deflated on the device.

    ``gm_png_filter`` + ``gm_png_adler`` (src/png.cuh) write each image's filtered
    rows at a 16-byte aligned offset and their Adler-32, for the whole batch at once.
    Then, per part (:func:`gpu_media.cuda.nvcomp.part_images`: the whole batch, up to
    ``nvcomp.PART_BYTES`` and a quarter of free device memory): nvCOMP deflates each image
    as one raw stream, the compressed bytes come back into one pinned host buffer (one
    asynchronous copy per image on the current stream), and the files are assembled
    with their CRCs by :func:`gpu_media.png.assemble` in the encode thread pool while
    the device compresses the next part.

    An nvCOMP failure does not switch nvCOMP off (issue 17.5): a failed part is retried
    image by image, and an image that fails alone is encoded on the host (Pillow's
    bytes), as is an image larger than nvCOMP's largest chunk; each such image is
    counted (:func:`host_fallbacks`) and warned about (``HostFallbackWarning``).
    """
    import cupyx

    from ..errors import DeviceError

    images = cupy.ascontiguousarray(images)
    n, h, w, c = (int(v) for v in images.shape)
    per = h * (1 + w * c)
    if per > nd.MAX_CHUNK_BYTES:
        _fell_back("PNG", n, f"{per} bytes of filtered rows per image, over nvCOMP's largest chunk "
                             f"({nd.MAX_CHUNK_BYTES} bytes)")
        return _png_on_host(images, compression_level)
    stream = cupy.cuda.get_current_stream()
    filtered, adler = _k.png_rows(images, xp=cupy, launch=_launch, stride=nd.stride(per))
    adler_host = cupy.asnumpy(adler, stream=stream)  # waits for the filter kernels
    algo, device_id = nd.algorithm_type(compression_level), cupy.cuda.Device().id
    pool = _encode_pool() if n > 1 else None

    def compressed(lo, hi):
        """Images lo:hi deflated by nvCOMP, copied into one pinned buffer: (buffer, offsets)."""
        keep, pointers, sizes = nd.deflate(filtered[lo:hi], hi - lo, per, algo, device_id=device_id,
                                           stream_ptr=int(stream.ptr))
        offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        host = cupyx.empty_pinned((max(1, int(offsets[-1])),), dtype=np.uint8)
        base = host.ctypes.data
        for k in range(hi - lo):
            cupy.cuda.runtime.memcpyAsync(base + int(offsets[k]), pointers[k], sizes[k],
                                          cupy.cuda.runtime.memcpyDeviceToHost, stream.ptr)
        stream.synchronize()
        del keep
        return host, offsets

    def assemble(lo, host, offsets, k):
        return _png.assemble(w, h, c, host[offsets[k]:offsets[k + 1]], int(adler_host[lo + k]), compression_level)

    def submit(lo, host, offsets, count):
        if pool is None:
            out.extend(assemble(lo, host, offsets, k) for k in range(count))
        else:
            out.extend(pool.submit(assemble, lo, host, offsets, k) for k in range(count))

    out: list = []
    step = nd.part_images(n, per, min(nd.PART_BYTES, chunk_bytes()))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        try:
            submit(lo, *compressed(lo, hi), hi - lo)
            continue
        except DeviceError as exc:
            if hi - lo == 1:
                _fell_back("PNG", 1, f"nvCOMP failed on image {lo} of the call ({exc})")
                out.extend(_png_on_host(images[lo:hi], compression_level))
                continue
        for i in range(lo, hi):  # the part failed: image by image, the host for those that fail alone
            try:
                submit(i, *compressed(i, i + 1), 1)
            except DeviceError as exc:
                _fell_back("PNG", 1, f"nvCOMP failed on image {i} of the call ({exc})")
                out.extend(_png_on_host(images[i:i + 1], compression_level))
    return [f.result() if hasattr(f, "result") else f for f in out]


def _encode_png_device(images, compression_level, nd) -> list:
    """A batch, or a list of images of differing shapes (grouped by shape), -> PNG bytes in order."""
    if not isinstance(images, (list, tuple)):
        return _png_group(images, compression_level, nd)
    items = [cupy.asarray(a) for a in images]
    groups: dict = {}
    for i, a in enumerate(items):
        groups.setdefault(tuple(a.shape), []).append(i)
    out = [None] * len(items)
    for idx in groups.values():
        batch = items[idx[0]][None] if len(idx) == 1 else cupy.stack([items[i] for i in idx])
        for i, data in zip(idx, _png_group(batch, compression_level, nd)):
            out[i] = data
    return out


def encode_png(images, codec, quality: int, compression_level=None) -> list:
    """The codec table's GPU PNG encoder: uint8 CuPy (N,H,W,C) or a list of (H,W,C), C in {1,3,4} -> ``list[bytes]``.

    With nvCOMP installed (``nvidia-nvcomp-cu13``, in the ``gpu`` extra): the rows are
    filtered on the device (libpng's per-row choice among the five PNG filters), their
    Adler-32 summed there, each image deflated by nvCOMP as one raw stream
    (``compression_level`` -> nvCOMP algorithm type, see
    :data:`gpu_media.cuda.nvcomp.ALGORITHM_TYPES`), and the files assembled on the
    host (:mod:`gpu_media.png`): lossless like the CPU backend's (docs/SPEC.md 5), other bytes.
    Without nvCOMP: :func:`encode_on_host`, the CPU backend's bytes. An image nvCOMP fails
    on or cannot take, and a batch with rows longer than ``kernels.PNG_MAX_ROW`` bytes
    (16 MiB), are encoded on the host too, each with a ``HostFallbackWarning`` (and counted:
    :func:`host_fallbacks`); nvCOMP stays on for the next images.
    """
    nd = _png_encoder()
    if nd is None:
        return encode_on_host(images, codec, quality, compression_level)
    items = images if isinstance(images, (list, tuple)) else [images[0]] if len(images) else []
    wide = [1 + a.shape[1] * a.shape[2] for a in items if 1 + a.shape[1] * a.shape[2] > _k.PNG_MAX_ROW]
    if wide:
        _fell_back("PNG", len(images), f"rows of {max(wide)} bytes, over the filter kernel's {_k.PNG_MAX_ROW}")
        return encode_on_host(images, codec, quality, compression_level)
    return _encode_png_device(images, compression_level, nd)


def encode_jpeg(images, codec, quality: int, compression_level=None) -> list:
    """The codec table's GPU JPEG encoder: uint8 CuPy (N,H,W,C) or a list of (H,W,C), C in {1,3} -> ``list[bytes]``.

    nvJPEG on the device through ``gpu_media.cuda.nvimgcodec.encode_device`` when
    nvImageCodec is installed; without it (or when its GPU encoder fails, with one
    warning) :func:`encode_on_host`, the CPU backend's JPEG, whose decoded pixels
    docs/SPEC.md 5 holds to the same bound. ``codec``: the :class:`gpu_media.codecs.Codec`.

    The pixels never leave the device: the whole batch goes to one encoder call on
    the current stream (nvImageCodec waits for it; no synchronization per image
    here), and nvImageCodec itself copies each compressed file into host memory, its
    output code streams, which are reused from call to call (page-locked, see
    ``nvimgcodec_encode.REUSE_OUTPUTS``); the one host copy left is ``bytes()`` of
    each, the small compressed file.
    """
    enc = _jpeg_encoder()
    if enc is not None:
        from ..errors import DeviceError

        batch = images if isinstance(images, (list, tuple)) else cupy.ascontiguousarray(images)
        try:
            return list(enc.encode_device(batch, quality, codec.nvimgcodec_name))
        except DeviceError as exc:
            _jpeg_state["module"] = None
            _fell_back("JPEG", len(images), f"nvJPEG failed ({exc}); JPEG is encoded on the host from now on")
    return encode_on_host(images, codec, quality, compression_level)


def encode_on_host(images, codec, quality: int, compression_level=None) -> list:
    """The codec table's GPU encoder of the formats without a device encoder (PNG, BMP).

    One copy to pinned host memory, then ``cpu_fallback.encode`` (Pillow in a thread
    pool), so the bytes are the CPU backend's bytes.
    """
    return cpu_fallback.encode(_host_pinned(images), codec.name, quality, compression_level)


def encode(images, file_type: str, quality: int, compression_level=None):
    """uint8 CuPy (N,H,W,C) or a list of (H,W,C) -> ``list[bytes]`` (docs/SPEC.md 5).

    Dispatches through the codec table (``gpu_media.codecs``, its ``"gpu"`` entries):
    :func:`encode_jpeg` for "jpg"/"jpeg", :func:`encode_png` for "png" (nvCOMP on the
    device, else the host), :func:`encode_on_host` for "bmp".
    """
    codec = codecs.lookup(file_type)
    return codecs.encoder(codec.name, name)(images, codec, quality, compression_level)


__all__ = ["chunk_bytes", "confusion", "draw_outlines", "encode", "encode_jpeg", "encode_on_host", "encode_png",
           "host_fallbacks", "mask_stats", "name", "normalize", "to_host", "xp"]
