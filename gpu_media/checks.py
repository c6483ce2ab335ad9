"""Shared argument checks: the one definition of "an integer", "a number", "an int in range".

Every stage checks user-supplied scalars the same way, so the rules live here (as
kornia's ``kornia/core/check.py``): predicates (``is_*``) answer a question, checks
(``check_*``) raise a :class:`gpu_media.MediaError` (or the subclass given) with the
message and the structured fields (``index``, ``key``, ``item``) of
:mod:`gpu_media.errors`.

Booleans are never integers or numbers here, though Python makes ``bool`` a subclass
of ``int``: ``quality=True`` or ``class_id=False`` is always a mistake. NumPy integer
and floating scalars count as integers and numbers (they are registered with
:mod:`numbers`); ``numpy.bool_`` does not.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import MediaError


def is_integer(x: Any) -> bool:
    """Whether ``x`` is an integral scalar that is not a bool.

    Args:
        x: any object.

    Returns:
        True for ``int`` and NumPy integer scalars (``np.int64(3)``); False for
        ``bool``, ``numpy.bool_``, floats (even ``3.0``), strings and arrays.

    Examples:
        >>> import numpy as np
        >>> is_integer(3), is_integer(np.uint8(3)), is_integer(True), is_integer(3.0)
        (True, True, False, False)
    """
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    """Whether ``x`` is a real numeric scalar that is not a bool.

    wandb checks ``numbers.Number``, which lets a complex number through to fail later
    with a raw ``TypeError``; gpu_media takes real numbers only (``numbers.Real``).

    Args:
        x: any object.

    Returns:
        True for ``int``, ``float`` and NumPy integer and floating scalars (NaN and
        inf included); False for ``bool``, ``numpy.bool_``, complex numbers, strings
        and arrays.

    Examples:
        >>> import numpy as np
        >>> is_number(0.5), is_number(float("nan")), is_number(np.float32(1)), is_number(False), is_number(1j)
        (True, True, True, False, False)
    """
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def is_finite_number(x: Any) -> bool:
    """Whether ``x`` is a real :func:`is_number` that is neither NaN nor infinite.

    Args:
        x: any object.

    Returns:
        True for finite ``int``/``float`` (and NumPy real scalars); False otherwise,
        complex numbers included.

    Examples:
        >>> is_finite_number(2.5), is_finite_number(float("inf")), is_finite_number(1j)
        (True, False, False)
    """
    return is_number(x) and isinstance(x, numbers.Real) and math.isfinite(x)


#: The largest class id, in magnitude, that a dump takes: ``2**53 - 1``, JavaScript's
#: ``Number.MAX_SAFE_INTEGER``, the largest integer that the viewer (and any JSON reader
#: that parses numbers as doubles) reads back exactly (docs/SPEC.md 3, 4).
MAX_CLASS_ID = 2**53 - 1


def check_class_id(value: int, where: str, error: type[MediaError] = MediaError, *, what: str = "class id",
                   index: int | None = None, key: str | None = None, item: Any = None) -> int:
    """Check that the integer class id ``value`` lies in ``[-MAX_CLASS_ID, MAX_CLASS_ID]``; return it as an int.

    Negative ids are allowed (wandb takes them; ``-1`` often means "ignore"); ids
    beyond :data:`MAX_CLASS_ID` are refused because the viewer's JavaScript would
    read another id back (docs/SPEC.md 3, 4).

    Args:
        value: an integer (``int`` or a NumPy integer; :func:`is_integer` already checked).
        where: what the message starts with ("image 0, box key 'pred', box 3", ...).
        error: the :class:`gpu_media.MediaError` subclass to raise.
        what: how the message names the value ("class id", "class_labels key").
        index: the ``index`` field of the error (batch index), if any.
        key: the ``key`` field of the error, if any.
        item: the ``item`` field of the error (default: ``value``).

    Returns:
        ``int(value)``.

    Raises:
        gpu_media.MediaError: (``error``) ``value`` is out of range.

    Examples:
        >>> check_class_id(-1, "box 0"), check_class_id(2**53 - 1, "box 0")
        (-1, 9007199254740991)
        >>> check_class_id(2**53, "box 0")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: box 0: class id 9007199254740992 is outside [-(2**53 - 1), 2**53 - 1], ...
    """
    v = int(value)
    if -MAX_CLASS_ID <= v <= MAX_CLASS_ID:
        return v
    raise error(f"{where}: {what} {v} is outside [-(2**53 - 1), 2**53 - 1], the integers the viewer's "
                "JavaScript reads exactly", index=index, key=key, item=value if item is None else item)


def _range_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def check_int(
    value: Any,
    name: str,
    *,
    lo: int | None = None,
    hi: int | None = None,
    optional: bool = False,
    unit: str | None = None,
    error: type[MediaError] = MediaError,
    index: int | None = None,
    key: Any = None,
) -> int | None:
    """Check that ``value`` is an integer (not a bool) in ``[lo, hi]``; return it as ``int``.

    The message reads ``"<name> must be [None or ]an integer[ from lo to hi | >= lo |
    <= hi][ (<unit>)], got <value!r>"``, e.g. ``quality must be an integer from 1 to
    100, got 0``.

    Args:
        value: the value to check.
        name: how the message names it (an argument name, ``"colors[3]"``, ...).
        lo: smallest allowed value (inclusive), or None for no bound.
        hi: largest allowed value (inclusive), or None for no bound.
        optional: also accept ``None`` (returned as None).
        unit: a word for the message, after the range in parentheses ("pixels").
        error: the :class:`MediaError` subclass to raise.
        index: the ``index`` field of the error (batch index), if any.
        key: the ``key`` field of the error (mask/box/log key), if any.

    Returns:
        ``int(value)``, or None when ``optional`` and ``value`` is None.

    Raises:
        MediaError: (``error``) with ``item=value``, ``index`` and ``key`` set.

    Examples:
        >>> import numpy as np
        >>> check_int(np.int16(90), "quality", lo=1, hi=100)
        90
        >>> check_int(None, "compression_level", lo=0, hi=9, optional=True) is None
        True
        >>> check_int(0, "quality", lo=1, hi=100)
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: quality must be an integer from 1 to 100, got 0
    """
    if optional and value is None:
        return None
    if is_integer(value) and (lo is None or value >= lo) and (hi is None or value <= hi):
        return int(value)
    what = ("None or " if optional else "") + "an integer" + _range_text(lo, hi) + (f" ({unit})" if unit else "")
    raise error(f"{name} must be {what}, got {value!r}", index=index, key=key, item=value)


def check_choice(value: Any, name: str, choices: tuple | list, *, error: type[MediaError] = MediaError) -> Any:
    """Check that ``value`` is one of ``choices``; return it.

    Args:
        value: the value to check.
        name: how the message names it.
        choices: the allowed values (the message lists them as a list).
        error: the :class:`MediaError` subclass to raise.

    Returns:
        ``value`` unchanged.

    Raises:
        MediaError: (``error``) ``"<name> must be one of [...], got <value!r>"``
            with ``item=value``.

    Examples:
        >>> check_choice("NCHW", "layout", ("NHWC", "NCHW"))
        'NCHW'
        >>> check_choice("CHWN", "layout", ("NHWC", "NCHW"))
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: layout must be one of ['NHWC', 'NCHW'], got 'CHWN'
    """
    if value not in choices:
        raise error(f"{name} must be one of {list(choices)}, got {value!r}", item=value)
    return value


#: The array dtypes both backends take (docs/SPEC.md 1): bool, every integer type, and the
#: three IEEE floats CuPy has. NumPy ``kind`` letters; floats also by item size.
NUMERIC_KINDS = "biuf"
FLOAT_SIZES = (2, 4, 8)


def dtype_name(dtype: Any) -> str:
    """How messages spell a dtype.

    NumPy's ``str`` (``"float32"``, ``"<U1"``), a PyTorch dtype without its
    ``"torch."`` prefix (``"bfloat16"``), a name as given.

    Args:
        dtype: a NumPy, CuPy or PyTorch dtype, or a name.

    Returns:
        the dtype's name for a message.

    Examples:
        >>> import numpy as np
        >>> dtype_name(np.dtype("float32")), dtype_name(np.dtype("<U1")), dtype_name("torch.bfloat16")
        ('float32', '<U1', 'bfloat16')
    """
    return str(dtype).removeprefix("torch.")


def is_supported_dtype(dtype: Any, kinds: str = NUMERIC_KINDS) -> bool:
    """Whether an array dtype is one of ``kinds`` (NumPy ``kind`` letters), floats being float16/32/64 only.

    Args:
        dtype: a NumPy dtype (CuPy arrays have NumPy dtypes), or anything else, e.g.
            the name of a dtype NumPy does not have (``"bfloat16"``): those have no
            ``kind`` and are never supported. Duck-typed, so this module needs no NumPy.
        kinds: the allowed kind letters, a subset of ``"biuf"`` (bool, signed,
            unsigned, float).

    Returns:
        False for object, string, bytes, void (structured), datetime, timedelta and
        complex dtypes, for float128 and for dtypes unknown to NumPy.

    Examples:
        >>> import numpy as np
        >>> [is_supported_dtype(np.dtype(t)) for t in ("bool", "int64", "float16", "complex64", "<U1")]
        [True, True, True, False, False]
        >>> is_supported_dtype(np.dtype("float32"), kinds="iu"), is_supported_dtype("bfloat16")
        (False, False)
    """
    kind = getattr(dtype, "kind", None)
    if not isinstance(kind, str) or kind not in kinds:
        return False
    return kind != "f" or getattr(dtype, "itemsize", 0) in FLOAT_SIZES


def check_dtype(
    dtype: Any,
    where: str,
    *,
    kinds: str = NUMERIC_KINDS,
    use: str = "bool, an integer type, float16, float32 or float64",
    label: str = "dtype",
    error: type[MediaError] = MediaError,
    index: int | None = None,
    key: Any = None,
) -> None:
    """Check an input array's dtype (:func:`is_supported_dtype`) before any copy of it.

    Every stage runs this on the dtype the caller's array already has (NumPy, CuPy,
    PyTorch, DLPack, a list read by NumPy), before the array is copied to a device and
    before the device is resolved, so that both backends, and ``device="gpu"`` on a
    machine without a GPU, raise the same error (docs/SPEC.md 1, 3 and 4 list the dtypes).

    The message reads ``"<where>: <label> <dtype> is not supported; use <use>"``,
    e.g. ``image 2: dtype complex64 is not supported; use bool, an integer type,
    float16, float32 or float64``.

    Args:
        dtype: the array's dtype (see :func:`is_supported_dtype`).
        where: what the message starts with ("image 2", "mask key 'seg'", ...).
        kinds: the allowed NumPy kind letters.
        use: the supported dtypes, in words, for the message.
        label: the word before the dtype ("dtype", "mask dtype", "xyxy dtype").
        error: the :class:`MediaError` subclass to raise.
        index: the ``index`` field of the error (batch index), if any.
        key: the ``key`` field of the error (mask/box key), if any.

    Raises:
        MediaError: (``error``) with ``item=dtype``, ``index`` and ``key`` set.

    Examples:
        >>> import numpy as np
        >>> check_dtype(np.dtype("uint16"), "image 0")
        >>> check_dtype(np.dtype("complex64"), "image 2", index=2, use="uint8 or float32")
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: image 2: dtype complex64 is not supported; use uint8 or float32
    """
    if not is_supported_dtype(dtype, kinds):
        raise error(f"{where}: {label} {dtype_name(dtype)} is not supported; use {use}", index=index, key=key,
                    item=dtype)
