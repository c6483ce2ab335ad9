"""``gpu-media`` run in another process with one failure or pause injected at an exact point.

Used by tests/test_dump_alias.py (docs/SPEC.md 6.4): the point is reached by the code
itself, never by timing, so each run is deterministic.

``python tests/dump_hooks.py HOOK ARG -- CLI ARGS...`` runs ``gpu_media.cli.main(CLI ARGS)``
and exits with its status, after installing HOOK:

- ``pause-before-index -``: once every media file of the dump is written (or found
  present and skipped), when the dump builds its index JSON and before it takes the
  folder's lock to write it, print ``paused`` on stdout and wait for a line on stdin.
- ``exit-after-rename NAME``: right after a file named NAME (an index) is renamed into
  place, ``os._exit(9)``: a SIGKILL between the new index and the removal of the files
  only the old index named.
- ``exit-after-unlinks N``: right after the N-th file under ``media/`` is removed,
  ``os._exit(9)``: a SIGKILL in the middle of that removal.
"""

from __future__ import annotations

import os
import sys


def pause_before_index() -> None:
    """Wrap the ``index_json`` that :func:`gpu_media.dump.write_batches` calls: print ``paused``, wait for stdin."""
    import gpu_media.dump as dump

    where = dump.write_batches.__globals__  # the module that holds write_batches, wherever it lives
    real = where["index_json"]

    def paused(*args, **kwargs):
        print("paused", flush=True)
        sys.stdin.readline()
        return real(*args, **kwargs)

    where["index_json"] = paused


def exit_after_rename(name: str) -> None:
    """``os._exit(9)`` right after ``os.replace`` puts a file named ``name`` in place."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        if os.path.basename(os.fspath(dst)) == name:
            os._exit(9)

    os.replace = replace


def exit_after_unlinks(n: int) -> None:
    """``os._exit(9)`` right after the ``n``-th ``os.unlink`` of a file under a ``media`` folder."""
    real = os.unlink
    done = [0]

    def unlink(path, *args, **kwargs):
        real(path, *args, **kwargs)
        if f"{os.sep}media{os.sep}" in os.fspath(path):
            done[0] += 1
            if done[0] == n:
                os._exit(9)

    os.unlink = unlink


if __name__ == "__main__":
    hook, arg, sep, *cli_args = sys.argv[1:]
    assert sep == "--", sys.argv
    if hook == "pause-before-index":
        pause_before_index()
    elif hook == "exit-after-rename":
        exit_after_rename(arg)
    elif hook == "exit-after-unlinks":
        exit_after_unlinks(int(arg))
    else:
        raise SystemExit(f"unknown hook {hook!r}")
    from gpu_media import cli

    sys.exit(cli.main(cli_args))
