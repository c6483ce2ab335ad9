"""Where the time of ``run.log({"k": gpu_media.to_wandb(batch)})`` goes, against ``wandb.Image``.

    python benchmarks/to_wandb_parts.py [--n 100] [--size 256] [--rounds 5] [--out PREFIX]

The same uint8 images as ``cpu_goals.py``'s ``to_wandb_log`` case (:func:`compare.photo_batch`,
``--n`` different 256x256 pictures; 100 per call: wandb logs at most 108 of a list), in an
offline run, ``device="cpu"``, PNG at the default level. Three ways to build the images:

* ``to_wandb``: as shipped (each ``wandb.Image`` built without decoding its file);
* ``to_wandb, plain wandb constructor``: the same files, each ``wandb.Image(path)`` built by
  wandb's own constructor (what to_wandb does where the installed wandb fails its check:
  wandb decodes every file to learn its size, and ``run.log`` decodes it again);
* ``wandb.Image``: ``[wandb.Image(a) for a in batch]`` (Pillow's PNG at level 6).

Each is timed building the list, and ``run.log`` is timed alone on a list built (untimed)
just before: wandb's own per-image work in ``run.log`` (moving each file into the run,
hashing nothing more, the JSON and the file records), the floor of any ``to_wandb``.
``gpu_media.encode`` of the batch alone is timed for reference. Contenders take turns,
the order flipping every round, after one warm-up round; medians, in ms per image.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import photo_batch  # noqa: E402

import gpu_media as gm  # noqa: E402
from gpu_media import wandb_compat  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None, help="write PREFIX.json")
    args = p.parse_args(argv)
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    u8 = gm.normalize(photo_batch(args.n, args.size), device="cpu")
    proto = wandb_compat._fast_prototype(wandb)
    assert proto is not None, "the installed wandb fails to_wandb's check: nothing fast to measure"

    def plain_to_wandb():
        wandb_compat._FAST[wandb.Image] = None  # as if the installed wandb had failed the check
        try:
            return gm.to_wandb(u8, device="cpu")
        finally:
            wandb_compat._FAST[wandb.Image] = proto

    build = {"to_wandb": lambda: gm.to_wandb(u8, device="cpu"),
             "to_wandb, plain wandb constructor": plain_to_wandb,
             "wandb.Image": lambda: [wandb.Image(a) for a in u8]}
    base = tempfile.mkdtemp(prefix="gpu-media-to-wandb-")
    run = wandb.init(mode="offline", dir=base, project="gpu-media-bench")
    times: dict = {f"build: {k}": [] for k in build}
    times.update({f"run.log: {k}": [] for k in build})
    times.update({f"build + run.log: {k}": [] for k in build})
    times["gpu_media.encode alone"] = []
    names = list(build)
    try:
        for r in range(args.rounds + 1):
            for k in names if r % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                imgs = build[k]()
                t1 = time.perf_counter()
                run.log({"k": imgs})
                t2 = time.perf_counter()
                if r:
                    times[f"build: {k}"].append(t1 - t0)
                    times[f"run.log: {k}"].append(t2 - t1)
                    times[f"build + run.log: {k}"].append(t2 - t0)
            t0 = time.perf_counter()
            gm.encode(u8, device="cpu")
            if r:
                times["gpu_media.encode alone"].append(time.perf_counter() - t0)
    finally:
        run.finish()
        shutil.rmtree(base, ignore_errors=True)
    n = len(u8)
    ms = {k: 1000 * statistics.median(v) / n for k, v in times.items()}
    total = "build + run.log: "
    ratios = {f"{total}wandb.Image / {total}{k}": statistics.median(
        a / b for a, b in zip(times[f"{total}wandb.Image"], times[f"{total}{k}"])) for k in names[:2]}
    doc = {"command": "python benchmarks/to_wandb_parts.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "images_per_call": n, "rounds": args.rounds, "ms_per_image": ms, "ratios": ratios,
           "seconds": times, "wandb": wandb.__version__}
    for k, v in ms.items():
        print(f"{k:50s} {v:7.3f} ms/image")
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    if args.out:
        with open(args.out + ".json", "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
