"""CPU time per image of a CPU JPEG dump's per-image work against the by-hand pipeline's, in one thread.

    python benchmarks/jpeg_cpu_per_image.py [--n 256] [--size 256] [--rounds 9] [--dir /dev/shm]

What ``benchmarks/cpu_goals.py``'s ``jpeg_dump`` case times in two threads, here in one
thread, so that its CPU time (``time.thread_time``) is the whole cost: no other thread,
no GIL hand-off, no fixed cost of the call (claim, index, viewer). The thread is named
``gpu-media-bench`` so that gpu_media's CPU backend runs everything in it, as in a
dump's chunk workers (elsewhere it spreads a chunk over its own pool).

* ``gpu_media``: :func:`gpu_media.dump.pipeline.chunks` of the batch; per chunk
  :func:`gpu_media.dump.encode_chunk` (normalize, encode) and
  :func:`gpu_media.dump.index.image_json` of each record (SHA-256, the file through
  :class:`gpu_media.fileio.FolderWriter`, the JSON), ``durable=False``.
* ``by hand``: per image ``(x[i] * 255).astype(uint8)``, ``imagecodecs.jpeg8_encode``
  (Pillow without imagecodecs), SHA-256, ``open``/``write`` of ``<i>_<sha[:20]>.jpg``.
* the same two without writing files (``no files``).

Files go to ``--dir`` (default: a new temporary folder; ``/dev/shm`` keeps the disk
out of it). Contenders alternate round by round; medians over rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import photo_batch  # noqa: E402
from cpu_goals import jpeg_encoder  # noqa: E402

from gpu_media.dump import DumpOptions, encode_chunk, prepare  # noqa: E402
from gpu_media.dump.index import image_json  # noqa: E402
from gpu_media.dump.pipeline import chunks  # noqa: E402
from gpu_media.fileio import FolderWriter  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--dir", default=None)
    args = p.parse_args()
    x = photo_batch(args.n, args.size)
    name, enc = jpeg_encoder()
    plan = prepare(x, DumpOptions(file_type="jpg", device="cpu", durable=False))
    bounds = chunks(plan)
    base = tempfile.mkdtemp(prefix="gpu-media-jpeg-cpu-", dir=args.dir)
    made = [0]

    def folder() -> str:
        made[0] += 1
        d = os.path.join(base, str(made[0]))
        os.makedirs(d)
        return d

    def ours(write: bool) -> None:
        d = folder() if write else base
        with FolderWriter(d, durable=False) as files:
            put = files.write if write else (lambda rel, data: None)
            for lo, hi in bounds:
                for rec in encode_chunk(plan, lo, hi):
                    image_json(rec, d, "bench_0", plan, put=put)

    def by_hand(write: bool) -> None:
        d = folder() if write else base
        for i in range(len(x)):
            data = enc((x[i] * np.float32(255)).astype(np.uint8))
            sha = hashlib.sha256(data).hexdigest()
            if write:
                with open(os.path.join(d, f"{i}_{sha[:20]}.jpg"), "wb") as f:
                    f.write(data)

    fns = {"gpu_media": lambda: ours(True), f"by hand ({name})": lambda: by_hand(True),
           "gpu_media, no files": lambda: ours(False), f"by hand ({name}), no files": lambda: by_hand(False)}
    times: dict = {k: [] for k in fns}

    def run() -> None:
        names = list(fns)
        for r in range(args.rounds + 1):
            for k in (names if r % 2 == 0 else names[::-1]):
                t0 = time.thread_time()
                fns[k]()
                if r:
                    times[k].append((time.thread_time() - t0) / len(x))

    t = threading.Thread(target=run, name="gpu-media-bench")
    t.start()
    t.join()
    shutil.rmtree(base, ignore_errors=True)
    print(f"{args.n} images {args.size}x{args.size}, CPU us per image (median of {args.rounds} rounds, one thread):")
    for k, v in times.items():
        print(f"  {k:40s} {statistics.median(v) * 1e6:7.1f}")


if __name__ == "__main__":
    main()
