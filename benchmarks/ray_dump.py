"""Ray dumps against the single-process dump: images/s with 1 and 2 Ray workers, and Ray's cost per image.

    python benchmarks/ray_dump.py [--n 256] [--size 256] [--rounds 3] [--batch-size 32] [--json OUT.json]

Data: ``--n`` photographs ``--size`` x ``--size`` (different pictures made from the
demo's: ``compare.photo_batch``) as uint8 rows, each with one mask (``pred``) and 3 boxes, PNG.
Cases, each dumping the same rows into a fresh folder, interleaved round by round:

* ``single process, all cores``: :func:`gpu_media.write_dump` as shipped (a thread per core);
* ``single process, 1 thread``: the same with the chunk pool cut to one thread, which is
  what one Ray worker (one CPU) does;
* ``ray, 1 worker`` and ``ray, 2 workers``: :func:`gpu_media.ray.write_dump_dataset` of
  ``ray.data.from_items(rows)`` on a local Ray started once (not timed) with the
  machine's CPUs, ``batch_size`` rows per block.

Ray's overhead per image is (ray 1 worker - single process 1 thread) / n: moving the
rows through Ray's object store, scheduling the blocks, the block ids (sha256 of the
rows), the partial indexes and their merge. Every Ray dump is checked byte-identical
to the single-process one.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import photo_batch  # noqa: E402

import gpu_media as gm  # noqa: E402
import gpu_media.dump.pipeline as gm_pipeline  # noqa: E402
import gpu_media.ray as gm_ray  # noqa: E402


def make_rows(n: int, size: int) -> list[dict]:
    photos = (photo_batch(n, size) * 255).astype(np.uint8)
    rows = []
    for i, p in enumerate(photos):
        mask = (p[..., 1] > 127).astype(np.uint8) + (p[..., 0] > 200)
        s = size / 8
        rows.append({"image": p, "caption": f"photo {i}", "masks__pred": mask,
                     "boxes__pred__xyxy": np.array([[s, s, 3 * s, 3 * s], [2 * s, s, 6 * s, 5 * s],
                                                    [4 * s, 4 * s, 7 * s, 7 * s]]),
                     "boxes__pred__class_id": np.array([1, 2, 1]), "boxes__pred__score": np.array([0.9, 0.5, 0.2])})
    return rows


DURABLE = True


def single(out: str, rows: list[dict]) -> None:
    xyxy = np.concatenate([r["boxes__pred__xyxy"] for r in rows])
    gm.write_dump(out, np.stack([r["image"] for r in rows]), key="bench", captions=[r["caption"] for r in rows],
                  masks={"pred": {"mask_data": np.stack([r["masks__pred"] for r in rows])}},
                  boxes={"pred": {"xyxy": xyxy, "image_index": np.repeat(np.arange(len(rows)), 3), "domain": "pixel",
                                  "class_id": np.concatenate([r["boxes__pred__class_id"] for r in rows]),
                                  "scores": {"score": np.concatenate([r["boxes__pred__score"] for r in rows])}}},
                  durable=DURABLE)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def tree(root: str) -> dict:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--small", type=int, default=16, help="rows of the small runs that measure the fixed cost")
    ap.add_argument("--no-durable", dest="durable", action="store_false", help="durable=False in every case")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    global DURABLE
    DURABLE = args.durable

    import ray

    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray_start = time.perf_counter() - t0
    rows = make_rows(args.n, args.size)
    small = rows[: args.small]
    ds = ray.data.from_items(rows).materialize()  # the rows in Ray's object store before the clock starts
    ds_small = ray.data.from_items(small).materialize()
    base = tempfile.mkdtemp(prefix="gpu-media-ray-bench-")
    workers_all = gm_pipeline.workers

    def one_thread(part):
        def run(out):
            gm_pipeline.workers = lambda plan: 1
            try:
                single(out, part)
            finally:
                gm_pipeline.workers = workers_all
        return run

    busy: dict = {}

    def on_ray(data, workers):
        def run(out):
            result = gm_ray.write_dump_dataset(data, out, key="bench", batch_size=args.batch_size,
                                               num_workers=workers, durable=args.durable)
            busy.setdefault(workers if data is ds else -workers, []).append(result.worker_seconds)
        return run

    cases = {  # name: (rows, function)
        "single process, all cores": (args.n, lambda out: single(out, rows)),
        "single process, 1 thread": (args.n, one_thread(rows)),
        "ray, 1 worker": (args.n, on_ray(ds, 1)),
        "ray, 2 workers": (args.n, on_ray(ds, 2)),
        f"single process, 1 thread, {args.small} rows": (args.small, one_thread(small)),
        f"ray, 1 worker, {args.small} rows": (args.small, on_ray(ds_small, 1)),
    }
    times: dict = {name: [] for name in cases}
    reference: dict = {}
    for r in range(args.rounds):
        for name, (n, fn) in cases.items():
            out = os.path.join(base, f"{r}-{len(times[name])}-{name.replace(' ', '_').replace(',', '')}")
            t = time.perf_counter()
            fn(out)
            times[name].append(time.perf_counter() - t)
            got = tree(out)
            reference.setdefault(n, got)
            assert got == reference[n], f"{name}: not byte-identical to the single-process dump"
            shutil.rmtree(out)
    shutil.rmtree(base, ignore_errors=True)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    one, ray1 = med["single process, 1 thread"], med["ray, 1 worker"]
    one_s, ray1_s = med[f"single process, 1 thread, {args.small} rows"], med[f"ray, 1 worker, {args.small} rows"]
    per_image = ((ray1 - ray1_s) - (one - one_s)) / (args.n - args.small)
    fixed = (ray1 - one) - per_image * args.n
    overhead_ms = (ray1 - one) / args.n * 1000
    print(f"{args.n} photographs {args.size}x{args.size} uint8 + 1 mask + 3 boxes, PNG, durable={args.durable}; "
          f"blocks of {args.batch_size}; median of {args.rounds} rounds; {os.cpu_count()} CPUs; "
          f"Ray start {ray_start:.1f} s (not counted)")
    print(f"{'case':36s} {'seconds':>8s} {'images/s':>9s}")
    for name, m in med.items():
        print(f"{name:36s} {m:8.2f} {cases[name][0] / m:9.1f}")
    print(f"Ray's overhead, ray 1 worker - single process 1 thread: {overhead_ms:.2f} ms per image at n={args.n}; "
          f"split by the {args.small}-row runs: {fixed:.2f} s per call + {per_image * 1000:.2f} ms per image")
    inside = statistics.median(busy[1]) / args.n * 1000
    print(f"time inside the actor's blocks (ray, 1 worker): {inside:.2f} ms per image, against "
          f"{one / args.n * 1000:.2f} ms per image for the single process with 1 thread")
    if args.json:
        record = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python " + " ".join(sys.argv),
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                        "platform": platform.platform(), "python": platform.python_version(),
                        "ray": ray.__version__, "numpy": np.__version__, "gpu_media": gm.__version__},
            "config": vars(args), "ray_start_seconds": round(ray_start, 2),
            "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
            "images_per_second": {k: round(cases[k][0] / m, 1) for k, m in med.items()},
            "ray_overhead_ms_per_image": round(overhead_ms, 2),
            "ray_fixed_seconds_per_call": round(fixed, 2), "ray_marginal_ms_per_image": round(per_image * 1000, 2),
            "actor_block_ms_per_image": round(inside, 2),
            "single_1_thread_ms_per_image": round(one / args.n * 1000, 2),
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    ray.shutdown()


if __name__ == "__main__":
    main()
