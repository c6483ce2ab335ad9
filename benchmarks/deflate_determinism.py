"""Issue 19: does a deflate library give the same stream for the same bytes in every process?

    python benchmarks/deflate_determinism.py [--processes 6] [--repeats 12]

The default PNG's file name is a hash of its bytes, so its deflate must be a function of the
input alone. This starts ``--processes`` fresh Python processes; each compresses a fixed set of
inputs (random bytes of 2, 4 and 256 values and a periodic ramp, 1 byte to 200 KB, plus the
Average-filtered rows of ``compare.photo_batch`` photographs) ``--repeats`` times, with heap
churn in between, by each candidate (zlib-ng level 1 Huffman-only and run-length, the two
strategies gpu_media uses, the standard library's zlib the same ways, ISA-L levels 0-3,
libdeflate level 1 when imagecodecs is installed), checks that each stream inflates back to
its input, and prints, per candidate, how many inputs had more than one distinct stream
within a process and across processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def inputs() -> list[bytes]:
    import numpy as np

    sys.path.insert(0, HERE)
    from compare import photo_batch

    import gpu_media as gm
    from gpu_media import png

    g = np.random.default_rng(123)
    out = []
    for n in [1, 2, 3, 5, 8, 13, 31, 64, 100, 257, 1000, 4000, 20000, 70000, 200000]:
        out.append(g.integers(0, 2, n, dtype=np.uint8).tobytes())
        out.append(g.integers(0, 4, n, dtype=np.uint8).tobytes())
        out.append((np.arange(n) % 7).astype(np.uint8).tobytes())
        out.append(g.integers(0, 256, n, dtype=np.uint8).tobytes())
    for a in gm.normalize(photo_batch(8, 256), device="cpu"):
        out.append(png.filter_average(a).tobytes())
    return out


def candidates() -> dict:
    from zlib_ng import zlib_ng

    def level1(lib, strategy):
        def run(data):
            c = lib.compressobj(1, zlib.DEFLATED, -15, 9, strategy)
            return c.compress(data) + c.flush()
        return run

    found = {f"{name} {sname}": level1(lib, strategy) for name, lib in (("zlib-ng", zlib_ng), ("zlib", zlib))
             for sname, strategy in (("huffman-only", zlib.Z_HUFFMAN_ONLY), ("run-length", zlib.Z_RLE))}
    try:
        from isal import isal_zlib

        for level in range(4):
            found[f"isal level {level}"] = (lambda lv: lambda d: isal_zlib.compress(d, lv, -15))(level)
    except ImportError:
        pass
    try:
        import imagecodecs

        found["libdeflate level 1"] = lambda d: bytes(imagecodecs.deflate_encode(d, level=1, raw=True))
    except ImportError:
        pass
    return found


def child(seed: int, repeats: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    data = inputs()
    junk: list = []
    seen: dict = {}
    for _ in range(repeats):
        junk.append(bytearray(int(rng.integers(1, 200_000))))  # heap churn between rounds
        if len(junk) > 16:
            junk.pop(int(rng.integers(0, 16)))
        for name, fn in candidates().items():
            for i, d in enumerate(data):
                out = fn(d)
                assert zlib.decompress(out, -15) == d, (name, i)
                seen.setdefault(name, {}).setdefault(str(i), set()).add(hashlib.sha256(out).hexdigest())
    json.dump({k: {i: sorted(v) for i, v in d.items()} for k, d in seen.items()}, sys.stdout)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", type=int, default=6)
    p.add_argument("--repeats", type=int, default=12)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        child(args.child, args.repeats)
        return 0
    runs = []
    for k in range(args.processes):
        r = subprocess.run([sys.executable, __file__, "--child", str(k), "--repeats", str(args.repeats)],
                           capture_output=True, text=True, check=True)
        runs.append(json.loads(r.stdout))
    print(f"{args.processes} processes x {args.repeats} repeats; inputs with more than one stream:")
    for name in runs[0]:
        n = len(runs[0][name])
        within = sum(any(len(run[name][i]) > 1 for run in runs) for i in runs[0][name])
        across = sum(len({h for run in runs for h in run[name][i]}) > 1 for i in runs[0][name])
        print(f"  {name:22s} within a process {within:3d} / {n}, across processes {across:3d} / {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
