"""Where the CPU time of a PNG dump goes (the profile behind benchmarks/results/).

    python benchmarks/profile_cpu.py

1. the CPU work of a PNG dump of 64 demo photographs (256x256, float32 in), stage
   by stage on one core, next to ``write_dump``'s wall time on all cores;
2. Pillow's PNG encoder alone, one core, per image, at zlib
   level 0 (no deflate at all), 1 + Z_RLE (gpu_media's default before issue 19) and 6
   (wandb's): the part that no zlib setting removes is Pillow's per-row filter
   selection (gpu_media's default PNG now uses one vectorized filter and zlib-ng).
"""

import hashlib
import io
import os
import sys
import tempfile
import time
import zlib

from PIL import Image

import gpu_media as gm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import photo_batch  # noqa: E402


def ms(fn, rounds=3):
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1000


def main():
    import cpu_fallback
    from cpu_fallback.encode import encode_one

    x = photo_batch(64, 256)
    u8 = gm.normalize(x)
    pngs = cpu_fallback.encode(u8, "png", 75)
    root = tempfile.mkdtemp()

    def write_all():
        for i, b in enumerate(pngs):
            with open(os.path.join(root, f"{i}.png"), "wb") as f:
                f.write(b)

    stages = {
        "normalize (float32 -> uint8)": ms(lambda: cpu_fallback.normalize(x, "NHWC")),
        "PNG encode (default: Average filter + zlib-ng)": ms(lambda: [encode_one(a, "png", 75) for a in u8]),
        "sha256 of the files": ms(lambda: [hashlib.sha256(b).hexdigest() for b in pngs]),
        "file writes": ms(write_all),
    }
    total = sum(stages.values())
    print("One core, stage by stage, 64 x 256x256 photographs (ms, share of the CPU work):")
    for k, v in stages.items():
        print(f"  {k:<40} {v:8.1f} ms  {v / total:6.1%}")
    cores = os.cpu_count() or 1
    wall = ms(lambda: gm.write_dump(tempfile.mkdtemp(), x, key="p"))
    print(f"  {'sum':<40} {total:8.1f} ms; on {cores} cores at best {total / cores:.1f} ms")
    print(f"write_dump on {cores} cores: {wall:.1f} ms = {64 / wall * 1000:.0f} images/s "
          f"({total / cores / wall:.0%} of the ideal split)")
    print("Pillow PNG encode alone, one core, ms per 256x256 RGB image (median of 3 passes over 64 images):")
    for name, opts in [("level 0 (stored, no deflate)", {"compress_level": 0}),
                       ("level 1 + Z_RLE (the old default)", {"compress_level": 1, "compress_type": zlib.Z_RLE}),
                       ("level 6 (Pillow default = wandb)", {"compress_level": 6})]:
        times, size = [], 0
        for _ in range(3):
            t0 = time.perf_counter()
            size = 0
            for a in u8:
                buf = io.BytesIO()
                Image.fromarray(a).save(buf, format="PNG", **opts)
                size += buf.tell()
            times.append((time.perf_counter() - t0) / len(u8) * 1000)
        print(f"  {name:<38} {sorted(times)[1]:6.2f} ms   {size / len(u8):8.0f} bytes/image")


if __name__ == "__main__":
    main()
