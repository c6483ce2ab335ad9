"""Side by side, in one process, on the same batch of real photographs.

    python benchmarks/compare.py                      # CPU (and GPU where present), table + JSON
    python benchmarks/compare.py --memory             # also the peak-memory check of a 1024 x 512x512 dump

Each case runs once to warm up, then ``--rounds`` times; the median is reported.
Cases: ``wandb.Image`` built one image at a time (wandb 0.31, fed uint8 since it no
longer normalizes), gpu_media on CPU (dump from float32, PNG and JPEG; encode
alone; normalize alone next to NumPy's plain ``(x * 255).astype(np.uint8)``), and
where a GPU is usable gpu_media on GPU and ``torchvision.io.encode_jpeg`` on CUDA
tensors. The CPU batch is N different pictures made from the demo's photographs
(``gpu_media/demo/demo.npz``; :func:`photo_batch`: crops, flips, colour changes), as
float32 in [0, 1]. The GPU
batch is crops of the same photographs at full resolution (scikit-image's samples,
where scikit-image is installed; else the demo's, resized), float32 NCHW on the GPU.

The JSON's ``goals`` lists issue 11's goals (:data:`GOALS`) with the measured value
and whether it is met; ``checks`` has the measured values under the same names.
Without a usable GPU the GPU goals are reported as skipped, never estimated.

JPEG on the GPU (:func:`jpeg_cases`): the dump against torch normalize +
``torchvision.io.encode_jpeg`` on CUDA + files written from a thread pool, and
``gm.encode`` against torchvision's encoder alone, in the same run; the JSON's
``gpu_jpeg_dump_stages`` (and ``cpu_jpeg_dump_stages`` for the CPU dump) times each
stage of a dump alone (:func:`jpeg_dump_stages`), to show where the time goes.
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
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

import gpu_media as gm
from gpu_media.cli import demo_input


def photo_batch(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) float32 in [0, 1]: n different pictures made from the demo's 8 photographs.

    Image i comes from photograph ``i % 8``: a random square crop (half to all of its
    side, anywhere in it), resized to ``size`` (Lanczos), flipped left-right and/or
    upside down at random, and with its colours changed (a gain per channel in
    [0.8, 1.2] and a gamma in [0.7, 1.4]). No two images are equal, also after
    conversion to uint8 (checked: a ``RuntimeError`` otherwise), so a dump of the
    batch writes ``n`` files (names are content hashes: a repeated image would be
    written once) and every encoder sees ``n`` different pictures.
    """
    with np.load(demo_input()) as z:
        photos = z["images"]
    rng = np.random.default_rng(seed)
    side0 = photos.shape[1]
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        p = photos[i % len(photos)]
        side = int(rng.integers(side0 // 2, side0 + 1))
        y, x = (int(v) for v in rng.integers(0, side0 - side + 1, size=2))
        crop = p[y:y + side, x:x + side]
        if side != size:
            crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.LANCZOS))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        gain = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
        gamma = np.float32(rng.uniform(0.7, 1.4))
        out[i] = np.clip((crop.astype(np.float32) / np.float32(255)) ** gamma * gain, 0, 1)
    u8 = (out * 255).astype(np.uint8).reshape(n, -1)
    if len({hashlib.sha256(r.tobytes()).digest() for r in u8}) != n:
        raise RuntimeError(f"photo_batch({n}, {size}, seed={seed}) made two equal images")
    return out


def photo_masks(photos: np.ndarray) -> np.ndarray:
    """uint8 (n, H, W) class masks (0, 1, 2) made from each picture's own pixels (so they differ as the images do).

    ``photos``: :func:`photo_batch`'s float32 (n, H, W, 3) in [0, 1].
    """
    return (photos[..., 1] > 0.5).astype(np.uint8) + (photos[..., 0] > 0.78)


def photo_crops(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """(n, size, size, 3) float32 in [0, 1]: random square crops of the demo's photographs.

    The full-resolution originals come from scikit-image (``skimage.data``, the
    demo's source, see gpu_media/demo/SOURCES.md) when it is installed; a crop
    smaller than ``size`` (a photograph's short side) is resized up to it. Without
    scikit-image, :func:`photo_batch`. Returns (batch, where the photographs came from).
    """
    try:
        from skimage import data as skd
    except ImportError:
        return photo_batch(n, size), "gpu_media/demo/demo.npz (resized)"
    names = ["astronaut", "camera", "chelsea", "clock", "coffee", "hubble_deep_field", "retina", "rocket"]
    photos = []
    for name in names:
        p = getattr(skd, name)()
        photos.append(np.stack([p] * 3, -1) if p.ndim == 2 else p[..., :3])
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        p = photos[i % len(photos)]
        side = min(size, *p.shape[:2])
        y = int(rng.integers(0, p.shape[0] - side + 1))
        x = int(rng.integers(0, p.shape[1] - side + 1))
        crop = p[y:y + side, x:x + side]
        if side < size:
            crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.LANCZOS))
        out[i] = crop
    return out.astype(np.float32) / np.float32(255), "scikit-image samples (crops)"


