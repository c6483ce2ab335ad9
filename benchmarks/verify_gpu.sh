#!/usr/bin/env bash
# Issue 17's GPU verification, one command (<= 8 minutes on one H100/H200): everything on the GPU path
# loudly, with ANY fallback to the host treated as a failure, and the seven figures of issue 17's table.
#
#   here:  bash scripts/fetch_gpu_wheels.sh    # -> site.tar.xz (nvImageCodec, nvJPEG, nvCOMP + libnvcomp, ...)
#   there: bash benchmarks/verify_gpu.sh       # site.tar.xz carried; logs and compare.json in $OUT
#
# Steps (each bounded, logged to $OUT/<step>.log, its tail printed):
#   names    the functions this script drives exist (runs without a GPU too: the dry run checks it)
#   probe    gpu_status(), versions, which nvCOMP API (5.3 list / 6 BatchArray), fatbin or NVRTC, libraries loaded
#   png      nvCOMP raw deflate round trips (types 0/1/2/4, C=1/3/4, odd sizes), 300 whole PNGs decoded exactly,
#            ms per nvCOMP call by part size, encode and dump speed, the dump's device on a non-default stream
#   fused    the fused normalize on the big batch, in its own process (a trap or hang ends only this step)
#   compare  benchmarks/compare.py's GPU goals (compare.json)
#   coco     a COCO dump with --device gpu (DALI when importable) equals the CPU one pixel for pixel
#   tests    the GPU half of the test suite
# PYTHONWARNINGS makes gpu_media.errors.HostFallbackWarning ("host fallback: ...") an error in every Python
# process (the test suite does so itself), the logs are searched for it at the end, and compare.json's
# gpu_host_fallbacks must be empty.
#
# Exit status: 0 all steps passed and no fallback; 1 a step failed or something fell back to the host;
# 3 no usable GPU here (every GPU step skipped; the names step still ran: the dry run).
# CuPy/torch/Pillow/pytest come from the GPU machine (the cupy-cuda13x wheel alone is 70 MB).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/verify-out}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
DEADLINE=$(( $(date +%s) + ${VERIFY_BUDGET_S:-440} ))
declare -A RC
GPU=1
step() {  # step NAME LIMIT GPU_ONLY CMD... (stdin passes through): bounded by the deadline, log in $OUT/NAME.log
    local name=$1 lim=$2 gpu_only=$3; shift 3
    if [ "$gpu_only" = 1 ] && [ "$GPU" = 0 ]; then
        echo "## $name SKIPPED (no usable GPU)"; RC[$name]=skip; cat > /dev/null; return
    fi
    local left=$(( DEADLINE - $(date +%s) )); [ "$left" -lt "$lim" ] && lim=$left
    if [ "$lim" -lt 15 ]; then echo "## $name SKIPPED (out of time)"; RC[$name]=skip; cat > /dev/null; return; fi
    local t0=$(date +%s)
    timeout -k 5 "$lim" "$@" > "$OUT/$name.log" 2>&1; RC[$name]=$?
    echo "## $name rc=${RC[$name]} ${lim}s-limit took $(( $(date +%s) - t0 ))s"; tail -n "${TAILN:-25}" "$OUT/$name.log"
}

SITE=/tmp/verify-site; rm -rf "$SITE"; mkdir -p "$SITE"
if [ -f site.tar.xz ]; then tar -xJf site.tar.xz -C "$SITE" --strip-components=1; else echo "!! no site.tar.xz carried"; fi
[ -d "$SITE/nvidia" ] && echo '__path__ = __import__("pkgutil").extend_path(__path__, __name__)' > "$SITE/nvidia/__init__.py"
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONFAULTHANDLER=1 GPU_MEDIA_BROWSER_OPTIONAL=1
# every warning whose message starts "host fallback" (gpu_media.errors.HostFallbackWarning) is an error,
# in every Python process of the run (a message filter: nothing is imported at interpreter start)
export PYTHONWARNINGS="error:host fallback"
export CUPY_CACHE_DIR=/tmp/verify-cupy-cache
unset GPU_MEDIA_DEVICE GPU_MEDIA_NORMALIZE GPU_MEDIA_KERNELS
echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), gpu-media $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
STATUS=$("$PY" -c 'import gpu_media; print(gpu_media.gpu_status())' 2>&1 | tail -1)
echo "gpu_status: $STATUS"
case "$STATUS" in usable:*) ;; *) GPU=0 ;; esac

