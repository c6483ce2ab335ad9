"""What durable writes cost (docs/SPEC.md 6.4): the same dumps with ``durable=True`` and ``durable=False``.

    python benchmarks/durable.py [--rounds 9] [--dir FOLDER] [--json OUT.json]

Cases: the bundled demo (8 photographs 256x256, two mask keys, two box keys) and 64
different pictures 256x256 (``compare.photo_batch``) with one mask key, as PNG and as JPEG; "files" counts every file
of the dump (media, index, index.html, the lock file).
Every round dumps each case into a fresh folder under ``--dir`` (default: a new
temporary folder; give one on the disk you care about: fsync costs what the disk
makes it cost), durable and not in turn, so a slow spell of a shared machine hits
both alike. The cost is the median over rounds of (durable seconds / plain seconds - 1).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import photo_batch, photo_masks  # noqa: E402

import gpu_media as gm  # noqa: E402
from gpu_media.formats.npz import load_npz  # noqa: E402


def cases() -> dict:
    """{name: write_dump keyword arguments}."""
    demo = load_npz(gm.cli.demo_input())
    demo_kw = {k: demo.get(k) for k in ("images", "masks", "boxes", "captions", "classes", "layout")}
    photos = photo_batch(64, 256)  # 64 different pictures (crops, flips, colours of the demo's photographs)
    masks = {"pred": {"mask_data": photo_masks(photos)}}
    return {
        "demo (8 x 256x256 png, 2 mask + 2 box keys)": dict(demo_kw, draw_boxes=True),
        "64 x 256x256 png + masks": dict(images=photos, masks=masks),
        "64 x 256x256 jpg + masks": dict(images=photos, masks=masks, file_type="jpg"),
    }


def filesystem(path: str) -> str:
    try:
        out = subprocess.run(["df", "-T", path], capture_output=True, text=True, check=True).stdout.splitlines()
        return out[-1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--dir", default=None, help="where the dumps go (default: a new temporary folder)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    base = tempfile.mkdtemp(prefix="gpu-media-durable-", dir=args.dir)
    runs = iter(range(10**9))

    def dump(kw, durable, files=None):
        out = os.path.join(base, str(next(runs)))
        t0 = time.perf_counter()
        gm.write_dump(out, key="bench", device="cpu", durable=durable, **kw)
        dt = time.perf_counter() - t0
        if files is not None:
            files.append(sum(len(fs) for _, _, fs in os.walk(out)))
        shutil.rmtree(out)
        return dt

    results = []
    try:
        for name, kw in cases().items():
            files: list = []
            dump(kw, True, files), dump(kw, False)  # warm-up
            on, off = [], []
            for r in range(args.rounds):
                order = (True, False) if r % 2 == 0 else (False, True)
                for durable in order:
                    (on if durable else off).append(dump(kw, durable))
            cost = statistics.median(a / b - 1 for a, b in zip(on, off))
            results.append({"case": name, "files": files[0], "durable_s": statistics.median(on),
                            "plain_s": statistics.median(off), "cost": cost})
    finally:
        shutil.rmtree(base, ignore_errors=True)
    fs = filesystem(args.dir or tempfile.gettempdir())
    print(f"median of {args.rounds} rounds, {os.cpu_count()} cores, dumps on {fs} "
          f"({args.dir or tempfile.gettempdir()})")
    print(f"{'case':48} {'files':>5} {'durable s':>10} {'plain s':>9} {'cost':>7}")
    for r in results:
        print(f"{r['case']:48} {r['files']:5d} {r['durable_s']:10.4f} {r['plain_s']:9.4f} {r['cost']:+7.1%}")
    if args.json:
        doc = {"date": datetime.date.today().isoformat(), "command": "python benchmarks/durable.py "
               + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cores": os.cpu_count(), "python": platform.python_version(),
                           "filesystem": fs},
               "rounds": args.rounds, "results": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
