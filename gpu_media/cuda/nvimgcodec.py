"""nvImageCodec encoding (docs/SPEC.md 5): JPEG through nvJPEG on the GPU, and a CPU-only mode.

``encode_device(images, quality, file_type="jpeg", device_id=None)`` turns a batch of
uint8 images into one file's bytes per image with one cached
``nvimgcodec.Encoder`` per device (created on first use, reused, guarded by a lock).
It needs ``nvidia-nvimgcodec-cu13`` (``pip install ".[gpu]"``; the nvJPEG
library comes from its ``[nvjpeg]`` extra, package ``nvidia-nvjpeg``).

Devices (``device_id``):

- ``None`` (default): the GPU the images live on for CUDA arrays (CuPy, or anything
  with ``__cuda_array_interface__``), CPU-only for host (NumPy) arrays.
- an ``int`` >= 0: that GPU. Host inputs are copied to it first (needs CuPy).
- :data:`CPU_ONLY` (``nvimgcodec.NVIMGCODEC_DEVICE_CPU_ONLY``, -99999): nvImageCodec's
  CPU codecs only, for host arrays; works on machines without a GPU or CUDA driver.

What each mode encodes (nvImageCodec 0.9, checked in ``tests/test_nvimgcodec.py``); the
codecs, their spellings and channel counts are the codec table's (``gpu_media.codecs``), so
formats nvImageCodec has but gpu_media does not offer (TIFF, JPEG 2000) are refused:

=========  ==============================================  ======================
codec      CPU-only (host arrays)                          GPU (CUDA arrays)
=========  ==============================================  ======================
``jpeg``   libjpeg-turbo: C=1 -> "L", C=3 -> "RGB", 4:2:0;   nvJPEG: C=1 -> "L",
           the same bytes as Pillow's ``quality=q``          C=3 -> "RGB", 4:2:0
``png``    OpenCV (built into the wheel): C=1/3/4, lossless  not promised
``bmp``    nvbmp: C=1/3/4 (RGBA with an alpha mask), lossless not promised
=========  ==============================================  ======================

JPEG follows Pillow's defaults (what ``cpu_fallback`` writes): ``quality`` 1..100 on
libjpeg's scale, 4:2:0 chroma subsampling for RGB at every quality, baseline,
standard (not optimized) Huffman tables; grayscale (C=1) is encoded as one
luminance plane (nvImageCodec's ``P_Y`` / ``CSS_GRAY``), so it decodes to mode "L",
never a 3-channel image. nvJPEG's bytes differ from libjpeg's; docs/SPEC.md 5 promises
decoded pixels within a mean absolute difference of 2.0 at quality 75 and above.
RGBA is not accepted for JPEG (``gpu_media.encode`` drops the alpha first).

nvImageCodec logs through ``PYNVIMGCODEC_VERBOSITY`` (read once, at import). Unless
the environment sets it, it is imported at verbosity 0: without a GPU its CPU-only
batches log an error per image ("Unable to get device count") although the images
encode fine, and failures surface here as exceptions anyway. The "Failed to load
<library>" notices it prints on import and when an encoder is created (nvJPEG2000 and
nvTIFF are optional and unused; nvJPEG is absent in CPU-only installs) are kept and
quoted in the error when a GPU encoder fails; anything else it prints is passed on. Set
``PYNVIMGCODEC_VERBOSITY=3`` to see nvImageCodec's own messages.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys
import tempfile
import threading

import numpy as np

from .. import codecs as _codecs
from ..errors import DeviceError, ImageError, MediaError

CPU_ONLY = -99999  # nvimgcodec.NVIMGCODEC_DEVICE_CPU_ONLY, usable without importing nvimgcodec
INSTALL_HINT = 'pip install ".[gpu]"'
#: ``file_type`` spelling -> nvImageCodec codec name, and that codec's channel counts; both from
#: the codec table (``gpu_media.codecs``): {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "bmp": "bmp"}.
CODECS = {spelling: c.nvimgcodec_name for c in _codecs.CODECS for spelling in c.spellings}
CHANNELS = {c.nvimgcodec_name: c.channels for c in _codecs.CODECS}
# What nvImageCodec prints (to fd 2, from C) when it loads its extensions and one of
# their libraries is missing: nvJPEG2000 and nvTIFF (optional, never used here), and
# nvJPEG (expected without the [nvjpeg] extra in CPU-only use). Kept in
# _state["notices"] and quoted when a GPU encoder fails, not printed.
_NOTICE_MARKS = ("Failed to load", "Note: If using nvImageCodec", "_ext] Failed to load")

_lock = threading.Lock()  # guards _state and encoder creation
_state: dict = {}  # "module": the nvimgcodec module, or "error": why it cannot be imported
_encoders: dict = {}  # device_id -> (nvimgcodec.Encoder, threading.Lock)
#: Reuse the encoder's output buffers: each encoder keeps up to :data:`MAX_OUTPUTS`
#: ``nvimgcodec.CodeStream`` objects (page-locked host memory on a GPU, where nvJPEG
#: copies the compressed bytes into them; plain memory CPU-only) and hands them to
#: ``Encoder.encode(code_stream_s=...)`` again on the next call, under the encoder's
#: lock; they grow to the largest file they held. The bytes returned are copies
#: (``bytes(code_stream)``), so a reused buffer never changes them. Set False to let
#: nvImageCodec allocate new code streams on every call (also what happens for good
#: once an encode with reused buffers fails).
REUSE_OUTPUTS = True
MAX_OUTPUTS = 1024
_outputs: dict = {}  # device_id -> list of nvimgcodec.CodeStream, used under that encoder's lock


@contextlib.contextmanager
def _filtered_stderr():
    """Capture file descriptor 2 (nvImageCodec's C code prints there): keep its notices, pass on the rest."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = []
            for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True):
                if any(m in line for m in _NOTICE_MARKS):
                    _state.setdefault("notices", []).append(line.strip())
                else:
                    rest.append(line)
            if rest:
                sys.stderr.write("".join(rest))
                sys.stderr.flush()


