"""How many threads the CPU work of this process may use: the one place that says it.

The CPU backend's encoder pool (``cpu_fallback.encode``) and the dump's chunk workers and
writer threads (``gpu_media.dump.pipeline``) are sized from :func:`cores`.
"""

from __future__ import annotations

import os


def cores() -> int:
    """The CPU cores this process may run on (``os.sched_getaffinity`` where it exists, else ``os.cpu_count``).

    Returns:
        int: at least 1; on Linux the cores of this process's affinity mask (a container's
        or ``taskset``'s limit), which may be fewer than the machine's.

    Examples:
        >>> cores() >= 1
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
