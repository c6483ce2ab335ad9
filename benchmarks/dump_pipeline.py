"""CPU dump timing, optionally of several source trees side by side (before/after a change of the write path).

    python benchmarks/dump_pipeline.py [--rounds 5] [--dir FOLDER] [--json OUT.json]
    python benchmarks/dump_pipeline.py --tree before=/tmp/old-checkout --tree after=. --rounds 7

Cases (``device="cpu"``, durable writes, the default): the bundled demo (8
photographs 256x256, two mask keys, two box keys, boxes drawn); 1024 photographs
32x32 as JPEG (many small files: the fsyncs weigh most); 256 photographs 256x256
float32 as JPEG and as PNG. Every image is a different picture (``compare.photo_batch``:
crops, flips and colour changes of the demo's photographs; with repeated images the
content-addressed names would make most of them the same file).

With ``--tree NAME=PATH`` (repeatable) every round runs the cases once in a fresh
process per tree, with ``PYTHONPATH=PATH``, the trees taking turns, so a slow spell
of a shared machine hits them alike; each process warms up with one dump of each
case, then times one. The ratio column is the median over rounds of the first
tree's time over each tree's time in the same round.
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

HERE = os.path.dirname(os.path.abspath(__file__))


def cases() -> dict:
    """{name: write_dump keyword arguments} (built with the gpu_media on ``sys.path``)."""
    import gpu_media as gm
    from gpu_media.formats.npz import load_npz

    sys.path.insert(0, HERE)
    from compare import photo_batch

    demo = load_npz(gm.cli.demo_input())
    demo_kw = {k: demo.get(k) for k in ("images", "masks", "boxes", "captions", "classes", "layout")}
    photos = photo_batch(256, 256)  # different pictures: crops, flips, colours of the demo's photographs
    small = photo_batch(1024, 32)
    return {
        "demo (8 x 256x256 png, masks, boxes drawn)": dict(demo_kw, draw_boxes=True),
        "1024 x 32x32 jpg q75 (many small files)": dict(images=small, file_type="jpg"),
        "256 x 256x256 jpg q75": dict(images=photos, file_type="jpg"),
        "256 x 256x256 png": dict(images=photos),
    }


def run_once(out_base: str, only: str = "") -> dict:
    """{case: seconds of one durable CPU dump}, after a warm-up dump, for each case with ``only`` in its name."""
    import gpu_media as gm

    times = {}
    for name, kw in cases().items():
        if only not in name:
            continue
        for attempt in (0, 1):
            out = tempfile.mkdtemp(dir=out_base)
            t0 = time.perf_counter()
            gm.write_dump(out, key="bench", device="cpu", **kw)
            dt = time.perf_counter() - t0
            shutil.rmtree(out)
            if attempt:
                times[name] = dt
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tree", action="append", default=[], help="NAME=PATH: time the gpu_media of PATH (repeatable)")
    p.add_argument("--dir", default=None, help="where the dumps go (default: a new temporary folder)")
    p.add_argument("--case", default="", help="only the cases whose name contains this")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    base = tempfile.mkdtemp(prefix="gpu-media-pipeline-", dir=args.dir)
    try:
        if args.child:
            print(json.dumps(run_once(base, args.case)))
            return 0
        trees = [t.split("=", 1) for t in args.tree] or [["current", None]]
        times: dict = {name: {} for name, _ in trees}
        for _ in range(args.rounds):
            for name, path in trees:
                if path is None:
                    got = run_once(base, args.case)
                else:
                    env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
                    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--dir", base,
                                        "--case", args.case],
                                       env=env, capture_output=True, text=True, check=True, cwd=os.path.abspath(path))
                    got = json.loads(r.stdout.strip().splitlines()[-1])
                for case, sec in got.items():
                    times[name].setdefault(case, []).append(sec)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    first = trees[0][0]
    results = []
    for name, _ in trees:
        for case, ts in times[name].items():
            ratio = statistics.median(a / b for a, b in zip(times[first][case], ts))
            results.append({"tree": name, "case": case, "median_s": statistics.median(ts), "seconds": ts,
                            f"speedup_vs_{first}": ratio})
    print(f"median of {args.rounds} rounds, {os.cpu_count()} cores, durable CPU dumps in "
          f"{args.dir or tempfile.gettempdir()}")
    print(f"{'tree':10} {'case':44} {'median s':>9} {'images/s':>9} {'x ' + first:>10}")
    for r in results:
        n = int(r["case"].split(" x ")[0].split("(")[-1])  # the case's batch size
        print(f"{r['tree']:10} {r['case']:44} {r['median_s']:9.4f} {n / r['median_s']:9.1f} "
              f"{r[f'speedup_vs_{first}']:10.2f}")
    if args.json:
        doc = {"date": datetime.date.today().isoformat(),
               "command": "python benchmarks/dump_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cores": os.cpu_count(), "python": platform.python_version()},
               "trees": {name: path for name, path in trees}, "rounds": args.rounds, "results": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