def _notices() -> str:
    lines = [ln for ln in _state.get("notices", [])
             if not ln.startswith("Note:") and not any(k in ln for k in ("nvjpeg2k", "nvtiff"))]
    return f"; nvImageCodec said: {' | '.join(lines)}" if lines else ""


def _cupy():
    try:
        import cupy
    except ImportError as exc:
        raise DeviceError(f"nvImageCodec on a GPU needs CuPy here ({exc}); {INSTALL_HINT}") from None
    return cupy


def load():
    """The ``nvidia.nvimgcodec`` module, imported once; :class:`DeviceError` naming the install if missing."""
    with _lock:
        return _load_locked()


def _load_locked():
    if "module" in _state:
        return _state["module"]
    if "error" in _state:
        raise DeviceError(_state["error"])
    unset = "PYNVIMGCODEC_VERBOSITY" not in os.environ
    if unset:
        os.environ["PYNVIMGCODEC_VERBOSITY"] = "0"  # read once by the import below
    try:
        with _filtered_stderr():  # its extensions print notices about optional libraries on import
            from nvidia import nvimgcodec

        nvimgcodec.QualityType.QUALITY  # noqa: B018 (the quality_type EncodeParams API used here; 0.9 tested)
    except Exception as exc:  # noqa: BLE001 (ImportError, OSError from its libraries, AttributeError)
        _state["error"] = (
            f"encoding with nvImageCodec needs the nvidia-nvimgcodec-cu13 package "
            f"({type(exc).__name__}: {exc}); {INSTALL_HINT}"
        )
        raise DeviceError(_state["error"]) from None
    finally:
        if unset:
            os.environ.pop("PYNVIMGCODEC_VERBOSITY", None)
    _state["module"] = nvimgcodec
    return nvimgcodec


