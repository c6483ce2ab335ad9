"""Exceptions raised by gpu_media (both backends raise the same type and message).

Every :class:`MediaError` carries, besides its message, the structured fields the
message names, so that callers can act on them without parsing text:

* ``index`` -- the batch index of the offending image (``None`` when the error is
  about the whole batch or an option);
* ``key`` -- the mask key, box key or log key involved (``None`` when none);
* ``item`` -- the offending value itself: a box, a mask shape, a dtype, an option's
  value (``None`` when there is no single value to show).

``str(err)`` is the message alone, exactly as before these fields existed.
"""

from __future__ import annotations

from typing import Any


class MediaError(ValueError):
    """Bad input to gpu_media. Messages name the batch index, the key and what was wrong.

    Args:
        message: the human-readable message (``str(err)``).
        index: batch index of the offending image, if the error is about one image.
        key: the mask, box or log key involved, if any.
        item: the offending value (a box, a shape, a dtype, an option's value), if any.

    Attributes:
        index: as the argument.
        key: as the argument.
        item: as the argument.

    Examples:
        >>> import numpy as np
        >>> import gpu_media
        >>> try:
        ...     gpu_media.validate_masks({"pred": {"mask_data": np.zeros((2, 4, 4))}}, [(4, 4), (4, 5)])
        ... except gpu_media.MediaError as err:
        ...     print(type(err).__name__, err.index, err.key, err.item)
        MaskError 1 pred (4, 4)
    """

    def __init__(self, message: str = "", *, index: int | None = None, key: Any = None, item: Any = None) -> None:
        """Store the message and the structured fields (see the class docstring)."""
        super().__init__(message)
        self.index = index
        self.key = key
        self.item = item


class ImageError(MediaError):
    """An image batch whose shape, layout or dtype is outside docs/SPEC.md 1-2."""


class MaskError(MediaError):
    """A mask set that breaks docs/SPEC.md 3 (shape, value range, class labels)."""


class BoxError(MediaError):
    """A box set that breaks docs/SPEC.md 4 (wandb's box rules, NaN/inf, min > max)."""


class DumpExistsError(MediaError):
    """A dump whose key and step already have an index in the folder, without ``overwrite=True`` (docs/SPEC.md 6.4).

    ``key`` is the log key and ``item`` the existing index's path.
    """


class DeviceError(RuntimeError):
    """``device="gpu"`` (or ``GPU_MEDIA_DEVICE=gpu``) was asked for but no usable GPU backend exists."""


class HostFallbackWarning(RuntimeWarning):
    """Work meant for the GPU ran on the host instead: same files (lossless), other speed.

    The GPU backend warns with it, and counts the event (``gpu_media.cuda.backend.host_fallbacks()``),
    when an image is encoded on the host after all: nvCOMP failed on it, it is larger
    than nvCOMP's largest chunk, its PNG rows exceed the filter kernel's bound, or
    nvJPEG failed. Its message starts with "host fallback: ". GPU checks turn it into an
    error (the test suite in pyproject.toml; ``PYTHONWARNINGS="error:host fallback"`` in
    any process, as ``benchmarks/verify_gpu.sh`` does), so no fallback passes for a GPU result.
    """


class DumpPathError(MediaError):
    """An output folder that cannot take a dump, found before any work (docs/SPEC.md 6.4).

    ``item`` is the path as given. The subclasses keep the builtin exception that
    Python itself would raise, so ``except FileExistsError`` and the like still work.
    """


class DumpPathExistsError(DumpPathError, FileExistsError):
    """``out_dir`` is an existing file, not a folder."""


class DumpPathNotADirectoryError(DumpPathError, NotADirectoryError):
    """A parent of ``out_dir`` is a file, so the folder cannot be created."""


class DumpPathTypeError(DumpPathError, TypeError):
    """``out_dir`` is not a ``str`` or ``os.PathLike`` of ``str`` (a ``bytes`` path, ``None``, a number)."""


class DumpLockError(DumpPathError, IsADirectoryError):
    """The folder's lock file ``.gpu-media.lock`` is a folder (or another non-file), so it cannot be locked."""


class DumpWriteError(MediaError, OSError):
    """The disk failed while a dump's files were written (``errno`` as the disk's error, ENOSPC say).

    The message names the folder and says that the dump was not indexed: no index names
    any of its files, and a run again (with space freed) writes it whole.
    """


class ViewerWarning(UserWarning):
    """The dump is written and indexed, but the folder's ``index.html`` could not be updated.

    :func:`gpu_media.write_dump` warns (and returns normally); ``gpu-media dump`` prints
    one ``gpu-media: warning:`` line and exits 0. ``gpu-media view OUT --rebuild``
    writes the page again.
    """
