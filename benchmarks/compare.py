"""Side by side, in one process, on the same batch of real photographs.

    python benchmarks/compare.py                      # CPU (and GPU where present), table + JSON
    python benchmarks/compare.py --memory             # also the peak-memory check of a 1024 x 512x512 dump

Each case runs once to warm up, then ``--rounds`` times; the median is reported.
Cases: ``wandb.Image`` built one image at a time (wandb 0.31, fed uint8 since it no
longer normalizes), gpu_media on CPU (dump from float32, PNG and JPEG; encode
alone; normalize alone next to NumPy's plain ``(x * 255).astype(np.uint8)``), and
where a GPU is usable gpu_media on GPU and ``torchvision.io.encode_jpeg`` on CUDA
tensors. The batch is the demo's photographs (``gpu_media/demo/demo.npz``) resized
to the size asked and repeated to N images, as float32 in [0, 1].
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import gpu_media as gm
from gpu_media.cli import demo_input


def photo_batch(n: int, size: int) -> np.ndarray:
    """(n, size, size, 3) float32 in [0, 1]: the demo photographs, resized and repeated."""
    with np.load(demo_input()) as z:
        photos = z["images"]
    if size != photos.shape[1]:
        photos = np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.LANCZOS)) for p in photos])
    reps = -(-n // len(photos))
    return (np.concatenate([photos] * reps)[:n].astype(np.float32) / np.float32(255))


def timed(fn, rounds: int):
    """Median seconds of ``rounds`` runs after one warm-up run; returns (median, last result)."""
    (times,), out = interleaved([fn], rounds)
    return statistics.median(times), out[0]


def interleaved(fns, rounds: int):
    """Run each of ``fns`` once to warm up, then ``rounds`` rounds of each in turn.

    Cases compared with each other take turns, so a slow spell of a shared
    machine hits them alike. Returns (per-case lists of seconds, last results).
    """
    outs = [fn() for fn in fns]
    times = [[] for _ in fns]
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return times, outs


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "pillow": Image.__version__, "gpu_media": gm.__version__, "platform": platform.platform()}
    try:
        import wandb

        info["wandb"] = wandb.__version__
    except ImportError:
        pass
    if gm.gpu_available():
        import cupy

        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return info


def row(name, seconds, n, in_bytes, out_sizes, **extra):
    r = {"case": name, "seconds": seconds, "images_per_s": n / seconds, "input_MB_per_s": in_bytes / seconds / 1e6,
         "bytes_per_image": float(np.mean(out_sizes)) if out_sizes is not None else None, "ratio_to_wandb": None}
    r.update(extra)
    return r


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def cpu_cases(x: np.ndarray, rounds: int, results: list, checks: dict) -> None:
    n = len(x)
    u8 = gm.normalize(x, device="cpu")
    tmp = tempfile.mkdtemp(prefix="gpu-media-bench-")
    counter = iter(range(10**9))

    def dump(file_type):
        def run():
            root = os.path.join(tmp, f"d{next(counter)}")  # a new folder: nothing to skip
            return root, gm.write_dump(root, x, key="bench", file_type=file_type, device="cpu")
        return run

    cases = [  # (name, function, input bytes)
        ("gpu_media cpu: write_dump png (float32 in)", dump("png"), x.nbytes),
        ("gpu_media cpu: write_dump jpg q75 (float32 in)", dump("jpg"), x.nbytes),
        ("gpu_media cpu: encode png (uint8 in)", lambda: gm.encode(u8, file_type="png", device="cpu"), u8.nbytes),
        ("gpu_media cpu: encode jpg q75 (uint8 in)", lambda: gm.encode(u8, file_type="jpg", device="cpu"), u8.nbytes),
    ]
    try:
        import wandb

        cases.insert(0, ("wandb.Image x N (uint8 in, png)", lambda: [wandb.Image(a) for a in u8], u8.nbytes))
    except ImportError:
        print("wandb is not installed (pip install 'gpu-media[bench]'): no wandb.Image baseline", file=sys.stderr)
    try:
        times, outs = interleaved([fn for _, fn, _ in cases], rounds)
        for k, (name, _, nbytes) in enumerate(cases):
            out = outs[k]
            if name.startswith("wandb"):
                sizes = [os.path.getsize(i._path) for i in out]
                wandb_pixels = [np.asarray(Image.open(i._path)) for i in out]
                wandb_sizes = sizes
            elif "write_dump" in name:
                sizes = [d["size"] for d in out[1]]
            else:
                sizes = [len(b) for b in out]
            extra = {}
            if not name.startswith("wandb") and cases[0][0].startswith("wandb"):
                # the ratio of each round's wandb time to this case's time in the same round
                extra["ratio_to_wandb_per_round"] = [w / t for w, t in zip(times[0], times[k])]
            r = row(name, statistics.median(times[k]), n, nbytes, sizes, **extra)
            if extra:
                r["ratio_to_wandb"] = statistics.median(extra["ratio_to_wandb_per_round"])
            results.append(r)
        if cases[0][0].startswith("wandb"):
            root, dicts = outs[1]  # the last PNG dump
            ours = [decode(open(os.path.join(root, d["path"]), "rb").read()) for d in dicts]
            checks["png_pixels_identical_to_wandb"] = all(np.array_equal(a, b) for a, b in zip(ours, wandb_pixels))
            checks["png_size_vs_wandb"] = float(np.sum([d["size"] for d in dicts]) / np.sum(wandb_sizes))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    big = np.concatenate([x] * max(1, 256 // n))  # normalize needs a larger batch to time well
    (t_np, t_ours), _ = interleaved([lambda: (big * 255).astype(np.uint8), lambda: gm.normalize(big, device="cpu")],
                                    rounds)
    results.append(row("numpy (x * 255).astype(uint8)", statistics.median(t_np), len(big), big.nbytes, None))
    frac = statistics.median([a / b for a, b in zip(t_np, t_ours)])
    results.append(row("gpu_media cpu: normalize", statistics.median(t_ours), len(big), big.nbytes, None,
                       fraction_of_numpy=frac))
    checks["normalize_fraction_of_numpy"] = frac


def gpu_cases(n: int, size: int, rounds: int, results: list, checks: dict) -> None:
    import cupy
    import torch

    x = torch.from_numpy(np.ascontiguousarray(photo_batch(n, size).transpose(0, 3, 1, 2))).cuda()  # NCHW

    def ours():
        out = gm.encode(gm.normalize(x, device="gpu"), file_type="jpg", quality=75, device="gpu")
        torch.cuda.synchronize()
        return out

    sec, out = timed(ours, rounds)
    results.append(row("gpu_media gpu: CUDA float32 NCHW -> jpg q75 bytes", sec, n, x.numel() * 4,
                       [len(b) for b in out]))
    try:
        import torchvision.io as tvio

        u8 = (x * 255).to(torch.uint8)
        tensors = list(u8)

        def tv():
            out = tvio.encode_jpeg(tensors, quality=75)
            torch.cuda.synchronize()
            return [bytes(t.cpu().numpy()) for t in out]

        sec_tv, out_tv = timed(tv, rounds)
        results.append(row("torchvision.io.encode_jpeg (CUDA uint8)", sec_tv, n, u8.numel(), [len(b) for b in out_tv]))
        sec_u8, _ = timed(lambda: gm.encode(u8.permute(0, 2, 3, 1), file_type="jpg", device="gpu"), rounds)
        results.append(row("gpu_media gpu: encode jpg q75 (same CUDA uint8)", sec_u8, n, u8.numel(), None))
        checks["gpu_encode_vs_torchvision"] = sec_tv / sec_u8
    except ImportError:
        pass
    xc = cupy.asarray(x)
    moved = 2 * xc.nbytes

    def copy():
        y = xc.copy()
        cupy.cuda.Device().synchronize()
        return y

    sec_copy, _ = timed(copy, rounds)

    def norm():
        y = gm.normalize(xc, layout="NCHW", device="gpu")
        cupy.cuda.Device().synchronize()
        return y

    sec_norm, _ = timed(norm, rounds)
    copy_bw = moved / sec_copy
    norm_bw = (xc.nbytes + xc.nbytes // 4) / sec_norm
    results.append(row("cupy copy (device bandwidth)", sec_copy, n, xc.nbytes, None, GB_per_s=copy_bw / 1e9))
    results.append(row("gpu_media gpu: normalize kernel", sec_norm, n, xc.nbytes, None, GB_per_s=norm_bw / 1e9))
    checks["gpu_normalize_fraction_of_copy_bandwidth"] = norm_bw / copy_bw


MEMORY_SCRIPT = """
import resource, sys, tempfile, numpy as np, gpu_media as gm
sys.path.insert(0, "benchmarks")
from compare import photo_batch
n, size = int(sys.argv[1]), int(sys.argv[2])
tile = (photo_batch(8, size) * 255).astype(np.uint8)
x = np.empty((n, size, size, 3), np.uint8)
for i in range(n):
    x[i] = tile[i % 8]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with tempfile.TemporaryDirectory() as d:
    gm.write_dump(d, x, key="mem", device="cpu")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(x.nbytes, before, peak)