# 0. the names this script drives (no GPU needed: cuda/backend.py is read, not imported)
step names 60 0 "$PY" - <<'EOF'
import ast, sys
sys.path.insert(0, "benchmarks")
import compare
import gpu_media, gpu_media.errors
from gpu_media import backend
from gpu_media.cuda import kernels as k, nvcomp as nd, nvimgcodec as ne
need = {k: ["png_rows", "normalize", "fused_plan", "fatbin_path", "NORMALIZE_METHODS", "DEFAULT_NORMALIZE_METHOD"],
        nd: ["deflate", "stride", "part_images", "api", "load", "available", "PART_BYTES", "MAX_CHUNK_BYTES",
             "_state"],
        ne: ["load", "_state"], compare: ["photo_batch", "main", "FUSED_SWEEP", "GOALS"],
        gpu_media: ["gpu_status", "gpu_available", "write_dump", "encode", "normalize"],
        gpu_media.errors: ["HostFallbackWarning"], backend: ["get_backend"]}
missing = [f"{m.__name__}.{a}" for m, names in need.items() for a in names if not hasattr(m, a)]
src = open("gpu_media/cuda/backend.py").read()
defined = {n.name for n in ast.parse(src).body if isinstance(n, ast.FunctionDef)}
missing += [f"gpu_media.cuda.backend.{f}" for f in ("_load_fatbin", "_device_info", "_launch", "_png_encoder",
                                                     "host_fallbacks", "chunk_bytes") if f not in defined]
seven = ["gpu_png_encode_images_per_s", "gpu_png_dump_images_per_s", "gpu_png_bytes_vs_pillow6",
         "gpu_jpeg_dump_vs_torchvision_by_hand", "gpu_jpeg_encode_vs_torchvision",
         "gpu_normalize_fraction_of_copy_bandwidth", "first_call_seconds"]
missing += [f"compare.GOALS[{g!r}]" for g in seven if g not in compare.GOALS]
print("names:", "all present" if not missing else f"MISSING {missing}")
sys.exit(1 if missing else 0)
EOF

# 1. probe: versions, where libraries load from, nvCOMP's API, the fatbin (about 15 s)
step probe 60 1 "$PY" - <<'EOF'
import re, cupy, gpu_media as gm
from gpu_media import backend
from gpu_media.cuda import kernels as k, nvcomp as nd, nvimgcodec as ne
rt = cupy.cuda.runtime
print("cupy", cupy.__version__, "runtime", rt.runtimeGetVersion(), "driver", rt.driverGetVersion(),
      rt.getDeviceProperties(0)["name"].decode(), "devices", rt.getDeviceCount())
print("gpu_status:", gm.gpu_status())
m = nd.load(); print("nvcomp", m.__version__, m.__cuda_version__, m.__file__, "python API", nd.api())
print("nvimgcodec", ne.load().__version__, ne._state.get("notices", []))
be = backend.get_backend("gpu")
print("fatbin stamp ok:", k.fatbin_path() is not None, "| fatbin loads on this GPU:", be._load_fatbin() is not None)
print("device info", be._device_info(), "chunk_bytes", be.chunk_bytes())
maps = open("/proc/self/maps").read()
print(sorted(set(re.findall(r"\S*lib(?:nvcomp|nvimgcodec|nvjpeg|nvrtc|cudart)[^/\s]*\.so[.\d]*", maps))))
EOF

