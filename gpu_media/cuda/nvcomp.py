"""Raw deflate on the GPU with nvCOMP, one stream per image (docs/SPEC.md 5, PNG on the GPU).

``nvidia-nvcomp-cu13`` (nvCOMP 5.3 or 6.x, part of ``pip install ".[gpu]"``;
``nvidia-nvcomp-cu12`` in ``pip install ".[gpu-cu12]"``) is imported on first use, never at
import time: :func:`available` says whether it imports. Both Python APIs are spoken
(:func:`api`): pip installs 5.3 next to DALI 2.x (which pins libnvcomp 5.3) and 6.x
elsewhere. nvCOMP 6 wraps one buffer carved by an offset table as a ``BatchArray``
(``as_arrays(buffer, offsets, sizes)``) and returns one from ``encode``
(``buffer_sizes``, indexing); nvCOMP 5 takes and returns lists of ``Array``
(``as_arrays([view, ...])``, each output's ``buffer_size``). The
GPU PNG encoder (:func:`gpu_media.cuda.backend.encode`) hands :func:`deflate` the
filtered rows of a batch, one image per entry, and gets back where each image's
compressed bytes lie on the device; it then copies them to pinned host memory and
builds the files with :mod:`gpu_media.png`.

nvCOMP is called as the H100 feasibility run did (``nvcomp.Codec(algorithm="Deflate",
bitstream_kind=nvcomp.BitstreamKind.RAW, algorithm_type=..., uncomp_chunk_size=<one
image>)``, ``codec.encode(nvcomp.as_arrays(...))``): with RAW and one chunk per image
each output is one complete raw deflate stream (RFC 1951), which ``zlib.decompress(data,
-15)`` inflates and which can therefore sit inside a PNG's zlib stream.

``compression_level`` -> nvCOMP's Deflate ``algorithm_type`` (:data:`ALGORITHM_TYPES`;
nvCOMP's types: 0 entropy-only, highest throughput; 1 high throughput, low ratio; 2
medium, "beats zlib level 1"; 4 lower throughput, "beats zlib level 6"; 5 lowest
throughput, highest ratio). On the filtered rows of 512x512 photographs (H100, the
2026-11-22 sweep) type 0 gave files 1.08x Pillow level 6 at about 14,800 images/s, type
1 1.13x at 1,700 (so it is never chosen: type 0 is both faster and smaller), type 2
1.01x at 1,100, type 4 about 0.98x at 235. None (the default) and 0..3 -> 0;
4..6 -> 2; 7..9 -> 4. Level 0 does not mean "stored" here: nvCOMP has no stored mode
and type 0 is the fastest it has.

A ``Codec`` must not be shared between threads (nvCOMP's documented thread-safety), so
codecs are cached per (thread, device, stream, algorithm type, image size).
"""

from __future__ import annotations

import threading

from ..errors import DeviceError

INSTALL_HINT = 'pip install ".[gpu]" (nvidia-nvcomp-cu13; CUDA 12: ".[gpu-cu12]")'
#: nvCOMP's largest uncompressed Deflate chunk (``nvcompDeflateCompressionMaxAllowedChunkSize``, 2^31
#: bytes): an image whose filtered rows are larger is encoded on the host (one chunk per image here)
MAX_CHUNK_BYTES = 1 << 31
#: bytes of filtered rows handed to one nvCOMP call at most (its output buffers take about as much
#: again): the whole batch in one call where it fits, as a call costs about the same for 64 or 256
#: whole-image chunks (H100, 2026-11-22: ~17 ms), see :func:`part_images`
PART_BYTES = 1 << 30
ALGORITHM_TYPES = {None: 0, 0: 0, 1: 0, 2: 0, 3: 0, 4: 2, 5: 2, 6: 2, 7: 4, 8: 4, 9: 4}
ALIGN = 16  # bytes between image starts in the batch buffer (nvCOMP: "if in doubt, use 16B alignment")
_CACHE_PER_THREAD = 8

_lock = threading.Lock()
_state: dict = {}  # "module": nvidia.nvcomp, or "error": why it does not import
_local = threading.local()


def algorithm_type(compression_level) -> int:
    """The nvCOMP Deflate ``algorithm_type`` for a PNG ``compression_level`` (None or 0..9)."""
    return ALGORITHM_TYPES[None if compression_level is None else int(compression_level)]


def load():
    """The ``nvidia.nvcomp`` module, imported once.

    Raises:
        gpu_media.DeviceError: it is not installed or does not import (the reason and
            :data:`INSTALL_HINT` in the message).
    """
    with _lock:
        if "module" not in _state and "error" not in _state:
            try:
                from nvidia import nvcomp

                _state["module"] = nvcomp
            except Exception as exc:  # noqa: BLE001 - ImportError, or a library that fails to load
                _state["error"] = f"{type(exc).__name__}: {exc}"
    if "module" in _state:
        return _state["module"]
    raise DeviceError(f"nvCOMP is not available ({_state['error']}); {INSTALL_HINT}")


