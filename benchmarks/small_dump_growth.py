"""Per-call time of a small dump into a folder that already holds many dumps (the training-loop case).

    python benchmarks/small_dump_growth.py [--sizes 0,1000,5000] [--calls 30] [--rounds 6]
                                           [--checkouts PATH,PATH] [--out PREFIX]

A training loop logs a few images every N steps into one folder, so the folder's
indexes pile up: a run of 100k steps logging every 20 steps leaves 5,000. For each size
N and each checkout of gpu-media (``--checkouts``, default: the one this script is in),
two folders get N dumps each (one 16x16 image, ``viewer=False``, then the viewer written
once with :func:`gpu_media.viewer.write_viewer`, then an ``os.sync``). Then, round by
round, a new process of each checkout in turn (the order flips every round) makes one
untimed dump and ``--calls`` timed dumps of a new 64x64 picture at a new step into each
of its two folders, taking turns call by call: one folder with the viewer (the default),
one with ``viewer=False``, both ``durable=False``. The figures are the medians of each
round's median ms per call. The contenders alternate because this VM's file creation cost
moves several-fold within minutes.

Writes ``PREFIX.json`` and ``PREFIX.md`` (``--out``) with the command line and the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child_fill(root: str, n: int) -> None:
    import numpy as np

    import gpu_media as gm
    from gpu_media.viewer import write_viewer

    os.makedirs(root)
    tiny = np.zeros((1, 16, 16, 3), np.uint8)
    for step in range(n):
        gm.write_dump(root, tiny, key="k", step=step, durable=False, viewer=False, device="cpu")
    write_viewer(root)
    if hasattr(os, "sync"):  # the filling's writes go to the disk now, not during the timed calls
        os.sync()


def child_time(roots: list[str], start: int, calls: int) -> dict:
    import numpy as np

    import gpu_media as gm

    sys.path.insert(0, HERE)
    from compare import photo_batch

    pictures = np.ascontiguousarray(photo_batch(calls + 1, 64, seed=start))
    names = ("viewer", "no viewer")
    ms: dict[str, list] = {k: [] for k in names}
    for i in range(calls + 1):
        for k, root in (zip(names, roots) if i % 2 == 0 else reversed(list(zip(names, roots)))):
            t = time.perf_counter()
            gm.write_dump(root, pictures[i][None], key="k", step=start + i, durable=False, viewer=k == "viewer",
                          device="cpu")
            if i:  # the first: this process's first dump there (it probes the folder, and lists it)
                ms[k].append(1000 * (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in ms.items()}


def run_child(checkout: str, *args) -> str:
    env = dict(os.environ, PYTHONPATH=checkout)
    return subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *map(str, args)], env=env,
                          check=True, capture_output=True, text=True, cwd=checkout).stdout


def commit(checkout: str) -> str:
    try:
        return subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        if argv[1] == "fill":
            child_fill(argv[2], int(argv[3]))
        else:
            print(json.dumps(child_time(argv[2:4], int(argv[4]), int(argv[5]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="0,1000,5000", help="comma-separated: dumps already in the folder")
    p.add_argument("--calls", type=int, default=30, help="timed dumps per folder per round")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--checkouts", default=os.path.dirname(HERE), help="comma-separated gpu-media checkouts")
    p.add_argument("--out", default="", help="write PREFIX.json and PREFIX.md")
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    checkouts = [os.path.abspath(c) for c in args.checkouts.split(",")]
    labels = {c: f"{os.path.basename(c)}@{commit(c)}" for c in checkouts}
    results: dict = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("GPU_MEDIA_BENCH_DIR")) as base:
        for n in sizes:
            roots = {c: [os.path.join(base, f"{i}-{n}-{w}") for w in ("v", "n")] for i, c in enumerate(checkouts)}
            for c in checkouts:
                for root in roots[c]:
                    run_child(c, "fill", root, n)
            rounds: dict = {c: {"viewer": [], "no viewer": []} for c in checkouts}
            step = n
            for r in range(args.rounds):
                for c in (checkouts if r % 2 == 0 else checkouts[::-1]):
                    got = json.loads(run_child(c, "time", *roots[c], step, args.calls))
                    for k, v in got.items():
                        rounds[c][k].append(v)
                    step += args.calls + 1
            results[n] = {labels[c]: {k: {"median_ms": statistics.median(v), "rounds_ms": v}
                                      for k, v in rounds[c].items()} for c in checkouts}
            print(f"{n:>6} dumps there: " + "; ".join(
                f"{lab}: viewer {r['viewer']['median_ms']:.2f} ms, no viewer {r['no viewer']['median_ms']:.2f} ms"
                for lab, r in results[n].items()), flush=True)
    doc = {"command": "python " + " ".join([os.path.relpath(__file__)] + argv),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{os.cpu_count()} cores ({platform.platform()}), Python {platform.python_version()}",
           "note": args.note, "calls": args.calls, "rounds": args.rounds,
           "results": {str(n): r for n, r in results.items()}}
    if args.out:
        with open(args.out + ".json", "w") as f:
            json.dump(doc, f, indent=1)
        lines = [f"# Small dump per call, by dumps already in the folder ({doc['date'][:10]})", "",
                 f"Command: `{doc['command']}`", "", f"Machine: {doc['machine']}", ""]
        if args.note:
            lines += [f"Note: {args.note}", ""]
        lines += ["Median over rounds of each round's median ms per `write_dump` of one 64x64 image "
                  "(`durable=False`); the checkouts alternate round by round.", "",
                  "| dumps in the folder | checkout | viewer on: ms | viewer=False: ms |", "| --- | --- | --- | --- |"]
        for n, r in results.items():
            for lab, x in r.items():
                lines.append(f"| {n} | {lab} | {x['viewer']['median_ms']:.2f} | {x['no viewer']['median_ms']:.2f} |")
        with open(args.out + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