# 2. nvCOMP PNG path, loudly: raw streams, whole files, parts, timings, the caller's stream (about 60 s)
step png 150 1 "$PY" - <<'EOF'
import io, os, shutil, sys, tempfile, time, zlib
import numpy as np, cupy
sys.path.insert(0, "benchmarks")
import gpu_media as gm
from gpu_media import backend
from gpu_media.cuda import kernels as k, nvcomp as nd
from PIL import Image
from compare import photo_batch
be = backend.get_backend("gpu"); s = cupy.cuda.get_current_stream(); rt = cupy.cuda.runtime
assert be._png_encoder() is nd, f"nvCOMP unavailable: {nd._state}"
print("nvCOMP", nd.load().__version__, "API", nd.api())
sync = cupy.cuda.Device().synchronize
dev = cupy.cuda.Device().id
rng = np.random.default_rng(0)
for (n, h, w, c) in [(3, 17, 31, 1), (3, 17, 31, 3), (2, 33, 7, 4), (2, 1, 1, 3), (1, 300, 257, 4)]:
    u8 = cupy.asarray(rng.integers(0, 256, (n, h, w, c), dtype=np.uint8))
    per = h * (1 + w * c)
    f, a = k.png_rows(u8, xp=cupy, launch=be._launch, stride=nd.stride(per))
    fh, ah = f.get().reshape(-1), a.get()
    for algo in (0, 1, 2, 4):
        keep, ptrs, sizes = nd.deflate(f, n, per, algo, device_id=dev, stream_ptr=s.ptr)
        for i in range(n):
            buf = np.empty(sizes[i], np.uint8)
            rt.memcpy(buf.ctypes.data, ptrs[i], sizes[i], rt.memcpyDeviceToHost)
            raw = zlib.decompress(buf.tobytes(), -15)  # one complete raw deflate stream
            row = fh[i * nd.stride(per): i * nd.stride(per) + per].tobytes()
            assert raw == row and zlib.adler32(raw) == int(ah[i]), (n, h, w, c, algo, i)
        del keep
print("A  nvCOMP RAW deflate round-trips, types 0/1/2/4, C=1/3/4, 1x1 and odd sizes")
x = photo_batch(300, 512); u8h = (x * 255).astype(np.uint8); u8 = cupy.asarray(u8h)
out = be.encode(u8, "png", 75, None)  # 300 images: one nvCOMP call (part_images)
for i in range(0, 300, 23):
    with Image.open(io.BytesIO(out[i])) as im:
        assert np.array_equal(np.asarray(im), u8h[i]), i
print(f"B  300 PNGs decode exactly; {np.mean([len(b) for b in out]):.0f} B/img;",
      "images per nvCOMP call:", nd.part_images(300, 512 * (1 + 512 * 3), min(nd.PART_BYTES, be.chunk_bytes())))
per = 512 * (1 + 512 * 3)
f, _ = k.png_rows(u8[:256], xp=cupy, launch=be._launch, stride=nd.stride(per))
for m in (32, 64, 128, 256):
    nd.deflate(f, m, per, 0, device_id=dev, stream_ptr=s.ptr)
    t = time.perf_counter()
    for _ in range(3):
        nd.deflate(f, m, per, 0, device_id=dev, stream_ptr=s.ptr)
    dt = (time.perf_counter() - t) / 3
    print(f"C  nvCOMP type 0, {m:3d} whole-image chunks per call: {dt * 1e3:6.1f} ms = {m / dt:7.0f} img/s")
default_part = nd.PART_BYTES
for part in (128, 256):
    nd.PART_BYTES = part * nd.stride(per)
    be.encode(u8[:256], "png", 75, None); sync(); ts = []
    for _ in range(3):
        t = time.perf_counter(); be.encode(u8[:256], "png", 75, None); sync(); ts.append(time.perf_counter() - t)
    print(f"D  gm encode png 256x512^2, {part} images per nvCOMP call: {256 / np.median(ts):.0f} img/s")
nd.PART_BYTES = default_part
xc = cupy.asarray(np.ascontiguousarray(x[:256].transpose(0, 3, 1, 2)))
tmp = tempfile.mkdtemp()
for j, kw in enumerate(({}, {"durable": False}, {"durable": False, "chunk_size": 64})):
    ts = []
    for r in range(3):
        root = os.path.join(tmp, f"d{j}{r}"); t = time.perf_counter()
        gm.write_dump(root, xc, key="k", file_type="png", layout="NCHW", device="gpu", **kw); sync()
        ts.append(time.perf_counter() - t); shutil.rmtree(root)
    print(f"E  write_dump png 256 (CUDA f32 NCHW) {kw or 'defaults'}: {256 / np.median(ts):.0f} img/s")
with cupy.cuda.Stream(non_blocking=True) as st:  # issue 17.4: the workers run on this stream and device
    got = gm.write_dump(os.path.join(tmp, "stream"), xc[:40], key="k", file_type="png", layout="NCHW",
                        device="gpu", chunk_size=8, viewer=False)
    st.synchronize()
want = gm.write_dump(os.path.join(tmp, "cpu"), x[:40], key="k", file_type="png", layout="NHWC", device="cpu",
                     chunk_size=8, viewer=False)
