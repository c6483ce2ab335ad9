"""Issue 19's CPU goals: gpu_media against the strongest by-hand pipeline, in one process.

    python benchmarks/cpu_goals.py [--n 256] [--size 256] [--rounds 7] [--only CASE] [--out PREFIX]

Every case times its contenders in the same process, taking turns round by round
(the order flips every round), after one warm-up call each; the figures are medians
over rounds, and each ratio is the median of the per-round ratios, so a slow spell of
a shared machine hits the contenders alike. The images are :func:`compare.photo_batch`:
``--n`` different pictures (crops, flips, colour changes of the demo's 8 photographs;
no two equal, so every dump writes ``--n`` image files), float32 in [0, 1].

Cases (``device="cpu"`` throughout):

* ``jpeg_dump`` / ``jpeg_dump_fsync``: :func:`gpu_media.write_dump` (``file_type="jpg"``,
  q75, 4:2:0) with ``durable=False`` / ``True`` against the by-hand pipeline: a thread
  pool of 2 kept across calls, one task per image doing ``(x * 255).astype(uint8)``,
  the fastest JPEG encoder installed (``imagecodecs.jpeg8_encode``, else Pillow),
  SHA-256 of the bytes, and a plain ``open``/``write`` of ``<i>_<sha[:20]>.jpg``
  (with ``os.fsync`` of each file and of the folder in the fsync variant). Pillow by
  hand is timed too, for reference.
* ``png_encode_per_core``: one thread encoding every image: gpu_media's CPU PNG
  encoder at the default level against the previous default (Pillow, zlib level 1,
  ``Z_RLE``) and Pillow's level 6 (``wandb.Image``'s bytes); sizes against level 6.
* ``png_dump_vs_wandb``: :func:`gpu_media.write_dump` of the uint8 batch as PNG
  (defaults: durable) against ``wandb.Image(a)`` for each image of the same pixels.
* ``to_wandb_log``: ``run.log({"k": gpu_media.to_wandb(u8)})`` against
  ``run.log({"k": [wandb.Image(a) for a in u8]})`` in an offline run, 100 images per
  call (wandb logs at most 108 images of a list).
* ``normalize_nchw``: :func:`gpu_media.normalize` of a float32 ``(256, 3, 512, 512)``
  NCHW batch (``--norm-n``) against a 2-thread ``np.copyto`` of the same array, into an
  array kept across rounds and into a new one (normalize returns a new array: its pages
  are first touched in the call, which costs much on some VMs); the figure is
  normalize's bytes/s (float32 read + uint8 written) over the copy's bytes/s (read +
  written).
* ``memory``: the peak memory of :func:`gpu_media.write_dump` (``device="cpu"``,
  defaults; ``png`` and ``jpg``) of a float32 batch of ``--mem-gb`` GB (default 3.2) of
  ``--size`` pictures, each in its own subprocess: the child builds the input (the
  ``photo_batch`` pictures, each block of them at another brightness so no two images
  are equal), resets its peak RSS (``/proc/self/clear_refs``), dumps, and reports
  ``VmHWM`` (peak) minus the RSS before the dump: the extra memory over the input,
  against the uint8 batch's bytes (Linux only; skipped elsewhere).
* ``small_dump``: one 64x64 image per :func:`gpu_media.write_dump` call (a new step
  each call, the same folder: the training-loop case; the viewer's list of the folder's
  dumps grows with the steps, each call writing its own data file and that list, without
  listing the folder; run before ``memory``, after an ``os.sync``),
  ``durable`` False and True, and ``viewer=False``, against the by-hand pipeline's
  code for one image (no pool, no index); ms per call.

Writes ``PREFIX.json`` and ``PREFIX.md`` (``--out``) with the command line, the machine
and the goals of issue 19 (met or not, with the measured value).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import photo_batch  # noqa: E402

import gpu_media as gm  # noqa: E402
from cpu_fallback import native  # noqa: E402

try:
    import imagecodecs
except ImportError:  # the by-hand pipeline then uses Pillow
    imagecodecs = None

# name -> (comparison, threshold, what is measured): issue 19's goals table.
GOALS = {
    "jpeg_dump_vs_by_hand": (">=", 1.0, "by-hand seconds / write_dump(jpg, durable=False) seconds"),
    "jpeg_dump_fsync_vs_by_hand": (">=", 1.0, "by-hand with fsync seconds / write_dump(jpg, durable=True) seconds"),
    "png_encode_per_core_vs_previous": (">=", 5.0, "Pillow level 1 + Z_RLE ms/img / gpu_media PNG ms/img, 1 thread"),
    "png_bytes_vs_wandb": ("<=", 1.12, "gpu_media default-level PNG bytes / Pillow level 6 bytes"),
    "png_dump_vs_wandb_image": (">=", 12.0, "wandb.Image per image seconds / write_dump(png) seconds"),
    "to_wandb_log_vs_wandb_image_log": (">=", 8.0, "wandb.Image + run.log seconds / to_wandb + run.log seconds"),
    "normalize_fraction_of_copy_bandwidth": (">=", 0.5, "normalize bytes/s / 2-thread copy (kept array) bytes/s"),
    "normalize_fraction_of_new_array_copy_bandwidth": (">=", 0.5, ("normalize bytes/s / 2-thread copy bytes/s, the "
                                                                  "copy's destination allocated each time as "
                                                                  "normalize's output is")),
    "memory_extra_vs_uint8_batch": ("<=", 0.2, ("peak RSS during write_dump over the RSS with the input "
                                                 "loaded / the uint8 batch's bytes (the worst file type)")),
    "small_dump_ms_per_call": ("<=", 2.0, "ms per write_dump of one 64x64 image (durable=False, viewer on)"),
    "small_dump_ms_per_call_no_viewer": ("<=", 2.0, "the same with viewer=False"),
}


def interleaved(fns: dict, rounds: int, setup=None) -> dict:
    """{name: [seconds per round]}: every fn once to warm up, then ``rounds`` rounds, the order flipping."""
    names = list(fns)
    times: dict = {k: [] for k in names}
    for r in range(rounds + 1):
        order = names if r % 2 == 0 else names[::-1]
        for k in order:
            arg = setup() if setup else None
            t0 = time.perf_counter()
            fns[k](arg) if setup else fns[k]()
            dt = time.perf_counter() - t0
            if r:
                times[k].append(dt)
    return times


def ratio(times: dict, num: str, den: str) -> float:
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def summary(times: dict) -> dict:
    return {k: {"median_s": statistics.median(v), "seconds": v} for k, v in times.items()}


def native_simd() -> str:
    """Which compiled loops ran (cpu_fallback.native): 'avx2', 'sse2', or 'not built'."""
    return native.get().simd() if native.get() is not None else "not built (NumPy code)"


def jpeg_encoder():
    if imagecodecs is not None:
        return "imagecodecs.jpeg8_encode", lambda a: imagecodecs.jpeg8_encode(a, level=75)
    return "Pillow", pil_jpeg


def pil_jpeg(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def by_hand_dump(x: np.ndarray, folder: str, encode, pool: ThreadPoolExecutor, fsync: bool, ext: str = ".jpg"):
    """The by-hand pipeline: one pool task per image (convert, encode, hash, write)."""
    os.makedirs(folder)

    def one(i):
        data = encode((x[i] * np.float32(255)).astype(np.uint8))
        sha = hashlib.sha256(data).hexdigest()
        with open(os.path.join(folder, f"{i}_{sha[:20]}{ext}"), "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())

    list(pool.map(one, range(len(x))))
    if fsync:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Folders:
    """Fresh output folders under one temporary base; each removed after use (not timed)."""

    def __init__(self, base: str):
        self.base, self.k, self.last = base, 0, None

    def __call__(self) -> str:
        if self.last:
            shutil.rmtree(self.last, ignore_errors=True)
        self.k += 1
        self.last = os.path.join(self.base, str(self.k))
        return self.last


def jpeg_cases(x, rounds, base, report, checks):
    name, enc = jpeg_encoder()
    pool = ThreadPoolExecutor(2, thread_name_prefix="by-hand")
    fresh = Folders(base)
    for fsync, case in ((False, "jpeg_dump"), (True, "jpeg_dump_fsync")):
        fns = {
            "gpu_media": lambda out: gm.write_dump(out, x, key="bench", file_type="jpg", durable=fsync, device="cpu"),
            f"by hand ({name}, 2 threads)": lambda out: by_hand_dump(x, out, enc, pool, fsync),
            "by hand (Pillow, 2 threads)": lambda out: by_hand_dump(x, out, pil_jpeg, pool, fsync),
        }
        times = interleaved(fns, rounds, fresh)
        files = sum(len(fs) for _, _, fs in os.walk(fresh.last))
        r = ratio(times, f"by hand ({name}, 2 threads)", "gpu_media")
        report[case] = {"images": len(x), "files_in_last_dump": files, "encoder_by_hand": name,
                        "durable": fsync, "images_per_s": {k: len(x) / statistics.median(v) for k, v in times.items()},
                        "times": summary(times), "ratio_gpu_media_over_by_hand": r}
        checks["jpeg_dump_fsync_vs_by_hand" if fsync else "jpeg_dump_vs_by_hand"] = r
    pool.shutdown()


def png_encode_case(u8, rounds, report, checks):
    from cpu_fallback.encode import encode_png

    def pil(opts):
        def run():
            out = []
            for a in u8:
                buf = io.BytesIO()
                Image.fromarray(a).save(buf, format="PNG", **opts)
                out.append(buf.getvalue())
            return out
        return run

    def numpy_filter():
        with native.disabled():
            return [encode_png(a) for a in u8]

    fns = {"gpu_media default level": lambda: [encode_png(a) for a in u8],
           "gpu_media default level, NumPy filter (no compiled loops)": numpy_filter,
           "previous default (Pillow level 1 + Z_RLE)": pil({"compress_level": 1, "compress_type": 3}),
           "Pillow level 6 (wandb.Image)": pil({"compress_level": 6})}
    times = interleaved(fns, rounds)
    sizes = {k: int(sum(len(b) for b in f())) for k, f in fns.items()}
    ours = [encode_png(a) for a in u8]
    exact = all(np.array_equal(np.asarray(Image.open(io.BytesIO(b))), a) for b, a in zip(ours, u8))
    r = ratio(times, "previous default (Pillow level 1 + Z_RLE)", "gpu_media default level")
    report["png_encode_per_core"] = {
        "images": len(u8), "threads": 1, "ms_per_image": {k: 1000 * statistics.median(v) / len(u8)
                                                          for k, v in times.items()},
        "bytes": sizes, "bytes_vs_level6": {k: v / sizes["Pillow level 6 (wandb.Image)"] for k, v in sizes.items()},
        "decoded_pixels_equal_input": exact, "times": summary(times), "speedup_vs_previous": r}
    checks["png_encode_per_core_vs_previous"] = r
    checks["png_bytes_vs_wandb"] = sizes["gpu_media default level"] / sizes["Pillow level 6 (wandb.Image)"]


def wandb_cases(u8, rounds, base, report, checks):
    try:
        import wandb
    except ImportError:
        report["png_dump_vs_wandb"] = report["to_wandb_log"] = {"skipped": "wandb is not installed"}
        return
    fresh = Folders(base)
    fns = {"gpu_media write_dump png": lambda out: gm.write_dump(out, u8, key="bench", device="cpu"),
           "wandb.Image per image": lambda out: [wandb.Image(a) for a in u8]}
    times = interleaved(fns, rounds, fresh)
    r = ratio(times, "wandb.Image per image", "gpu_media write_dump png")
    report["png_dump_vs_wandb"] = {"images": len(u8), "times": summary(times), "ratio": r,
                                   "images_per_s": {k: len(u8) / statistics.median(v) for k, v in times.items()}}
    checks["png_dump_vs_wandb_image"] = r

    k = min(100, len(u8))
    part = u8[:k]
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(mode="offline", dir=base, project="gpu-media-bench")
    try:
        fns = {"to_wandb + run.log": lambda: run.log({"a": gm.to_wandb(part, device="cpu")}),
               "wandb.Image + run.log": lambda: run.log({"b": [wandb.Image(a) for a in part]})}
        times = interleaved(fns, rounds)
    finally:
        run.finish()
    r = ratio(times, "wandb.Image + run.log", "to_wandb + run.log")
    report["to_wandb_log"] = {"images_per_call": k, "times": summary(times), "ratio": r}
    checks["to_wandb_log_vs_wandb_image_log"] = r


def normalize_case(n, rounds, report, checks):
    x = np.random.default_rng(0).random((n, 3, 512, 512), dtype=np.float32)
    dst = np.empty_like(x)
    pool = ThreadPoolExecutor(2)
    half = n // 2

    def copy(into=None):
        out = np.empty_like(x) if into is None else into
        list(pool.map(lambda s: np.copyto(out[s], x[s]), (slice(0, half), slice(half, n))))

    def numpy_code():
        with native.disabled():
            return gm.normalize(x, layout="NCHW", device="cpu")

    fns = {"gpu_media.normalize NCHW": lambda: gm.normalize(x, layout="NCHW", device="cpu"),
           "gpu_media.normalize NCHW, NumPy code (no compiled loops)": numpy_code,
           "2-thread copy into a kept array": lambda: copy(dst),
           "2-thread copy into a new array": copy}
    times = interleaved(fns, rounds)
    norm_bytes, copy_bytes = x.nbytes + x.nbytes // 4, 2 * x.nbytes
    ours = times["gpu_media.normalize NCHW"]
    frac = {k: statistics.median((norm_bytes / a) / (copy_bytes / b) for a, b in zip(ours, times[k]))
            for k in ("2-thread copy into a kept array", "2-thread copy into a new array")}
    report["normalize_nchw"] = {"shape": list(x.shape), "times": summary(times), "compiled_loops": native_simd(),
                                "numpy_code_fraction_of_kept_copy": statistics.median(
                                    (norm_bytes / a) / (copy_bytes / b) for a, b in
                                    zip(times["gpu_media.normalize NCHW, NumPy code (no compiled loops)"],
                                        times["2-thread copy into a kept array"])),
                                "fraction_of_copy_bandwidth": frac,
                                "normalize_GB_per_s": norm_bytes / statistics.median(ours) / 1e9,
                                "copy_GB_per_s": {k: copy_bytes / statistics.median(times[k]) / 1e9 for k in frac}}
    checks["normalize_fraction_of_copy_bandwidth"] = frac["2-thread copy into a kept array"]
    checks["normalize_fraction_of_new_array_copy_bandwidth"] = frac["2-thread copy into a new array"]
    pool.shutdown()


def _vm(field: str) -> int:
    """A /proc/self/status figure in bytes (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def memory_child(gb: float, size: int, file_type: str, folder: str) -> dict:
    """In a fresh process: build a ``gb`` GB float32 batch, reset the peak RSS, dump it, report the extra peak."""
    import gc

    n = max(1, round(gb * 1e9 / (size * size * 3 * 4)))
    gm.write_dump(os.path.join(folder, "warm"), np.zeros((2, 8, 8, 3), np.float32), key="w", file_type=file_type,
                  device="cpu")  # imports, pools and code paths first: not counted
    base = photo_batch(min(n, 256), size)
    x = np.empty((n, size, size, 3), np.float32)
    blocks = -(-n // len(base))
    for k in range(blocks):
        m = min(len(base), n - k * len(base))
        np.multiply(base[:m], np.float32(1 - 0.5 * k / blocks), out=x[k * len(base): k * len(base) + m])
    del base
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    rss0 = _vm("VmRSS")
    t0 = time.perf_counter()
    gm.write_dump(os.path.join(folder, "dump"), x, key="mem", file_type=file_type, device="cpu")
    secs = time.perf_counter() - t0
    peak = _vm("VmHWM")
    files = sum(len(fs) for _, _, fs in os.walk(os.path.join(folder, "dump")))
    u8 = n * size * size * 3
    return {"file_type": file_type, "images": n, "files": files, "input_bytes": int(x.nbytes), "uint8_bytes": u8,
            "rss_before_bytes": rss0, "peak_bytes": peak, "extra_bytes": peak - rss0,
            "extra_vs_uint8_batch": (peak - rss0) / u8, "seconds": secs}


def memory_case(gb, size, base, report, checks, file_types=("png", "jpg")):
    import subprocess

    if not os.path.exists("/proc/self/clear_refs"):
        report["memory"] = {"skipped": "needs Linux's /proc/self/clear_refs and VmHWM"}
        return
    runs = []
    for ft in file_types:
        folder = os.path.join(base, f"mem-{ft}")
        os.makedirs(folder)
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", f"{gb},{size},{ft},{folder}"],
                           capture_output=True, text=True, check=True)
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        shutil.rmtree(folder, ignore_errors=True)
    report["memory"] = {"input_GB": runs[0]["input_bytes"] / 1e9, "image_size": size, "images": runs[0]["images"],
                        **{f"{r['file_type']}_extra_MB": r["extra_bytes"] / 1e6 for r in runs},
                        **{f"{r['file_type']}_extra_vs_uint8_batch": r["extra_vs_uint8_batch"] for r in runs},
                        "runs": runs}
    checks["memory_extra_vs_uint8_batch"] = max(r["extra_vs_uint8_batch"] for r in runs)


def small_dump_case(rounds, base, report, checks, calls=40):
    if hasattr(os, "sync"):  # the earlier cases' files on the disk before the timed file creations
        os.sync()
    xs = photo_batch(calls * 5 * (rounds + 1), 64)[:, None]  # a new picture every call
    name, enc = jpeg_encoder()
    it = iter(range(len(xs)))
    root = {"durable": os.path.join(base, "small-d"), "plain": os.path.join(base, "small-p"),
            "noviewer": os.path.join(base, "small-n"), "hand": os.path.join(base, "small-h")}
    steps = {k: iter(range(10**9)) for k in root}

    def ours(durable, viewer=True):
        def run():
            key = "noviewer" if not viewer else "durable" if durable else "plain"
            for _ in range(calls):
                gm.write_dump(root[key], xs[next(it)], key="k", step=next(steps[key]), durable=durable,
                              viewer=viewer, device="cpu")
        return run

    def hand():
        for _ in range(calls):
            x = xs[next(it)]
            folder = os.path.join(root["hand"], str(next(steps["hand"])))
            os.makedirs(folder)
            data = gm.encode((x * np.float32(255)).astype(np.uint8), device="cpu")[0]
            sha = hashlib.sha256(data).hexdigest()
            with open(os.path.join(folder, f"0_{sha[:20]}.png"), "wb") as f:
                f.write(data)

    # durable=True alternates with the by-hand calls on its own, after the others: its fsyncs
    # commit the file system's journal, and the next contender's file creations would wait
    # on that commit (measured: 2.0 -> 3.3 ms per call) and pay for the durable dump's work
    fns = {"write_dump durable=False": ours(False), "write_dump durable=False viewer=False": ours(False, False),
           "by hand (gm.encode + plain write)": hand}
    times = interleaved(fns, rounds)
    times["write_dump durable=True"] = interleaved({"write_dump durable=True": ours(True),
                                                    "by hand": hand}, rounds)["write_dump durable=True"]
    ms = {k: 1000 * statistics.median(v) / calls for k, v in times.items()}
    report["small_dump"] = {"calls_per_round": calls, "image": "1 x 64x64 float32 png", "ms_per_call": ms,
                            "times": summary(times)}
    checks["small_dump_ms_per_call"] = ms["write_dump durable=False"]
    checks["small_dump_ms_per_call_no_viewer"] = ms["write_dump durable=False viewer=False"]


def markdown(doc: dict) -> str:
    lines = [f"# CPU goals of issue 19 ({doc['date']})", "",
             f"Command: `{doc['command']}`", "",
             f"Machine: {doc['machine']['cores']} cores ({doc['machine']['processor'] or doc['machine']['platform']}), "
             f"Python {doc['machine']['python']}, compiled loops (cpu_fallback.native): "
             f"{doc['machine'].get('compiled_loops')}; {doc['note']}", "",
             "| goal | measured | target | met |", "| --- | --- | --- | --- |"]
    for k, g in doc["goals"].items():
        v = g["value"]
        lines.append(f"| {k}: {g['measures']} | {'not measured' if v is None else f'{v:.3g}'} | {g['goal']} | "
                     f"{'' if g['met'] is None else ('yes' if g['met'] else 'NO')} |")
    lines += ["", "Details (medians over rounds; see the JSON for every round):", ""]
    for case, r in doc["cases"].items():
        lines.append(f"- **{case}**: " + ", ".join(
            f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
            for k, v in r.items() if k not in ("times", "runs")))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--norm-n", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--mem-gb", type=float, default=3.2, help="the memory case's float32 batch, GB")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--only", default="", help="comma-separated: jpeg,png,wandb,normalize,memory,small")
    p.add_argument("--dir", default=None, help="where the dumps go (default: a new temporary folder)")
    p.add_argument("--out", default=None, help="write PREFIX.json and PREFIX.md")
    p.add_argument("--note", default="the machine was shared with other jobs: ratios are measured in one "
                   "process with the contenders alternating, so the load hits them alike; absolute figures vary")
    args = p.parse_args(argv)
    if args.memory_child:
        gb, size, ft, folder = args.memory_child.split(",", 3)
        print(json.dumps(memory_child(float(gb), int(size), ft, folder)))
        return 0
    only = set(filter(None, args.only.split(","))) or {"jpeg", "png", "wandb", "normalize", "memory", "small"}
    base = tempfile.mkdtemp(prefix="gpu-media-goals-", dir=args.dir)
    report: dict = {}
    checks: dict = {}
    try:
        if only & {"jpeg", "png", "wandb"}:
            x = photo_batch(args.n, args.size)
            u8 = gm.normalize(x, device="cpu")
        if "jpeg" in only:
            jpeg_cases(x, args.rounds, base, report, checks)
        if "png" in only:
            png_encode_case(u8, args.rounds, report, checks)
        if "wandb" in only:
            wandb_cases(u8, args.rounds, base, report, checks)
        if "normalize" in only:
            normalize_case(args.norm_n, args.rounds, report, checks)
        if "small" in only:  # before the memory case, whose 3.2 GB dumps' removal keeps the disk busy a while
            small_dump_case(args.rounds, base, report, checks)
        if "memory" in only:
            memory_case(args.mem_gb, args.size, base, report, checks)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    goals = {}
    for k, (op, lim, what) in GOALS.items():
        v = checks.get(k)
        goals[k] = {"goal": f"{op} {lim}", "measures": what, "value": v,
                    "met": None if v is None else bool(v >= lim if op == ">=" else v <= lim)}
    doc = {"date": datetime.date.today().isoformat(),
           "command": "python benchmarks/cpu_goals.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": {"platform": platform.platform(), "processor": platform.processor(), "cores": os.cpu_count(),
                       "python": platform.python_version(), "numpy": np.__version__,
                       "pillow": Image.__version__,
                       "imagecodecs": getattr(imagecodecs, "__version__", None),
                       "compiled_loops": native_simd()},
           "note": args.note, "rounds": args.rounds, "goals": goals, "cases": report}
    md = markdown(doc)
    print(md)
    if args.out:
        with open(args.out + ".json", "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        with open(args.out + ".md", "w") as f:
            f.write(md)
        print(f"wrote {args.out}.json and {args.out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