# Issue 11's goals, measured on the GPU batch (256 crops 512x512 float32 NCHW on one GPU):
# name -> (comparison, threshold, what is measured).
GOALS = {
    "gpu_png_encode_images_per_s": (">=", 10_000, "gm.encode(CUDA uint8 NHWC, 'png') -> bytes on the host"),
    "gpu_png_dump_images_per_s": (">=", 5_000, "gm.write_dump(CUDA float32 NCHW, file_type='png')"),
    "gpu_png_bytes_vs_pillow6": ("<=", 1.10, "GPU PNG bytes (default level) / Pillow compress_level=6 bytes"),
    "gpu_jpeg_dump_vs_torchvision_by_hand": (">=", 1.5, ("time of torch normalize + torchvision encode_jpeg on "
                                                       "CUDA + writing the files from a thread pool / time of "
                                                       "gm.write_dump jpg (defaults: durable), same run")),
    "gpu_jpeg_encode_vs_torchvision": (">=", 1.0, "torchvision.io.encode_jpeg time / gm.encode jpg time (CUDA uint8)"),
    "gpu_normalize_fraction_of_copy_bandwidth": (">=", 0.7, "normalize bytes/s (read f32 + write u8) / copy bytes/s"),
    "gpu_dump_device_extra_over_two_chunks": ("<=", 1.0, ("peak device memory above the input during a dump / "
                                                          "two chunks")),
    "gpu_dump_host_peak_over_uint8_batch": ("<=", 1.5, "peak host RSS growth during a dump / the uint8 RGB batch"),
    "first_call_seconds": ("<=", 0.5, ("first gm.write_dump (16 images, png) in a fresh process with CUDA "
                                      "already initialized")),
}


def goal_report(checks: dict, skipped: str | None) -> dict:
    """{name: {goal, measures, value, met}} for :data:`GOALS`; value/met None and ``skipped`` when not measured."""
    out = {}
    for name, (op, limit, what) in GOALS.items():
        v = checks.get(name)
        entry = {"goal": f"{op} {limit}", "measures": what}
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            entry.update(value=v, met=bool(v >= limit if op == ">=" else v <= limit))
        else:
            entry.update(value=None, met=None, skipped=skipped or "not measured")
            checks[name] = "skipped"
        out[name] = entry
    return out


def timed(fn, rounds: int):
    """Median seconds of ``rounds`` runs after one warm-up run; returns (median, last result)."""
    (times,), out = interleaved([fn], rounds)
    return statistics.median(times), out[0]


def interleaved(fns, rounds: int, after=None):
    """Run each of ``fns`` once to warm up, then ``rounds`` rounds of each in turn.

    Cases compared with each other take turns, so a slow spell of a shared
    machine hits them alike. ``after(result)``, when given, runs after each call,
    untimed (removing a dump's folder, say). Returns (per-case lists of seconds,
    last results).
    """
    outs = [fn() for fn in fns]
    if after is not None:
        for out in outs:
            after(out)
    times = [[] for _ in fns]
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t0)
            if after is not None:
                after(outs[k])
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


def cpu_cases(x: np.ndarray, rounds: int, results: list, checks: dict, report: dict | None = None) -> None:
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
        print("wandb is not installed (pip install \".[bench]\"): no wandb.Image baseline", file=sys.stderr)
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

    # --- where the CPU JPEG dump's time goes (the GPU's: jpeg_dump_stages) ---
    tmp = tempfile.mkdtemp(prefix="gpu-media-bench-")

    def jpg_dump():
        root = os.path.join(tmp, f"s{next(counter)}")
        gm.write_dump(root, x, key="bench", file_type="jpg", device="cpu")
        return root

    try:
        (t_norm, t_enc, t_dump), outs = interleaved(
            [lambda: gm.normalize(x, device="cpu"), lambda: gm.encode(u8, file_type="jpg", device="cpu"), jpg_dump],
            rounds, after=lambda r: shutil.rmtree(r) if isinstance(r, str) else None)
        stages = {"images": n, "normalize": statistics.median(t_norm), "encode": statistics.median(t_enc)}
        stages.update(host_stages(outs[1], tmp, counter, rounds))
        root = jpg_dump()
        stages["viewer"] = viewer_stage(root, rounds)
        stages["dump_seconds"] = statistics.median(t_dump)
        stages["sum_of_stages"] = sum(stages[k] for k in ("normalize", "encode", "hash", "write_durable", "viewer"))
        if report is not None:
            report["cpu_jpeg_dump_stages"] = stages
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