for a, b in zip(got, want):
    with Image.open(os.path.join(tmp, "stream", a["path"])) as ia, Image.open(os.path.join(tmp, "cpu", b["path"])) as ib:
        assert np.array_equal(np.asarray(ia), np.asarray(ib)), a["path"]
print("F  a dump on a non-blocking caller stream, chunks of 8: every PNG equals the CPU's pixels")
assert be._png_state["module"] is nd and be.host_fallbacks() == {}, be.host_fallbacks()
print("host fallbacks:", be.host_fallbacks())
EOF

# 3. fused normalize on the big batch, in its own process (a __trap() or hang ends only this step)
step fused 90 1 "$PY" - <<'EOF'
import os, time, numpy as np, cupy, gpu_media as gm
from gpu_media import backend
from gpu_media.cuda import kernels as k
rng = np.random.default_rng(1)
h = rng.random((256, 3, 512, 512), dtype=np.float32); h[1] = h[1] * 2 - 1; h[2] *= 300; h[3, 0, 0, 0] = np.nan
want = gm.normalize(h, layout="NCHW", device="cpu"); x = cupy.asarray(h); be = backend.get_backend("gpu")
res = {}
for m in ("two-pass", "fused"):
    os.environ["GPU_MEDIA_NORMALIZE"] = m
    y = gm.normalize(x, layout="NCHW", device="gpu"); cupy.cuda.Device().synchronize()
    t = time.perf_counter()
    for _ in range(10):
        y = gm.normalize(x, layout="NCHW", device="gpu")
    cupy.cuda.Device().synchronize(); dt = (time.perf_counter() - t) / 10
    res[m] = (np.array_equal(cupy.asnumpy(y), want), dt)
    print(m, "equals cpu:", res[m][0], f"{dt * 1e3:.2f} ms {1.25 * x.nbytes / dt / 1e9:.0f} GB/s")
info = be._device_info()
for knobs in ({"blocks_per_sm": 64}, {"lag": 1, "tile_px": 64}, {"tile_px": 1 << 20}, {"l2_fraction": 1.0}):
    y = k.normalize(x[:32], "NCHW", True, xp=cupy, launch=be._launch, method="fused", device=info, **knobs)
    cupy.cuda.Device().synchronize()
    assert np.array_equal(cupy.asnumpy(y), want[:32]), knobs
print("fused OK on", info, k.fused_plan(256, 512, 512, 3, 4, info))
faster = res["fused"][0] and res["fused"][1] < res["two-pass"][1]
print("DEFAULT DECISION: make 'fused' the default" if faster else "DEFAULT DECISION: keep 'two-pass'",
      f"(fused {res['fused'][1] * 1e3:.2f} ms exact={res['fused'][0]}, two-pass {res['two-pass'][1] * 1e3:.2f} ms)")
EOF

# 4. compare.py, GPU cases only (the issue-11 goals); without fused if step 3 failed
if [ "${RC[fused]}" = 0 ] || [ "$GPU" = 0 ]; then
    TAILN=5 step compare 200 1 "$PY" benchmarks/compare.py --gpu-only --rounds 3 --gpu-n 256 --gpu-size 512 \
        --json "$OUT/compare.json" < /dev/null
else
    TAILN=5 step compare 200 1 "$PY" -c 'import sys; sys.path.insert(0, "benchmarks")
import gpu_media.cuda.kernels as k; k.NORMALIZE_METHODS = ("two-pass",)
import compare; compare.FUSED_SWEEP = (); sys.exit(compare.main(sys.argv[1:]))' \
        --gpu-only --rounds 3 --gpu-n 256 --gpu-size 512 --json "$OUT/compare.json" < /dev/null
fi

# 5. COCO: --device gpu (DALI's reader where DALI imports, else Pillow + GPU) equals --device cpu, pixel for pixel
step coco 60 1 "$PY" - <<'EOF'
import os, subprocess, sys, tempfile
import numpy as np
from PIL import Image
try:
    import nvidia.dali  # noqa: F401
    reader = "DALI"
except Exception as exc:
    reader = f"Pillow (DALI does not import: {type(exc).__name__})"
tmp = tempfile.mkdtemp()
demo = "gpu_media/demo/coco"
for dev in ("cpu", "gpu"):
    subprocess.run([sys.executable, "-m", "gpu_media.cli", "dump", f"{demo}/images", f"{tmp}/{dev}", "--coco",
                    f"{demo}/instances.json", "--predictions", f"{demo}/results.json", "--device", dev,
                    "--format", "png"], check=True)
