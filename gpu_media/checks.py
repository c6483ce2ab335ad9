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
    """
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    """Whether ``x`` is a numeric scalar that is not a bool (wandb's ``numbers.Number`` rule).

    Args:
        x: any object.

    Returns:
        True for ``int``, ``float`` and NumPy numeric scalars (NaN and inf included);
        False for ``bool``, ``numpy.bool_``, strings and arrays.
    """
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def is_finite_number(x: Any) -> bool:
    """Whether ``x`` is a real :func:`is_number` that is neither NaN nor infinite.

    Args:
        x: any object.

    Returns:
        True for finite ``int``/``float`` (and NumPy real scalars); False otherwise,
        complex numbers included.
    """
    return is_number(x) and isinstance(x, numbers.Real) and math.isfinite(x)


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
    """
    if value not in choices:
        raise error(f"{name} must be one of {list(choices)}, got {value!r}", item=value)
    return value
