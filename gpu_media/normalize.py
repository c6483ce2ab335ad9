"""Stage 1: any image batch -> uint8 (N,H,W,C) by wandb's documented rules (docs/SPEC.md 1-2)."""

from __future__ import annotations

from typing import Any

from . import _arrays
from .backend import Backend, get_backend, resolve_device


def normalize(images: Any, *, layout: str | None = None, normalize: bool = True, device: str = "auto") -> Any:
    """Convert a batch of images to uint8, channel-last, one range rule per image.

    Args:
        images: one array ``(N,H,W)``, ``(N,H,W,C)`` or ``(N,C,H,W)``; a single
            image ``(H,W)``, ``(H,W,C)`` or ``(C,H,W)`` (a batch of one); or a list
            of single images of differing sizes. NumPy, CuPy, PyTorch (CPU/CUDA),
            anything with ``__dlpack__`` or ``__cuda_array_interface__``, and PIL
            images (taken as they are, never normalized). C is 1, 3 or 4. Dtypes:
            bool, all integer types, float16, float32, float64 (docs/SPEC.md 1).
        layout: "NHWC", "NCHW", "HWC", "CHW", "HW" or "NHW"; always wins. Without
            it PyTorch tensors are channel-first and everything else channel-last
            (wandb's rule); a 3-D array is one image when its channel axis has size
            1, 3 or 4, else an ``(N,H,W)`` batch.
        normalize: True applies docs/SPEC.md 2's table per image ([0,1] -> ``trunc(x*255)``,
            [-1,1] -> ``trunc((x+1)*127.5)``, else ``trunc(clip(x,0,255))``), with
            ranges over finite values; False is ``trunc(clip(x,0,255))``. NaN -> 0,
            +inf -> 255, -inf -> 0.
        device: "auto", "cpu" or "gpu" (see ``gpu_media.backend``; the environment
            variable ``GPU_MEDIA_DEVICE`` overrides "auto").

    Returns:
        uint8 ``(N,H,W,C)`` on the backend's device (NumPy for "cpu", CuPy for
        "gpu"), C in {1, 3, 4} (modes "L", "RGB", "RGBA"). When a list holds
        images of different shapes, a list of uint8 ``(H,W,C)`` arrays instead.

    Raises:
        gpu_media.ImageError: a shape, layout or dtype outside docs/SPEC.md 1, H or W of 0;
            the message names the batch index ("image 3: ...") or "images" for a
            batch array. A dtype is checked before the device is resolved and
            before any copy, so ``device="gpu"`` raises it too on a machine without
            a GPU. (Any larger size is accepted, as in wandb; only JPEG encoding
            limits H and W, to 65500: :func:`gpu_media.encode`.)
        gpu_media.DeviceError: device "gpu" without a usable GPU backend.

    Examples:
        A [0, 1] float image is scaled by 255 and truncated; an integer one in
        [0, 255] is kept as it is (docs/SPEC.md 2):

        >>> import numpy as np
        >>> from gpu_media import normalize
        >>> u8 = normalize(np.array([[[0.0, 0.5, 1.0]], [[0, 100, 255]]]), layout="NHW", device="cpu")
        >>> u8.shape, u8.dtype
        ((2, 1, 3, 1), dtype('uint8'))
        >>> u8[..., 0].tolist()
        [[[0, 127, 255]], [[0, 100, 255]]]

        Channel-first input with ``layout="NCHW"``, and [-1, 1] floats:

        >>> normalize(np.full((1, 3, 2, 2), -0.5, np.float32), layout="NCHW", device="cpu")[0, 0, 0].tolist()
        [63, 63, 63]
    """
    images = _arrays.check_images(images)
    dev = resolve_device(device, _arrays.on_gpu(images))
    groups, n = _arrays.image_groups(images, layout, dev)
    return normalize_groups(groups, n, normalize, get_backend(dev))


def normalize_groups(groups: list[_arrays.Group], n: int, normalize: bool, backend: Backend, lo: int = 0,
                     hi: int | None = None) -> Any:
    """Normalize images ``lo:hi`` (batch indices) of parsed groups; see :func:`normalize`.

    Args:
        groups: :func:`gpu_media._arrays.image_groups`'s groups of the batch.
        n: the batch size (images in all groups).
        normalize: as for :func:`normalize`.
        backend: the backend that does the conversion.
        lo: first batch index.
        hi: one past the last batch index (None: ``n``).

    Returns:
        uint8 ``(hi-lo,H,W,C)`` of ``backend.xp``, or a list of ``(H,W,C)`` when the sizes differ.

    Examples:
        >>> import numpy as np
        >>> from gpu_media import _arrays
        >>> from gpu_media.backend import get_backend
        >>> groups, n = _arrays.image_groups(np.zeros((3, 2, 2, 1), np.float32), None, "cpu")
        >>> normalize_groups(groups, n, True, get_backend("cpu"), lo=1).shape
        (2, 2, 2, 1)
    """
    hi = n if hi is None else hi
    if len(groups) == 1 and lo == 0 and hi == n:
        g = groups[0]
        return backend.normalize(g.array, g.layout, normalize and not g.pil)
    sels = [(g, [j for j, i in enumerate(g.indices) if lo <= i < hi]) for g in groups]
    sels = [(g, sel) for g, sel in sels if sel]
    if len(sels) == 1:
        g, sel = sels[0]
        if [g.indices[j] for j in sel] == list(range(lo, hi)) and sel == list(range(sel[0], sel[0] + hi - lo)):
            # one group holds lo:hi in order (a dump's chunk of one array): normalize the slice itself, with
            # no stack (on the GPU: no copy of the chunk, and no NVRTC compile of CuPy's concatenate kernel)
            return backend.normalize(g.array[sel[0] : sel[-1] + 1], g.layout, normalize and not g.pil)
    outs = [None] * (hi - lo)
    for g, sel in sels:
        part = g.array[sel[0] : sel[-1] + 1] if sel == list(range(sel[0], sel[-1] + 1)) else g.array[sel]
        u8 = backend.normalize(part, g.layout, normalize and not g.pil)
        for k, j in enumerate(sel):
            outs[g.indices[j] - lo] = u8[k]
    if all(o.shape == outs[0].shape for o in outs):
        return backend.xp.stack(outs)
    return outs