files = sorted(os.path.relpath(os.path.join(d, f), f"{tmp}/cpu") for d, _, fs in os.walk(f"{tmp}/cpu")
               for f in fs if f.endswith(".png"))
assert files, "no PNG written"
for rel in files:
    with Image.open(f"{tmp}/cpu/{rel}") as a, Image.open(f"{tmp}/gpu/{rel}") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b)), rel
print(f"COCO dump --device gpu equals --device cpu pixel for pixel: {len(files)} PNGs; reader: {reader}")
EOF

# 6. the GPU half of the test suite (fatbin vs NVRTC, png rows, nvCOMP PNGs, dump on a non-blocking stream,
#    both normalize paths, nvImageCodec, warmup); HostFallbackWarning is an error there (pyproject.toml)
TAILN=15 step tests 200 1 "$PY" -m pytest tests -q -p no:cacheprovider -rfEs -k "gpu or nvcomp or fatbin" < /dev/null

echo "== the seven figures (+ the two memory goals) =="
[ "$GPU" = 0 ] && echo "(no usable GPU: $STATUS)"
"$PY" - "$OUT/compare.json" <<'EOF'
import json, sys
seven = ["gpu_png_encode_images_per_s", "gpu_png_dump_images_per_s", "gpu_png_bytes_vs_pillow6",
         "gpu_jpeg_dump_vs_torchvision_by_hand", "gpu_jpeg_encode_vs_torchvision",
         "gpu_normalize_fraction_of_copy_bandwidth", "first_call_seconds"]
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    r = {"goals": {}, "checks": {}}
    print(f"(no compare.json: {type(e).__name__}; every figure skipped)")
for i, name in enumerate(seven + ["gpu_dump_device_extra_over_two_chunks", "gpu_dump_host_peak_over_uint8_batch"]):
    g = r["goals"].get(name, {})
    v = g.get("value"); met = {True: "met", False: "NOT met", None: "skipped"}[g.get("met")]
    print(f"{i + 1 if i < 7 else '-'} {name:42s} {g.get('goal', ''):>9s}  {'' if v is None else f'{v:.3f}':>10s}  {met}")
c = r["checks"]
print("png encoder:", r.get("gpu_png_encoder"), "| png decodes exactly:", c.get("gpu_png_decodes_exactly"),
      "| host fallbacks:", c.get("gpu_host_fallbacks"))
print("normalize best path:", c.get("gpu_normalize_best_path"), "| fused:",
      c.get("gpu_normalize_fused_fraction_of_copy_bandwidth"), c.get("gpu_normalize_fused_equals_cpu"),
      c.get("gpu_normalize_fused_error", ""))
print("png levels:", [(lv["compression_level"], round(lv["images_per_s"]), round(lv["bytes_vs_pillow6"], 3))
                      for lv in r.get("gpu_png_levels", [])])
EOF
echo "step rcs: $(for k in "${!RC[@]}"; do printf '%s=%s ' "$k" "${RC[$k]}"; done)"
FALLBACKS=$(grep -l -E "HostFallbackWarning|host fallback: " "$OUT"/*.log 2>/dev/null | xargs -r -n1 basename)
if [ -f "$OUT/compare.json" ] && ! "$PY" -c 'import json, sys; sys.exit(bool(json.load(open(sys.argv[1]))["checks"].get("gpu_host_fallbacks")))' "$OUT/compare.json"; then
    FALLBACKS="$FALLBACKS compare.json(gpu_host_fallbacks)"
fi
[ -n "$FALLBACKS" ] && echo "!! FALLBACK TO THE HOST in: $FALLBACKS"
FAILED=$(for k in "${!RC[@]}"; do [ "${RC[$k]}" != 0 ] && [ "${RC[$k]}" != skip ] && printf '%s ' "$k"; done)
[ -n "$FAILED" ] && echo "!! FAILED steps: $FAILED"
if [ -n "$FAILED" ] || [ -n "$FALLBACKS" ]; then exit 1; fi
if [ "$GPU" = 0 ]; then echo "no usable GPU here: GPU steps skipped (exit 3)"; exit 3; fi
echo "all steps passed, nothing fell back to the host"
