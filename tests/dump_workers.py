"""Dumps run in other processes by tests/test_dump_io.py (killed ones, concurrent ones).

Run as a script: ``python tests/dump_workers.py OUT_DIR`` builds :func:`kill_batch`,
prints ``ready`` once only the dump is left to do, then dumps it into OUT_DIR
(``overwrite=True`` when its index is there already) and prints ``done``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

KEY, STEP = "crash", 3


def kill_batch() -> dict:
    """:func:`gpu_media.write_dump` keyword arguments of the SIGKILL test's dump.

    40 images 96x96 with two mask keys and two box keys (about 200 files), half a
    second or so on 2 cores.
    """
    rng = np.random.default_rng(7)
    n, h, w = 40, 96, 96
    xy = rng.uniform(0, 60, (3 * n, 2))
    return dict(
        images=rng.random((n, h, w, 3), dtype=np.float32),
        masks={"gt": {"mask_data": rng.integers(0, 4, (n, h, w))},
               "pred": {"mask_data": rng.integers(0, 4, (n, h, w))}},
        boxes={k: {"xyxy": np.hstack([xy, xy + rng.uniform(4, 30, (3 * n, 2))]),
                   "image_index": np.repeat(np.arange(n), 3), "class_id": rng.integers(0, 4, 3 * n)}
               for k in ("gt", "pred")},
        captions=[f"image {i}" for i in range(n)],
        classes={0: "bg", 1: "a", 2: "b", 3: "c"},
        key=KEY, step=STEP, device="cpu", chunk_size=4, compression_level=1,
    )


def kill_dump(out_dir: str, kw: dict | None = None) -> None:
    """The SIGKILL test's dump (``kw``: :func:`kill_batch`) into ``out_dir``.

    With ``overwrite=True`` when its index exists.
    """
    import gpu_media as gm
    from gpu_media.dump import index_path

    kw = kill_batch() if kw is None else kw
    gm.write_dump(out_dir, overwrite=os.path.exists(index_path(out_dir, KEY, STEP)), **kw)


def concurrent_worker(out_base: str, key: str, rounds: int, barrier, seed: int) -> None:
    """``rounds`` small dumps under ``key``, into ``out_base/<round>``, each started with the other worker's.

    (``barrier``: a ``multiprocessing.Barrier`` of 2.)

    The viewer page of each round is built slowly, 0 to 50 ms at random (``seed``): as
    a big page or a busy disk would, which widens the window in which, without the
    folder lock, a page built from the indexes of before the other dump's index
    replaces that dump's page.
    """
    import random
    import time

    import gpu_media as gm
    from gpu_media import viewer

    rng = np.random.default_rng(sum(map(ord, key)))
    x = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    delays = random.Random(seed)
    render = viewer.render_html

    def slow_render(data):
        page = render(data)
        time.sleep(delays.uniform(0, 0.05))
        return page

    viewer.render_html = slow_render
    for r in range(rounds):
        barrier.wait(timeout=60)
        gm.write_dump(os.path.join(out_base, str(r)), x, key=key, device="cpu")


if __name__ == "__main__":
    out = sys.argv[1]
    import gpu_media  # noqa: F401  (imported before "ready": only the dump is left)

    batch = kill_batch()
    print("ready", flush=True)
    kill_dump(out, batch)
    print("done", flush=True)