"""


def memory_case(n: int, size: int) -> dict:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(n), str(size)], capture_output=True, text=True,
                       cwd=here, check=True)
    batch, before, peak = (int(v) for v in r.stdout.split())
    return {"case": f"cpu dump of {n} x {size}x{size} RGB uint8: peak RSS", "uint8_batch_bytes": batch,
            "peak_rss_bytes": peak, "peak_over_batch": peak / batch, "rss_before_dump_bytes": before}


def table(results: list) -> str:
    head = f"{'case':<52} {'images/s':>10} {'in MB/s':>9} {'x wandb':>8} {'bytes/img':>10}"
    lines = [head, "-" * len(head)]
    for r in results:
        if "images_per_s" not in r:
            continue
        ratio = f"{r['ratio_to_wandb']:.2f}" if r.get("ratio_to_wandb") else ""
        size = f"{r['bytes_per_image']:.0f}" if r.get("bytes_per_image") else ""
        lines.append(f"{r['case']:<52} {r['images_per_s']:>10.1f} {r['input_MB_per_s']:>9.1f} {ratio:>8} {size:>10}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64, help="CPU batch size (default 64)")
    p.add_argument("--size", type=int, default=256, help="CPU image side (default 256)")
    p.add_argument("--gpu-n", type=int, default=256)
    p.add_argument("--gpu-size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--memory", action="store_true", help="also measure peak RSS of a 1024 x 512x512 CPU dump")
    p.add_argument("--json", default=None, help="write the results here as JSON")
    args = p.parse_args(argv)
    results, checks = [], {}
    x = photo_batch(args.n, args.size)
    cpu_cases(x, args.rounds, results, checks)
    if gm.gpu_available():
        gpu_cases(args.gpu_n, args.gpu_size, args.rounds, results, checks)
    if args.memory:
        results.append(memory_case(1024, 512))
        checks["memory_peak_over_uint8_batch"] = results[-1]["peak_over_batch"]
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
              "machine": machine(), "config": vars(args), "results": results, "checks": checks}
    print(f"{args.n} photographs {args.size}x{args.size} RGB, median of {args.rounds} rounds, "
          f"{report['machine']['cores']} cores ({report['machine']['cpu']})")
    print(table(results))
    for k, v in checks.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    for r in results:
        if "peak_rss_bytes" in r:
            print(f"{r['case']}: {r['peak_rss_bytes'] / 2**20:.0f} MiB = {r['peak_over_batch']:.2f} x the uint8 batch")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
