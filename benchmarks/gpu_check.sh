#!/usr/bin/env bash
# One run on a lent GPU machine: install the carried wheels, the whole test suite (GPU
# half included), compare.py's GPU cases, pytest-benchmark, and a summary, all in $OUT.
#
#   bash scripts/fetch_gpu_wheels.sh             # here, once: .whl/ -> site/ -> site.tar.xz (about 35 MB)
#   bash benchmarks/gpu_check.sh                 # there, through the device tool, carry ["site.tar.xz"]
#
# The GPU machine has Python 3.12, CuPy, NumPy, Pillow, pytest, pytest-benchmark, torch
# and torchvision, and no network: nvImageCodec/nvJPEG, nvCOMP (and hypothesis, tqdm,
# setuptools) come from site.tar.xz (or, the older way, from .whl/ when that is carried
# instead). $OUT gets at most 8 files, no folders:
#   summary.md  env.log  tests.log  tests-junit.xml  compare.log  compare.json  bench.log  bench.json
# Each step has its own time limit; the whole run stays under 9 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
START=$(date +%s)
ENVLOG=$OUT/env.log
: > "$ENVLOG"

DEADLINE=$(( START + ${CHECK_BUDGET_S:-510} ))  # steps end by then: 8.5 minutes, summary after

step() {  # step NAME LIMIT_S LOG CMD...: run within min(LIMIT_S, time left), record rc and seconds
    local name=$1 limit=$2 log=$3
    shift 3
    local t0=$(date +%s)
    local left=$(( DEADLINE - t0 ))
    [ "$left" -lt "$limit" ] && limit=$left
    echo "== $name (limit ${limit}s): $*" | tee -a "$log"
    local rc=124
    if [ "$limit" -gt 5 ]; then
        timeout --kill-after=5 "$limit" "$@" >> "$log" 2>&1
        rc=$?
    else
        echo "$name skipped: out of time" | tee -a "$log"
    fi
    echo "$name rc=$rc seconds=$(( $(date +%s) - t0 ))" | tee -a "$ENVLOG"
    eval "RC_$name=$rc"
}

# --- 1. carried packages (site.tar.xz, or wheels) and gpu-media itself, outside the system site-packages ---
SITE=/tmp/gpu-check-site
GM=/tmp/gpu-check-gm
rm -rf "$SITE" "$GM"
if [ -f site.tar.xz ]; then
    mkdir -p "$SITE"
    step install_wheels 60 "$ENVLOG" tar -xJf site.tar.xz -C "$SITE" --strip-components=1