def gpu_cases(n: int, size: int, rounds: int, results: list, checks: dict, report: dict) -> None:
    import cupy
    import torch

    import cpu_fallback

    host, source = photo_crops(n, size)
    report["gpu_batch"] = {"n": n, "size": size, "layout": "NCHW float32 CUDA", "photographs": source}
    x = torch.from_numpy(np.ascontiguousarray(host.transpose(0, 3, 1, 2))).cuda()  # NCHW float32
    xc = cupy.asarray(x)
    u8 = gm.normalize(xc, layout="NCHW", device="gpu")  # (N,H,W,3) uint8 CuPy
    host_u8 = cupy.asnumpy(u8)
    tmp = tempfile.mkdtemp(prefix="gpu-media-bench-gpu-")
    counter = iter(range(10**9))

    def sync():
        torch.cuda.synchronize()
        cupy.cuda.Device().synchronize()

    def dump(file_type):
        def run():
            root = os.path.join(tmp, f"d{next(counter)}")
            out = gm.write_dump(root, x, key="bench", file_type=file_type, device="gpu")
            sync()
            shutil.rmtree(root, ignore_errors=True)  # the disk holds one dump at a time
            return out
        return run

    def encode(file_type, level=None):
        def run():
            out = gm.encode(u8, file_type=file_type, compression_level=level, device="gpu")
            sync()
            return out
        return run

    try:
        # --- PNG: encode alone, whole dump, size against Pillow level 6, the level table ---
        from gpu_media.cuda import backend as cupy_backend
        from gpu_media.cuda import nvcomp as nvcomp_deflate

        png_device = cupy_backend._png_encoder() is not None
        report["gpu_png_encoder"] = "nvCOMP deflate on the GPU" if png_device else (
            "host (Pillow): nvCOMP is not installed, " + str(nvcomp_deflate._state.get("error", "")))
        sec, out = timed(encode("png"), rounds)
        results.append(row("gpu_media gpu: encode png (CUDA uint8 -> bytes)", sec, n, u8.nbytes, [len(b) for b in out]))
        checks["gpu_png_encode_images_per_s"] = n / sec
        pillow6 = cpu_fallback.encode(host_u8[: min(n, 64)], "png", 75, 6)
        ours = out[: len(pillow6)]
        checks["gpu_png_bytes_vs_pillow6"] = sum(map(len, ours)) / sum(map(len, pillow6))
        exact = all(np.array_equal(decode(b), a) for b, a in zip(out[:16], host_u8[:16]))
        checks["gpu_png_decodes_exactly"] = exact
        sec, out = timed(dump("png"), rounds)
        results.append(row("gpu_media gpu: write_dump png (CUDA float32 NCHW in)", sec, n, x.numel() * 4,
                           [d["size"] for d in out]))
        checks["gpu_png_dump_images_per_s"] = n / sec
        levels = []
        for level in (None, 4, 7):
            algo = nvcomp_deflate.algorithm_type(level)
            sec, out = timed(encode("png", level), max(2, rounds // 2))
            size = sum(map(len, out[: len(pillow6)])) / sum(map(len, pillow6))
            levels.append({"compression_level": level, "nvcomp_algorithm_type": algo if png_device else None,
                           "images_per_s": n / sec, "bytes_vs_pillow6": size})
            results.append(row(f"gpu_media gpu: encode png level {level} (nvCOMP type {algo})", sec, n, u8.nbytes,
                               [len(b) for b in out]))
        report["gpu_png_levels"] = levels

        # --- JPEG: our dump against torch + torchvision by hand, encode alone against torchvision ---
        jpeg_cases(x, u8, tmp, counter, rounds, sync, results, checks, report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    normalize_paths(xc, host, rounds, n, results, checks)
    # images encoded on the host although the GPU encoder was meant to (issue 17.5): must stay empty
    checks["gpu_host_fallbacks"] = cupy_backend.host_fallbacks()


# Knobs of the fused docs/SPEC.md 2 kernel tried beside its defaults (cuda_kernels.fused_plan), so
# a GPU run shows which way its speed goes: ticket size, grid, and L2 window.
FUSED_SWEEP = ({"tile_px": 1024}, {"tile_px": 8192}, {"blocks_per_sm": 2}, {"blocks_per_sm": 8},
               {"l2_fraction": 0.0}, {"l2_fraction": 0.5}, {"lag": 1})


def normalize_paths(xc, host, rounds: int, n: int, results: list, checks: dict) -> None:
    """docs/SPEC.md 2 on the GPU batch by each path (``GPU_MEDIA_NORMALIZE``: two-pass, fused) against a device copy.

    The fraction of copy bandwidth counts the float read and the uint8 write
    (issue 11.3); ``gpu_normalize_fraction_of_copy_bandwidth`` is the best path whose
    pixels equal the CPU backend's, named in ``gpu_normalize_best_path``; each path
    has its own ``gpu_normalize_<path>_*`` entries, and the fused kernel's knobs
    (:data:`FUSED_SWEEP`) their rows. A path that raises is reported, not fatal.
    """
    import cupy

    from gpu_media import backend
    from gpu_media.cuda import kernels as cuda_kernels

    be = backend.get_backend("gpu")

    def copy():
        y = xc.copy()
        cupy.cuda.Device().synchronize()
        return y

    def with_path(method):
        def run():
            old = os.environ.get("GPU_MEDIA_NORMALIZE")
            os.environ["GPU_MEDIA_NORMALIZE"] = method
            try:
                y = gm.normalize(xc, layout="NCHW", device="gpu")
            finally:
                if old is None:
                    os.environ.pop("GPU_MEDIA_NORMALIZE", None)
                else:
                    os.environ["GPU_MEDIA_NORMALIZE"] = old
            cupy.cuda.Device().synchronize()
            return y
        return run

    want = gm.normalize(host, device="cpu")
    norm_bytes = xc.nbytes + xc.nbytes // 4  # float32 read + uint8 written
    paths, fns = [], [copy]
    for method in cuda_kernels.NORMALIZE_METHODS:
        try:
            with_path(method)()  # a path that fails is reported and left out of the timing
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
            checks[f"gpu_normalize_{method}_error"] = f"{type(exc).__name__}: {exc}"
            continue
        paths.append(method)
        fns.append(with_path(method))
    (t_copy, *t_paths), outs = interleaved(fns, rounds)
    sec_copy = statistics.median(t_copy)
    copy_bw = 2 * xc.nbytes / sec_copy
    results.append(row("cupy copy (device bandwidth)", sec_copy, n, xc.nbytes, None, GB_per_s=copy_bw / 1e9))
    fractions, equal = {}, {}
    for method, t, out in zip(paths, t_paths, outs[1:]):
        sec = statistics.median(t)
        fractions[method] = norm_bytes / sec / copy_bw
        equal[method] = bool(np.array_equal(cupy.asnumpy(out), want))
        results.append(row(f"gpu_media gpu: normalize kernel ({method})", sec, n, xc.nbytes, None,
                           GB_per_s=norm_bytes / sec / 1e9, fraction_of_copy=fractions[method]))
        checks[f"gpu_normalize_{method}_fraction_of_copy_bandwidth"] = fractions[method]
        checks[f"gpu_normalize_{method}_equals_cpu"] = equal[method]
    checks["gpu_normalize_equals_cpu"] = bool(paths) and all(equal.values())
    checks["gpu_normalize_default_path"] = cuda_kernels.DEFAULT_NORMALIZE_METHOD
    exact = [m for m in paths if equal[m]]
    if exact:
        best = max(exact, key=fractions.get)
        checks["gpu_normalize_fraction_of_copy_bandwidth"] = fractions[best]
        checks["gpu_normalize_best_path"] = best
    if "fused" not in paths:
        return
    info = be._device_info()
    checks["gpu_normalize_fused_plan"] = str(dict(cuda_kernels.fused_plan(
        *(int(v) for v in (xc.shape[0], xc.shape[2], xc.shape[3], xc.shape[1])), xc.dtype.itemsize, info)._asdict()))
    best_knobs = ({}, fractions["fused"])
    for knobs in FUSED_SWEEP:
        def run(knobs=knobs):
            y = cuda_kernels.normalize(xc, "NCHW", True, xp=cupy, launch=be._launch, method="fused", device=info,
                                       **knobs)
            cupy.cuda.Device().synchronize()
            return y
        sec, out = timed(run, rounds)
        frac = norm_bytes / sec / copy_bw
        same = bool(np.array_equal(cupy.asnumpy(out), want))
        results.append(row(f"gpu_media gpu: normalize kernel (fused, {knobs})", sec, n, xc.nbytes, None,
                           GB_per_s=norm_bytes / sec / 1e9, fraction_of_copy=frac, equals_cpu=same))
        if same and frac > best_knobs[1]:
            best_knobs = (knobs, frac)
    checks["gpu_normalize_fused_best_knobs"] = str(best_knobs[0] or "defaults")
    checks["gpu_normalize_fused_best_knobs_fraction"] = best_knobs[1]


def jpeg_cases(x, u8, tmp: str, counter, rounds: int, sync, results: list, checks: dict, report: dict) -> None:
    """Issue 11.2 on the GPU batch, every case in this one run, cases compared taking turns.

    ``gpu_jpeg_dump_vs_torchvision_by_hand``: ``gm.write_dump(x, file_type="jpg")``
    (its defaults: durable, viewer) against the pipeline a user would write by hand:
    ``(x * 255).clamp(0, 255).to(uint8)`` on CUDA, ``torchvision.io.encode_jpeg`` of the
    CUDA tensors (4:4:4, torchvision's only choice), each file's bytes copied to the
    host and written from a thread pool of as many threads as the dump's writers
    (no fsync). ``gpu_jpeg_encode_vs_torchvision``: ``gm.encode`` of the same CUDA uint8
    batch against ``torchvision.io.encode_jpeg`` with the bytes on the host. Also the
    dump with ``durable=False`` (informative) and :func:`jpeg_dump_stages`. Without
    torchvision the two checks stay unmeasured (reported skipped).
    """
    import torch

    from gpu_media.dump import pipeline as gm_pipeline

    n = len(u8)

    def clean(out):
        shutil.rmtree(out[0], ignore_errors=True)  # untimed: the disk holds one dump at a time

    def ours(durable=True):
        def run():
            root = os.path.join(tmp, f"j{next(counter)}")
            out = gm.write_dump(root, x, key="bench", file_type="jpg", device="gpu", durable=durable)
            sync()
            return root, out
        return run

    cases = [ours(), ours(durable=False)]
    writers = ThreadPoolExecutor(max_workers=gm_pipeline.WRITERS, thread_name_prefix="by-hand-write")
    try:
        import torchvision.io as tvio
    except Exception as exc:  # noqa: BLE001 - ImportError, or a torchvision built for another torch (RuntimeError)
        tvio = None
        print(f"torchvision cannot be imported ({type(exc).__name__}: {exc}): the JPEG checks against it are "
              "skipped", file=sys.stderr)
    if tvio is not None:
        def write_file(item):
            path, data = item
            with open(path, "wb") as f:
                f.write(data)

        def by_hand():
            root = os.path.join(tmp, f"h{next(counter)}")
            os.makedirs(root)
            u8_t = (x * 255).clamp(0, 255).to(torch.uint8)  # NCHW: encode_jpeg's layout
            encoded = tvio.encode_jpeg(list(u8_t), quality=75)  # CUDA in, CUDA uint8 tensors out
            files = [(os.path.join(root, f"{i}.jpg"), e.cpu().numpy()) for i, e in enumerate(encoded)]
            list(writers.map(write_file, files))
            return root, [len(d) for _, d in files]

        cases.append(by_hand)
    try:
        times, outs = interleaved(cases, rounds, after=clean)
    finally:
        writers.shutdown()
    results.append(row("gpu_media gpu: write_dump jpg q75 (CUDA float32 NCHW in)", statistics.median(times[0]), n,
                       x.numel() * 4, [d["size"] for d in outs[0][1]]))
    results.append(row("gpu_media gpu: write_dump jpg q75, durable=False", statistics.median(times[1]), n,
                       x.numel() * 4, [d["size"] for d in outs[1][1]]))
    if tvio is not None:
        results.append(row("by hand: torch normalize + torchvision encode_jpeg + files (thread pool)",
                           statistics.median(times[2]), n, x.numel() * 4, outs[2][1]))
        checks["gpu_jpeg_dump_vs_torchvision_by_hand"] = statistics.median(
            [h / o for h, o in zip(times[2], times[0])])
        checks["gpu_jpeg_dump_not_durable_vs_torchvision_by_hand"] = statistics.median(
            [h / o for h, o in zip(times[2], times[1])])

    def gm_encode():
        out = gm.encode(u8, file_type="jpg", device="gpu")
        sync()
        return out

    if tvio is None:
        sec, out = timed(gm_encode, rounds)
        results.append(row("gpu_media gpu: encode jpg q75 (CUDA uint8)", sec, n, u8.nbytes, [len(b) for b in out]))
    else:
        tensors = list(torch.as_tensor(u8, device="cuda").permute(0, 3, 1, 2))

        def tv():
            out = tvio.encode_jpeg(tensors, quality=75)
            return [bytes(t.cpu().numpy()) for t in out]

        (t_gm, t_tv), outs = interleaved([gm_encode, tv], rounds)
        results.append(row("gpu_media gpu: encode jpg q75 (CUDA uint8)", statistics.median(t_gm), n, u8.nbytes,
                           [len(b) for b in outs[0]]))
        results.append(row("torchvision.io.encode_jpeg (CUDA uint8, bytes on the host)", statistics.median(t_tv), n,
                           u8.nbytes, [len(b) for b in outs[1]]))
        checks["gpu_jpeg_encode_vs_torchvision"] = statistics.median([a / b for a, b in zip(t_tv, t_gm)])
    try:
        stages = jpeg_dump_stages(x, u8, tmp, counter, rounds, sync)
    except Exception as exc:  # noqa: BLE001 - the breakdown is a diagnosis: its failure must not lose the checks
        stages = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        stages["dump_seconds"] = statistics.median(times[0])
        stages["sum_of_stages"] = sum(stages[k] for k in ("normalize", "encode", "hash", "write_durable", "viewer"))
    report["gpu_jpeg_dump_stages"] = stages


def jpeg_dump_stages(x, u8, tmp: str, counter, rounds: int, sync) -> dict:
    """Where a GPU JPEG dump's time goes: each stage of it timed alone on the same batch (median seconds).

    ``normalize`` (the CUDA float32 NCHW batch to uint8 NHWC, synchronized);
    ``encode`` (``gm.encode``: nvImageCodec with its output code streams reused, the
    bytes copied out); ``encode_new_outputs`` (the same with new code streams every
    call, ``nvimgcodec_encode.REUSE_OUTPUTS = False``); ``nvimgcodec_encode_call`` and
    ``copy_out`` (the encoder call alone, and ``bytes()`` of its code streams: the
    compressed bytes are already in host memory, this is the only host copy of the
    JPEG path); ``hash`` (sha256 of every file, one thread); ``write_durable`` and
    ``write_plain`` (the dump's writes: ``write_atomic`` with and without fsync, from
    a pool of ``gpu_media.dump.pipeline.WRITERS`` threads); ``viewer`` (:func:`viewer_stage`: the
    dump's ``index.html``). The caller adds ``dump_seconds`` (the whole dump) and
    ``sum_of_stages`` (normalize + encode + hash + write_durable + viewer): the dump
    overlaps the writes with the encoding, and adds the index.
    """
    import cupy

    from gpu_media.cuda import backend as cupy_backend
    from gpu_media.cuda import nvimgcodec as nvimgcodec_encode
    from gpu_media.dump import pipeline as gm_pipeline

    out: dict = {"images": len(u8), "writer_threads": gm_pipeline.WRITERS}

    def norm():
        y = gm.normalize(x, layout="NCHW", device="gpu")
        sync()
        return y

    def enc():
        return gm.encode(u8, file_type="jpg", device="gpu")

    def enc_new():
        old = nvimgcodec_encode.REUSE_OUTPUTS
        nvimgcodec_encode.REUSE_OUTPUTS = False
        try:
            return enc()
        finally:
            nvimgcodec_encode.REUSE_OUTPUTS = old

    (t_norm, t_enc, t_new), outs = interleaved([norm, enc, enc_new], rounds)
    out.update(normalize=statistics.median(t_norm), encode=statistics.median(t_enc),
               encode_new_outputs=statistics.median(t_new))
    files = outs[1]
    if cupy_backend._jpeg_encoder() is not None:  # nvImageCodec's call and the copy out, apart
        ne = nvimgcodec_encode
        nvimgcodec = ne.load()
        device_id = cupy.cuda.Device().id
        encoder = ne.get_encoder(device_id)
        stream = cupy.cuda.get_current_stream().ptr
        params = ne._params(nvimgcodec, "jpeg", 75, 3, None)
        images = [nvimgcodec.as_image(u8[i], stream) for i in range(len(u8))]
        call, copy = [], []
        for _ in range(rounds + 1):
            t0 = time.perf_counter()
            streams = encoder.encode(images, "jpeg", params=params, cuda_stream=stream)
            t1 = time.perf_counter()
            [bytes(cs) for cs in streams]
            call.append(t1 - t0)
            copy.append(time.perf_counter() - t1)
        out.update(nvimgcodec_encode_call=statistics.median(call[1:]), copy_out=statistics.median(copy[1:]))
    else:
        out["nvimgcodec"] = "not installed: JPEG is encoded on the host (copy to pinned memory + Pillow)"
    out.update(host_stages(files, tmp, counter, rounds))
    root = os.path.join(tmp, f"v{next(counter)}")
    gm.write_dump(root, x, key="bench", file_type="jpg", device="gpu")
    out["viewer"] = viewer_stage(root, rounds)
    shutil.rmtree(root, ignore_errors=True)
    return out


def viewer_stage(root: str, rounds: int) -> float:
    """Median seconds to rewrite ``index.html`` of the finished dump in ``root`` (the dump's last step, under its lock).

    :func:`gpu_media.viewer.write_viewer`: read every index of the folder, render the
    page, write it durably.
    """
    from gpu_media.viewer import write_viewer

    (t,), _ = interleaved([lambda: write_viewer(root)], rounds)
    return statistics.median(t)


def host_stages(files: list, tmp: str, counter, rounds: int) -> dict:
    """Median seconds to sha256 ``files`` (one thread) and to write them as a dump does, with and without fsync.

    The writes: :func:`gpu_media.fileio.write_atomic` of every file into a new
    folder, from a pool of ``gpu_media.dump.pipeline.WRITERS`` threads (the dump's writers).
    """
    import hashlib

    from gpu_media import fileio
    from gpu_media.dump import pipeline as gm_pipeline

    def hashes():
        return [hashlib.sha256(b).hexdigest() for b in files]

    names = hashes()
    pool = ThreadPoolExecutor(max_workers=gm_pipeline.WRITERS, thread_name_prefix="bench-write")

    def writes(durable):
        def run():
            root = os.path.join(tmp, f"w{next(counter)}")
            os.makedirs(root)
            list(pool.map(lambda nb: fileio.write_atomic(os.path.join(root, nb[0]), nb[1], durable=durable),
                          zip(names, files)))
            return root
        return run

    try:
        (t_hash, t_dur, t_plain), _ = interleaved(
            [hashes, writes(True), writes(False)], rounds,
            after=lambda r: shutil.rmtree(r, ignore_errors=True) if isinstance(r, str) else None)
    finally:
        pool.shutdown()
    return {"hash": statistics.median(t_hash), "write_durable": statistics.median(t_dur),
            "write_plain": statistics.median(t_plain)}


GPU_FRESH_SCRIPT = """
import json, os, resource, sys, tempfile, threading, time
sys.path.insert(0, "benchmarks")
import numpy as np, torch, cupy
from compare import photo_crops
n, size = int(sys.argv[1]), int(sys.argv[2])
host, _ = photo_crops(n, size)
x = torch.from_numpy(np.ascontiguousarray(host.transpose(0, 3, 1, 2))).cuda()
torch.cuda.synchronize()
del host
import gpu_media as gm
out = {}
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    gm.write_dump(os.path.join(d, "first"), x[:16], key="first", file_type="png", device="gpu")
    cupy.cuda.Device().synchronize()
    out["first_call_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gm.write_dump(os.path.join(d, "second"), x[:16], key="second", file_type="png", device="gpu")
    cupy.cuda.Device().synchronize()
    out["second_call_seconds"] = time.perf_counter() - t0
    from gpu_media.cuda import backend as cupy_backend
    out["kernels_from"] = "fatbin" if cupy_backend._load_fatbin() is not None else "nvrtc"
    cache = os.environ.get("CUPY_CACHE_DIR")
    out["cupy_kernels_compiled"] = sorted(os.listdir(cache)) if cache and os.path.isdir(cache) else None
    free0, total = cupy.cuda.runtime.memGetInfo()
    rss0 = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    peak = [total - free0]
    stop = threading.Event()
    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], total - cupy.cuda.runtime.memGetInfo()[0])
            time.sleep(0.0005)
    th = threading.Thread(target=poll, daemon=True)
    th.start()
    from gpu_media.cuda import backend as cupy_backend
    chunk = cupy_backend.chunk_bytes()
    for ft in ("png", "jpg"):
        gm.write_dump(os.path.join(d, ft), x, key="mem", file_type=ft, device="gpu")
        cupy.cuda.Device().synchronize()
    stop.set()
    th.join()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
n_, c, h, w = x.shape
out.update(input_bytes=x.numel() * 4, uint8_batch_bytes=n_ * h * w * 3, chunk_bytes=chunk,
           device_extra_peak_bytes=peak[0] - (total - free0), host_rss_before=rss0, host_maxrss_after=maxrss)
print(json.dumps(out))
"""


def gpu_fresh_case(n: int, size: int, cold: bool = True) -> dict:
    """First-call time and memory of GPU dumps, in a fresh process (CUDA initialized by torch first).

    The process starts with an empty CuPy kernel cache (``CUPY_CACHE_DIR``), so an NVRTC
    compile would count; the shipped fatbin is what keeps the first call short.

    Device: the peak of the device's used memory (polled every 0.5 ms) during a PNG and
    a JPEG dump of the batch, above what was in use before (the input included), against
    two chunks (a chunk: ``min(cupy_backend.chunk_bytes(), the batch as uint8 RGBA)``).
    Host: the peak RSS after, above the RSS before, against the uint8 RGB batch.
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as cache:  # an empty CuPy kernel cache: a first call on a new machine
        env = dict(os.environ, CUPY_CACHE_DIR=cache) if cold else dict(os.environ)
        r = subprocess.run([sys.executable, "-c", GPU_FRESH_SCRIPT, str(n), str(size)], capture_output=True,
                           text=True, cwd=here, check=False, timeout=300, env=env)
    if r.returncode != 0:
        return {"case": "gpu fresh process", "error": r.stderr[-2000:]}
    m = json.loads(r.stdout.strip().splitlines()[-1])
    chunk = min(m["chunk_bytes"], m["uint8_batch_bytes"] // 3 * 4)
    m.update(case=f"gpu dumps of {n} x {size}x{size} float32 NCHW in a fresh process"
                  + (" (empty CuPy kernel cache)" if cold else " (CuPy kernel cache kept)"),
             device_extra_over_two_chunks=m["device_extra_peak_bytes"] / (2 * chunk),
             host_peak_over_uint8_batch=max(0, m["host_maxrss_after"] - m["host_rss_before"]) / m["uint8_batch_bytes"])
    return m


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


def stage_lines(name: str, stages: dict | None) -> str:
    """The stage breakdown of a dump as text: each stage in ms and images/s."""
    if not stages:
        return f"{name}: not measured"
    if "skipped" in stages:
        return f"{name}: skipped, {stages['skipped']}"
    if "images" not in stages:
        return f"{name}: {stages}"
    n = stages["images"]
    lines = [f"{name} ({n} images, median seconds of each stage alone):"]
    for k, v in stages.items():
        if isinstance(v, float):
            lines.append(f"  {k:<24} {v * 1e3:9.2f} ms {n / v:10.1f} images/s")
        elif k != "images":
            lines.append(f"  {k:<24} {v}")
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
    p.add_argument("--gpu-only", action="store_true", help="skip the CPU cases")
    args = p.parse_args(argv)
    results, checks = [], {}
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
              "machine": machine(), "config": vars(args), "results": results, "checks": checks}
    if not args.gpu_only:
        x = photo_batch(args.n, args.size)
        cpu_cases(x, args.rounds, results, checks, report)
    skipped = None
    if gm.gpu_available():
        gpu_cases(args.gpu_n, args.gpu_size, args.rounds, results, checks, report)
        fresh = gpu_fresh_case(args.gpu_n, args.gpu_size)
        results.append(fresh)
        warm_cache = gpu_fresh_case(16, args.gpu_size, cold=False)
        results.append(warm_cache)
        if "first_call_seconds" in warm_cache:
            checks["first_call_seconds_cupy_cache_kept"] = warm_cache["first_call_seconds"]
        for k in ("first_call_seconds", "device_extra_over_two_chunks", "host_peak_over_uint8_batch"):
            if k in fresh:
                checks[k if k == "first_call_seconds" else f"gpu_dump_{k}"] = fresh[k]
    else:
        from gpu_media import backend

        skipped = "no usable GPU: " + (backend._gpu_state.get("error") or "gpu_available() is False")
        print(f"GPU goals skipped, {skipped}", file=sys.stderr)
    if args.memory:
        results.append(memory_case(1024, 512))
        checks["memory_peak_over_uint8_batch"] = results[-1]["peak_over_batch"]
    if skipped:
        report["gpu_jpeg_dump_stages"] = {"skipped": skipped}
    report["goals"] = goal_report(checks, skipped)
    print(f"{args.n} photographs {args.size}x{args.size} RGB, median of {args.rounds} rounds, "
          f"{report['machine']['cores']} cores ({report['machine']['cpu']})")
    print(table(results))
    for name in ("cpu_jpeg_dump_stages", "gpu_jpeg_dump_stages"):
        print(stage_lines(name, report.get(name)))
    for k, v in checks.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    for name, g in report["goals"].items():
        status = "skipped" if g["met"] is None else ("met" if g["met"] else "NOT met")
        value = "" if g["value"] is None else f"{g['value']:.3f} "
        print(f"goal {name} {g['goal']}: {value}{status}")
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
