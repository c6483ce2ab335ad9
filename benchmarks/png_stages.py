"""Issue 19: where the default PNG's time goes, per image on one thread, and what each deflate would cost.

    python benchmarks/png_stages.py [--n 128] [--size 256] [--rounds 7]

On ``compare.photo_batch`` (``--n`` different photographs, uint8 RGB): the stages of
``cpu_fallback.encode.encode_png`` at the default level (``gpu_media.png.filter_average``,
the deflate, the Adler-32, ``gpu_media.png.assemble``), the whole call, Pillow's level 1 +
``Z_RLE`` (the previous default, the goal's reference), and candidate deflates of the same
filtered rows: zlib-ng with gpu_media's strategy (Huffman-only on photographs), ISA-L levels 0-2 and libdeflate
level 1 where installed (not used by gpu_media: see ``benchmarks/deflate_determinism.py``
for ISA-L). Rounds alternate the contenders' order; figures are medians of ms per image,
and bytes are totals over the batch.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import photo_batch  # noqa: E402

import gpu_media as gm  # noqa: E402
from cpu_fallback.encode import deflate_library, deflate_strategy, encode_png  # noqa: E402
from gpu_media import png  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    u8 = [np.ascontiguousarray(a) for a in gm.normalize(photo_batch(args.n, args.size), device="cpu")]
    rows = [png.filter_average(a) for a in u8]
    lib = deflate_library()

    def deflate(x):
        c = lib.compressobj(1, zlib.DEFLATED, -15, 9, deflate_strategy(x))
        return c.compress(x), c.flush()

    streams = [deflate(x) for x in rows]
    adlers = [lib.adler32(x) for x in rows]

    def pillow(opts):
        def run(a):
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, format="PNG", **opts)
            return buf.getvalue()
        return run

    on_images = {"encode_png (whole call)": encode_png,
                 "Pillow level 1 + Z_RLE": pillow({"compress_level": 1, "compress_type": zlib.Z_RLE}),
                 "stage: filter_average": png.filter_average}
    on_rows = {f"stage: deflate ({lib.__name__}, deflate_strategy)": deflate,
               "stage: Adler-32": lib.adler32}
    try:
        from isal import isal_zlib

        for level in range(3):
            on_rows[f"candidate: ISA-L level {level}"] = (lambda lv: lambda x: isal_zlib.compress(x, lv, -15))(level)
    except ImportError:
        pass
    try:
        import imagecodecs

        on_rows["candidate: libdeflate level 1"] = lambda x: imagecodecs.deflate_encode(x, level=1, raw=True)
    except ImportError:
        pass
    k = list(range(len(u8)))
    fns = {name: (lambda f: lambda: [f(a) for a in u8])(f) for name, f in on_images.items()}
    fns.update({name: (lambda f: lambda: [f(x) for x in rows])(f) for name, f in on_rows.items()})
    fns["stage: assemble"] = lambda: [png.assemble(args.size, args.size, 3, streams[i], adlers[i], 1) for i in k]
    names = list(fns)
    times: dict = {name: [] for name in names}
    for r in range(args.rounds + 1):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[name]()
            if r:
                times[name].append((time.perf_counter() - t0) / len(u8) * 1000)
    ref = times["encode_png (whole call)"]
    print(f"{len(u8)} photographs {args.size}x{args.size} RGB, 1 thread, medians of {args.rounds} rounds\n")
    print("| what | ms per image | / encode_png | bytes |")
    print("| --- | ---: | ---: | ---: |")
    for name in names:
        out = fns[name]() if name.startswith(("candidate", "encode_png", "Pillow", "stage: deflate")) else None
        size = "" if out is None else str(sum(len(o) if isinstance(o, (bytes, bytearray)) else sum(map(len, o))
                                              for o in out))
        rel = statistics.median(a / b for a, b in zip(times[name], ref))
        print(f"| {name} | {statistics.median(times[name]):.3f} | {rel:.2f} | {size} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