elif ls .whl/*.whl >/dev/null 2>&1; then
    step install_wheels 60 "$ENVLOG" "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" .whl/*.whl
else
    echo "neither site.tar.xz nor .whl/ carried: nvImageCodec/nvCOMP tests will skip (run scripts/fetch_gpu_wheels.sh, carry site.tar.xz)" | tee -a "$ENVLOG"
fi
# nvImageCodec's wheel makes "nvidia" a regular package; let it share the name with the
# nvidia/ folders of the system (CUDA wheels of torch/CuPy, DALI) as a namespace
if [ -d "$SITE/nvidia" ]; then
    echo '__path__ = __import__("pkgutil").extend_path(__path__, __name__)' > "$SITE/nvidia/__init__.py"
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
# installed (not editable) only for its metadata and console script; $PWD comes first on the path
step install_gpu_media 60 "$ENVLOG" "$PY" -m pip install -q --no-index --no-deps --no-build-isolation \
    --no-compile --no-cache-dir --target "$GM" .
export PYTHONPATH="$PYTHONPATH:$GM"
export PATH="$GM/bin:$PATH"
unset GPU_MEDIA_DEVICE

# --- 2. the machine ---
{
    echo "== date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "== git: $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(git status --short 2>/dev/null | wc -l) changed files"
    nvidia-smi || echo "nvidia-smi failed"
    "$PY" - <<'EOF'
import importlib, platform, sys
print("python", sys.version.split()[0], platform.platform())
for name in ["numpy", "PIL", "cupy", "torch", "torchvision", "pytest", "pytest_benchmark", "hypothesis",
             "wandb", "gpu_media", "nvidia.nvcomp"]:
    try:
        m = importlib.import_module(name)
        print(f"{name:20s} {getattr(m, '__version__', '?'):20s} {getattr(m, '__file__', '')}")
    except Exception as exc:
        print(f"{name:20s} MISSING ({type(exc).__name__}: {exc})")
import gpu_media
from gpu_media import backend
from gpu_media.cuda import nvimgcodec as ne
try:  # through the wrapper: quiet, and its error names what is missing
    print(f"{'nvidia.nvimgcodec':20s} {ne.load().__version__:20s} {ne.load().__file__}")
    print("nvimgcodec notices (kept by the wrapper):", ne._state.get("notices", []))
except Exception as exc:
    print(f"{'nvidia.nvimgcodec':20s} MISSING ({type(exc).__name__}: {exc})")
print("gpu_media.gpu_available():", gpu_media.gpu_available(), backend._gpu_state.get("error", ""))
from gpu_media.cuda import nvcomp as nvcomp_deflate
print("gpu_media.cuda.nvcomp.available():", nvcomp_deflate.available(), nvcomp_deflate._state.get("error", ""))
try:
    import cupy
    print("cupy device 0:", cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
          "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(), "driver", cupy.cuda.runtime.driverGetVersion())
except Exception as exc:
    print("cupy:", type(exc).__name__, exc)
# what nvImageCodec encodes from GPU memory and from host memory on a GPU encoder
try:
    import io
    import numpy as np
    from PIL import Image
    n = ne.load()
    enc = ne.get_encoder(0)
    rng = np.random.default_rng(0)
    for c in (1, 3, 4):
        host = rng.integers(0, 256, (40, 56, c), dtype=np.uint8)
        for where, src in (("cuda", cupy.asarray(host)), ("host", host)):
            row = []
            for codec in ("jpeg", "png", "bmp", "tiff", "jpeg2k", "webp"):
                a = src[:, :, 0] if c == 1 else src
                kw = {"sample_format": n.SampleFormat.P_Y, "color_spec": n.ColorSpec.GRAY} if c == 1 else {}
                try:
                    cs = enc.encode([n.as_image(a, **kw)], codec)[0]
                    if cs is None:
                        row.append(f"{codec}:None")
                        continue
                    with Image.open(io.BytesIO(bytes(cs))) as im:
                        d = np.asarray(im)
                    exact = d.size == host.size and np.array_equal(d.reshape(host.shape), host)
                    row.append(f"{codec}:{im.mode}{'=' if exact else '~'}")
                except Exception as exc:
                    row.append(f"{codec}:{type(exc).__name__}")
            print(f"nvimgcodec GPU encoder, C={c}, {where} memory:", " ".join(row))
except Exception as exc:
    print("nvimgcodec probe:", type(exc).__name__, exc)
EOF
} >> "$ENVLOG" 2>&1

# --- 3. the whole test suite, skip reasons listed ---
# the GPU machine has no Chromium: the viewer's browser tests skip there (they run in CI)
export GPU_MEDIA_BROWSER_OPTIONAL=1
step tests 300 "$OUT/tests.log" "$PY" -m pytest tests -q -rfEs -p no:cacheprovider \
    --junitxml="$OUT/tests-junit.xml"

# --- 4. compare.py (CPU cases, then the GPU cases where the GPU backend is usable) ---
step compare 200 "$OUT/compare.log" "$PY" benchmarks/compare.py --rounds 5 --gpu-n 256 --gpu-size 512 \
    --json "$OUT/compare.json"

# --- 5. pytest-benchmark, each stage on each backend ---
step bench 100 "$OUT/bench.log" "$PY" -m pytest benchmarks -q -rfEs -p no:cacheprovider \
    --benchmark-json="$OUT/bench.json" --benchmark-max-time=0.5 --benchmark-min-rounds=3 --benchmark-sort=name

# --- 6. summary.md ---
export RC_install_wheels=${RC_install_wheels:-none} RC_install_gpu_media RC_tests RC_compare RC_bench
export CHECK_SECONDS=$(( $(date +%s) - START )) OUT
"$PY" - <<'EOF' > "$OUT/summary.md" 2>> "$ENVLOG"
import datetime, json, os, re, subprocess
import xml.etree.ElementTree as ET

out = os.environ["OUT"]

def read(name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read()
    except OSError:
        return ""

def smi(query):
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return "?"

print("# GPU check\n")
print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
print(f"- device: {smi('name,memory.total,driver_version')}")
print("- command: `bash benchmarks/gpu_check.sh` (device tool, carry `[\"site.tar.xz\"]`), "
      f"{os.environ['CHECK_SECONDS']} s in all")
print("- exit codes: " + ", ".join(f"{k} {os.environ.get('RC_' + k, '?')}"
                                   for k in ("install_wheels", "install_gpu_media", "tests", "compare", "bench")))
env = read("env.log")
for line in env.splitlines():
    if line.startswith(("python ", "gpu_media.gpu_available", "gpu_media.cuda.nvcomp", "cupy device",
                        "nvimgcodec GPU encoder", "nvimgcodec probe")) \
            or re.match(r"(numpy|cupy|torch|nvidia\.nvimgcodec|nvidia\.nvcomp) ", line):
        print(f"- `{line.strip()}`")

print("\n## Tests\n")
try:
    root = ET.fromstring(read("tests-junit.xml"))
    suites = [root] if root.tag == "testsuite" else list(root)
    tot = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = tot["tests"] - tot["failures"] - tot["errors"] - tot["skipped"]
    print(f"{passed} passed, {tot['failures']} failed, {tot['errors']} errors, {tot['skipped']} skipped "
          f"({tot['tests']} in all)\n")
    bad = [f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase")
           if c.find("failure") is not None or c.find("error") is not None]
    for b in bad[:40]:
        print(f"- FAILED `{b}`")
    gpu = [c for c in root.iter("testcase") if "gpu" in c.get("name", "")]
    gpu_run = [c for c in gpu if c.find("skipped") is None]
    print(f"\nTests with 'gpu' in their id: {len(gpu)}; run: {len(gpu_run)}; "
          f"failed: {sum(1 for c in gpu_run if c.find('failure') is not None or c.find('error') is not None)}")
except Exception as exc:
    print(f"no junit xml ({type(exc).__name__}: {exc})")
reasons = {}
for ln in read("tests.log").splitlines():
    m = re.match(r"SKIPPED \[(\d+)\] [^:]+:\d+: (.*)", ln)
    if m:
        reasons[m.group(2)] = reasons.get(m.group(2), 0) + int(m.group(1))
if reasons:
    print("\nSkip reasons (count):\n")
    for why, k in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"- {k} x `{why[:200]}`")
tail = [ln for ln in read("tests.log").splitlines() if re.search(r"\d+ (passed|failed)", ln)]
if tail:
    print(f"\npytest: `{tail[-1].strip('= ')}`")

print("\n## compare.py\n")
try:
    rep = json.loads(read("compare.json"))
    print("| case | images/s | input MB/s | bytes/image |\n| --- | ---: | ---: | ---: |")
    for r in rep["results"]:
        if "images_per_s" in r:
            b = f"{r['bytes_per_image']:.0f}" if r.get("bytes_per_image") else ""
            print(f"| {r['case']} | {r['images_per_s']:.1f} | {r['input_MB_per_s']:.1f} | {b} |")
    for k, v in rep.get("checks", {}).items():
        print(f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}")
    if rep.get("goals"):
        print("\n| goal (issue 11) | target | measured | met |\n| --- | --- | ---: | --- |")
        for k, g in rep["goals"].items():
            val = "" if g["value"] is None else f"{g['value']:.3f}"
            met = "skipped" if g["met"] is None else ("yes" if g["met"] else "**no**")
            print(f"| {k} | {g['goal']} | {val} | {met} |")
        why = {g["skipped"] for g in rep["goals"].values() if g.get("skipped")}
        for w in sorted(why):
            print(f"\nskipped: {w}")
    for name in ("gpu_jpeg_dump_stages", "cpu_jpeg_dump_stages"):
        st = rep.get(name) or {}
        if "images" in st:
            print(f"\n{name} ({st['images']} images; each stage alone, median; the dump overlaps them):\n")
            print("| stage | ms | images/s |\n| --- | ---: | ---: |")
            for k, v in st.items():
                if isinstance(v, float):
                    print(f"| {k} | {v * 1e3:.2f} | {st['images'] / v:.0f} |")
                elif k != "images":
                    print(f"| {k} | {v} | |")
        elif st:
            print(f"\n{name}: {st}")
    for r in rep.get("gpu_png_levels", []):
        print(f"- PNG level {r['compression_level']} (nvCOMP type {r['nvcomp_algorithm_type']}): "
              f"{r['images_per_s']:.0f} images/s, {r['bytes_vs_pillow6']:.3f}x Pillow level 6 bytes")
    for r in rep["results"]:
        if "device_extra_peak_bytes" in r or "error" in r:
            print(f"- {r['case']}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in r.items() if k != "case"))
except Exception as exc:
    print(f"no compare.json ({type(exc).__name__}: {exc}); see compare.log")

print("\n## pytest-benchmark\n")
try:
    bj = json.loads(read("bench.json"))
    print("| benchmark | median ms | rounds |\n| --- | ---: | ---: |")
    for b in bj["benchmarks"]:
        print(f"| {b['name']} | {b['stats']['median'] * 1e3:.2f} | {b['stats']['rounds']} |")
except Exception as exc:
    print(f"no bench.json ({type(exc).__name__}: {exc}); see bench.log")
EOF
echo "summary: $OUT/summary.md ($(( $(date +%s) - START )) s)"
cat "$OUT/summary.md"
ls -l "$OUT"
