"""Reading image files in batches with NVIDIA DALI (the ``dali`` extra), decoded on the GPU.

``gpu-media dump IMAGES_DIR OUT_DIR --coco ... --device gpu`` uses this reader when
DALI is installed: the encoded files are read on the host (they are bytes on disk),
decoded by nvJPEG inside DALI's ``decoders.image(device="mixed")``, and the decoded
pixels stay on the GPU through normalization, masks, boxes and encoding. Without
DALI the COCO path decodes with Pillow (``gpu_media.formats.coco.read_image``).

DALI's outputs (``TensorGPU``, ``TensorListGPU`` and their CPU twins) are also
accepted directly by every public function (``gpu_media._arrays``); this module is
only about files.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import DeviceError, MediaError

DALI_EXTRA = 'pip install ".[dali]"'
_lock = threading.Lock()
_pipes: dict = {}


def available() -> bool:
    """True when ``nvidia.dali`` imports."""
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def _pipeline(batch_size: int, device: str, device_id):
    """One DALI pipeline per (batch size, device), built once and reused."""
    key = (batch_size, device, device_id)
    with _lock:
        if key in _pipes:
            return _pipes[key]
        from nvidia.dali import fn, pipeline_def, types

        @pipeline_def(batch_size=batch_size, num_threads=4, device_id=device_id, prefetch_queue_depth=1)
        def decode_pipe():
            encoded = fn.external_source(name="encoded", device="cpu", dtype=types.UINT8, ndim=1)
            # adjust_orientation=False: COCO coordinates refer to the stored pixels (as the Pillow reader)
            return fn.decoders.image(encoded, device="mixed" if device == "gpu" else "cpu",
                                     output_type=types.RGB, adjust_orientation=False)

        pipe = decode_pipe()
        pipe.build()
        _pipes[key] = pipe
        return pipe


def read_files(paths: list, *, device: str = "gpu", device_id: int = 0, max_batch: int = 64) -> list:
    """Decode image files to uint8 ``(H, W, 3)`` RGB arrays with DALI.

    Args:
        paths: image files (JPEG, PNG, BMP, TIFF, ... as DALI's ``decoders.image``).
        device: "gpu" decodes with nvJPEG (``device="mixed"``) and returns CuPy
            arrays on the current device; "cpu" decodes on the host (NumPy arrays;
            used to test the reader on machines without a GPU).
        device_id: the CUDA device (ignored for "cpu").
        max_batch: files per DALI run (the pipeline's batch size).

    Returns:
        a list of arrays, one per path, each a copy the caller owns (DALI reuses its
        output buffers on the next run).

    Raises:
        gpu_media.DeviceError: DALI is not installed (``pip install ".[dali]"``).
        gpu_media.MediaError: a file cannot be read or decoded (naming it).
    """
    if not available():
        raise DeviceError(f"reading images with DALI needs NVIDIA DALI: {DALI_EXTRA}")
    pipe = _pipeline(max_batch, device, device_id if device == "gpu" else None)
    out = []
    for lo in range(0, len(paths), max_batch):
        part = paths[lo : lo + max_batch]
        data = []
        for p in part:
            try:
                data.append(np.fromfile(p, dtype=np.uint8))
            except OSError as exc:
                raise MediaError(f"{p!r}: cannot read ({exc.strerror or exc})") from None
        with _lock:
            pipe.feed_input("encoded", data)
            try:
                (decoded,) = pipe.run()
            except (RuntimeError, IndexError) as exc:
                _pipes.pop((max_batch, device, device_id if device == "gpu" else None), None)  # DALI: no longer valid
                raise MediaError(f"DALI could not decode one of {part!r}: {str(exc).splitlines()[0]}") from None
            out.extend(_own(decoded, device))
    return out


def _own(tensor_list, device: str) -> list:
    """Per-sample copies of a DALI TensorList (device-to-device for GPU outputs)."""
    if device == "gpu":
        import cupy

        return [cupy.array(cupy.asarray(tensor_list[i]), copy=True) for i in range(len(tensor_list))]
    return [np.array(tensor_list.at(i), copy=True) for i in range(len(tensor_list))]


def reader_or_none():
    """The COCO reader for ``--device gpu``: DALI on the GPU when installed, else None (Pillow)."""
    if not available():
        return None
    import cupy

    dev = cupy.cuda.Device().id

    def read(images):
        return read_files([im.path for im in images], device="gpu", device_id=dev)

    return read