def available() -> bool:
    """True when nvImageCodec can be imported (a GPU is not needed for :data:`CPU_ONLY`)."""
    try:
        load()
        return True
    except DeviceError:
        return False


def get_encoder(device_id: int = CPU_ONLY):
    """The cached ``nvimgcodec.Encoder`` for ``device_id`` (created on first use, then reused)."""
    return _encoder_and_lock(device_id)[0]


def cached_encoders() -> dict:
    """A copy of the cache: ``{device_id: nvimgcodec.Encoder}``."""
    with _lock:
        return {d: e for d, (e, _) in _encoders.items()}


def _encoder_and_lock(device_id: int):
    with _lock:
        entry = _encoders.get(device_id)
        if entry is not None:
            return entry
        nvimgcodec = _load_locked()
        try:
            with _filtered_stderr(), _cuda_device(device_id):
                enc = nvimgcodec.Encoder(device_id=device_id)
        except Exception as exc:  # noqa: BLE001 (RuntimeError from CUDA, DeviceError without CuPy, ...)
            where = "CPU-only" if device_id == CPU_ONLY else f"GPU {device_id}"
            raise DeviceError(f"nvImageCodec could not create an encoder on {where} "
                              f"({type(exc).__name__}: {exc}){_notices()}") from None
        entry = _encoders[device_id] = (enc, threading.Lock())
        return entry


@contextlib.contextmanager
def _cuda_device(device_id: int):
    if device_id < 0:
        yield
        return
    with _cupy().cuda.Device(device_id):
        yield


def _is_cuda(a) -> bool:
    return hasattr(a, "__cuda_array_interface__")