def available() -> bool:
    """Whether ``nvidia.nvcomp`` imports (does not touch a GPU)."""
    try:
        load()
        return True
    except DeviceError:
        return False


def api() -> int:
    """The nvCOMP Python API in use: 6 (``BatchArray``) or 5 (lists of ``Array``); imports nvCOMP (see :func:`load`)."""
    return 6 if hasattr(load(), "BatchArray") else 5


def part_images(n: int, per: int, budget: int = PART_BYTES) -> int:
    """Images per nvCOMP call for ``n`` images of ``per`` bytes of filtered rows: all of them, up to ``budget`` bytes.

    Args:
        n: images of one shape in the batch (>= 1).
        per: filtered-row bytes of one image (its nvCOMP chunk).
        budget: bytes of input one call may take (:data:`PART_BYTES`, or less where device memory is short).

    Returns:
        the part size in images, at least 1 and at most ``n``.

    Examples:
        >>> part_images(256, 512 * (1 + 512 * 3))  # 256 photographs of 512x512 RGB: one call
        256
        >>> part_images(1000, 4 << 20, budget=1 << 30)  # 4 MiB each, 1 GiB per call
        256
        >>> part_images(3, 3 << 30)
        1
    """
    return int(max(1, min(n, budget // max(1, stride(per)))))


def stride(per: int) -> int:
    """Bytes from one image's rows to the next in the batch buffer: ``per`` rounded up to :data:`ALIGN`."""
    return -(-int(per) // ALIGN) * ALIGN


def codec(device_id: int, stream_ptr: int, algo: int, per: int):
    """This thread's ``nvcomp.Codec`` for raw deflate of ``per``-byte images at ``algo``."""
    nvcomp = load()
    cache = getattr(_local, "codecs", None)
    if cache is None:
        cache = _local.codecs = {}
    key = (device_id, stream_ptr, algo, per)
    c = cache.get(key)
    if c is None:
        if len(cache) >= _CACHE_PER_THREAD:
            cache.pop(next(iter(cache)))
        c = cache[key] = nvcomp.Codec(algorithm="Deflate", bitstream_kind=nvcomp.BitstreamKind.RAW,
                                      algorithm_type=algo, uncomp_chunk_size=per, device_id=device_id,
                                      cuda_stream=stream_ptr)
    return c


def deflate(buffer, n: int, per: int, algo: int, *, device_id: int, stream_ptr: int):
    """Compress ``n`` images of ``per`` bytes, image i at byte ``i * stride(per)`` of ``buffer``.

    Args:
        buffer: a device array (``__cuda_array_interface__``) of at least
            ``n * stride(per)`` bytes, written by work on ``stream_ptr``.
        n: the number of images (> 0).
        per: the uncompressed size of each image in bytes (> 0).
        algo: nvCOMP Deflate ``algorithm_type`` (see :func:`algorithm_type`).
        device_id: the CUDA device the compression runs on.
        stream_ptr: the CUDA stream (an integer ``cudaStream_t``) the compression runs on.

    Returns:
        ``(keep, pointers, sizes)``: ``keep`` holds nvCOMP's output alive; image i's
        raw deflate stream is ``sizes[i]`` bytes at device address ``pointers[i]``.
        Reading the sizes waits for the compression to finish.

    Raises:
        gpu_media.DeviceError: nvCOMP is missing, ``per`` exceeds :data:`MAX_CHUNK_BYTES`, or
            nvCOMP failed (its message quoted).
    """
    nvcomp = load()
    step = stride(per)
    if per > MAX_CHUNK_BYTES:
        raise DeviceError(f"nvCOMP Deflate takes chunks of at most {MAX_CHUNK_BYTES} bytes, an image here has {per}")
    try:
        flat = buffer.reshape(-1) if hasattr(buffer, "reshape") else buffer
        offsets = [i * step for i in range(n)]
        if hasattr(nvcomp, "BatchArray"):  # nvCOMP 6: one buffer, an offset table; a BatchArray back
            src = nvcomp.as_arrays(flat, offsets, [per] * n, cuda_stream=stream_ptr)
            out = codec(device_id, stream_ptr, algo, per).encode(src)
            sizes = [int(s) for s in out.buffer_sizes]  # waits for the compression
            pointers = [int(out[i].__cuda_array_interface__["data"][0]) for i in range(n)]
        else:  # nvCOMP 5: a list of views in, a list of Arrays out
            src = nvcomp.as_arrays([flat[o : o + per] for o in offsets], cuda_stream=stream_ptr)
            out = codec(device_id, stream_ptr, algo, per).encode(src)
            sizes = [int(a.buffer_size) for a in out]  # waits for the compression
            pointers = [int(a.__cuda_array_interface__["data"][0]) for a in out]
        if len(sizes) != n or len(pointers) != n:
            raise RuntimeError(f"{len(sizes)} outputs for {n} images")
    except DeviceError:
        raise
    except Exception as exc:
        raise DeviceError(f"nvCOMP Deflate failed ({type(exc).__name__}: {exc})") from exc
    return (src, out), pointers, sizes