def _split(images):
    """``images`` -> list of (H,W,C) arrays (NumPy or CuPy views, no copies) and whether they are on a GPU."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ImageError("images: the batch is empty")
        items = list(images)
    else:
        if _is_cuda(images):
            images = _cupy().asarray(images)
        elif not isinstance(images, np.ndarray):
            raise ImageError(f"images: expected a uint8 (N,H,W,C) NumPy/CuPy array or a list of (H,W,C) arrays, "
                             f"got {type(images).__name__}")
        if images.ndim != 4:
            raise ImageError(f"images: expected a uint8 (N,H,W,C) batch, got shape {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise ImageError("images: the batch is empty")
        items = [images[i] for i in range(images.shape[0])]
        if str(images.dtype) == "uint8" and images.shape[1] and images.shape[2]:
            return items, _is_cuda(images)  # views of one checked batch: nothing to check per image
    out, gpu = [], None
    for i, a in enumerate(items):
        if _is_cuda(a):
            a = _cupy().asarray(a)
        elif not isinstance(a, np.ndarray):
            raise ImageError(f"image {i}: expected a NumPy or CuPy array, got {type(a).__name__}")
        if gpu is None:
            gpu = _is_cuda(a)
        elif gpu != _is_cuda(a):
            raise ImageError(f"image {i}: host and GPU arrays mixed in one batch")
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise ImageError(f"image {i}: expected (H,W,C) or (H,W), got shape {tuple(a.shape)}")
        if str(a.dtype) != "uint8":
            raise ImageError(f"image {i}: encode takes uint8 images, got {a.dtype} (call normalize first)")
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise ImageError(f"image {i}: image of height {a.shape[0]} and width {a.shape[1]}: both must be at least 1")
        out.append(a)
    return out, bool(gpu)


def _check_args(file_type, quality, compression_level) -> str:
    codec = _codecs.lookup(file_type).nvimgcodec_name  # MediaError naming the spellings of the table
    if not isinstance(quality, numbers.Integral) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise MediaError(f"quality must be an integer from 1 to 100, got {quality!r}")
    if compression_level is not None and (
        not isinstance(compression_level, numbers.Integral) or isinstance(compression_level, bool)
        or not 0 <= compression_level <= 9
    ):
        raise MediaError(f"compression_level must be None or an integer from 0 to 9, got {compression_level!r}")
    return codec


def _params(nvimgcodec, codec: str, quality: int, channels: int, compression_level):
    if codec == "jpeg":  # Pillow's defaults: 4:2:0 at every quality, baseline, standard Huffman tables
        css = nvimgcodec.ChromaSubsampling.CSS_GRAY if channels == 1 else nvimgcodec.ChromaSubsampling.CSS_420
        return nvimgcodec.EncodeParams(
            quality_type=nvimgcodec.QualityType.QUALITY, quality_value=float(quality), chroma_subsampling=css,
            jpeg_encode_params=nvimgcodec.JpegEncodeParams(progressive=False, optimized_huffman=False))
    if codec == "png" and compression_level is not None:
        return nvimgcodec.EncodeParams(quality_type=nvimgcodec.QualityType.LOSSLESS,
                                       quality_value=float(compression_level))
    return nvimgcodec.EncodeParams(quality_type=nvimgcodec.QualityType.LOSSLESS)


def encode_device(images, quality: int = 75, file_type: str = "jpeg", device_id: int | None = None, *,
                  compression_level: int | None = None) -> list:
    """Encode a batch of uint8 images with nvImageCodec, one file's ``bytes`` per image.

    Args:
        images: uint8 ``(N,H,W,C)`` (a CuPy array on the GPU, or a NumPy array), or
            a list of ``(H,W,C)``/``(H,W)`` arrays (sizes may differ; all on the host
            or all on a GPU). C in {1, 3} for JPEG, {1, 3, 4} for PNG/BMP.
        quality: JPEG quality 1..100 (libjpeg's scale, Pillow's default 75).
        file_type: "jpeg"/"jpg" (default), "png" or "bmp" (the spellings of ``gpu_media.codecs``).
        device_id: ``None``, a GPU index or :data:`CPU_ONLY` (see the module docstring).
        compression_level: PNG zlib level 0..9 (``None``: nvImageCodec's default).

    Returns:
        ``list[bytes]`` in batch order. JPEG decodes to mode "L" (C=1) or "RGB" (C=3)
        with 4:2:0 chroma; PNG/BMP decode to exactly the input.

    Raises:
        gpu_media.ImageError: not uint8, a bad shape, a channel count the codec lacks.
        gpu_media.MediaError: a bad ``file_type``/``quality``/``compression_level``/``device_id``.
        gpu_media.DeviceError: nvImageCodec missing (install ``pip install ".[gpu]"``), an
            encoder that cannot be created, or an image nvImageCodec failed to encode.
    """
    codec = _check_args(file_type, quality, compression_level)
    items, on_gpu = _split(images)
    for i, a in enumerate(items):
        if a.shape[2] not in CHANNELS[codec]:
            raise ImageError(f"image {i}: {codec} takes {' or '.join(map(str, CHANNELS[codec]))} channels, "
                             f"got {a.shape[2]}" + (" (drop the alpha first)" if codec == "jpeg" else ""))
    if device_id is not None and (not isinstance(device_id, numbers.Integral) or isinstance(device_id, bool)
                                  or not (device_id >= 0 or device_id == CPU_ONLY)):
        raise MediaError(f"device_id must be None, a GPU index >= 0 or CPU_ONLY ({CPU_ONLY}), got {device_id!r}")
    nvimgcodec = load()
    stream = 0
    if on_gpu:
        devices = {int(a.device.id) for a in items}
        if device_id is None:
            if len(devices) > 1:
                raise MediaError(f"images live on GPUs {sorted(devices)}: pass one batch per GPU")
            device_id = devices.pop()
        elif device_id == CPU_ONLY:
            raise MediaError("device_id=CPU_ONLY takes host (NumPy) arrays; these images are on a GPU")
        elif devices != {device_id}:
            raise MediaError(f"images live on GPU {sorted(devices)}, not on device_id={device_id}")
    elif device_id is None:
        device_id = CPU_ONLY
    elif device_id != CPU_ONLY:  # host images for a GPU encoder: one copy to that device
        cupy = _cupy()
        with cupy.cuda.Device(device_id):
            items = [cupy.asarray(a) for a in items]
        on_gpu = True
    enc, enc_lock = _encoder_and_lock(int(device_id))
    if on_gpu:
        xp = _cupy()
        stream = xp.cuda.get_current_stream().ptr
    else:
        xp = np
    out: list = [None] * len(items)
    by_channels: dict = {}
    for i, a in enumerate(items):
        by_channels.setdefault(int(a.shape[2]), []).append(i)
    with enc_lock, _cuda_device(int(device_id)):
        for channels, idx in by_channels.items():
            imgs = []
            for i in idx:
                a = items[i] if items[i].flags.c_contiguous else xp.ascontiguousarray(items[i])
                if channels == 1:  # one luminance plane: JPEG "L", never 3 channels
                    imgs.append(nvimgcodec.as_image(a[:, :, 0], stream, sample_format=nvimgcodec.SampleFormat.P_Y,
                                                    color_spec=nvimgcodec.ColorSpec.GRAY))
                else:
                    imgs.append(nvimgcodec.as_image(a, stream))
            params = _params(nvimgcodec, codec, int(quality), channels, compression_level)
            streams = _encode_reusing(nvimgcodec, enc, int(device_id), imgs, codec, params, stream)
            for i, cs in zip(idx, streams):
                if cs is None:
                    where = "CPU-only" if device_id == CPU_ONLY else f"GPU {device_id}"
                    raise DeviceError(f"image {i}: nvImageCodec could not encode it as {codec} on {where} "
                                      f"(shape {tuple(items[i].shape)}); PYNVIMGCODEC_VERBOSITY=3 shows its log"
                                      + ("" if device_id == CPU_ONLY else _notices()))
                out[i] = bytes(cs)
    return out


def _encode_reusing(nvimgcodec, enc, device_id: int, imgs: list, codec: str, params, stream: int) -> list:
    """``enc.encode(imgs, ...)`` into the encoder's reused output code streams (:data:`REUSE_OUTPUTS`).

    Called under the encoder's lock. Falls back to nvImageCodec's own new code
    streams, for this call and the rest of the process on this device, when the
    reused ones cannot be made or the encode with them raises or fails an image.
    """
    outs = _reused_outputs(nvimgcodec, device_id, len(imgs)) if REUSE_OUTPUTS else None
    if outs is None:
        return enc.encode(imgs, codec, params=params, cuda_stream=stream)
    try:
        streams = enc.encode(imgs, codec, code_stream_s=outs, params=params, cuda_stream=stream)
        if streams is not None and len(streams) == len(imgs) and all(cs is not None for cs in streams):
            return streams
    except Exception:  # noqa: BLE001 - any failure here: the plain call below, which reports errors
        streams = None
    plain = enc.encode(imgs, codec, params=params, cuda_stream=stream)
    if streams is None or all(cs is not None for cs in plain):  # the reuse failed, not an image: not again
        _outputs[device_id] = None
    return plain


def _reused_outputs(nvimgcodec, device_id: int, n: int) -> list | None:
    """``n`` output code streams for the encoder of ``device_id``, or None where reuse is off for the device.

    Its kept ones first, then new ones (kept up to :data:`MAX_OUTPUTS`). Called under the encoder's lock.
    """
    kept = _outputs.setdefault(device_id, [])
    if kept is None:
        return None
    try:
        while len(kept) < min(n, MAX_OUTPUTS):
            kept.append(nvimgcodec.CodeStream(0, pin_memory=device_id != CPU_ONLY))
        extra = [nvimgcodec.CodeStream(0, pin_memory=device_id != CPU_ONLY) for _ in range(n - len(kept))]
    except Exception:  # noqa: BLE001 - no page-locked memory, an older nvImageCodec: new streams per call
        _outputs[device_id] = None
        return None
    return kept[:n] + extra
