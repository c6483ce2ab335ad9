#!/usr/bin/env bash
# Download into .whl/ the wheels that benchmarks/verify_gpu.sh and gpu_check.sh need on a GPU machine
# that has no network: nvImageCodec and nvJPEG, nvCOMP (the GPU PNG encoder) for
# CPython 3.12, manylinux x86_64, and the small tools of the test extra that machine
# lacks (hypothesis, tqdm, pycocotools) plus setuptools/wheel to install gpu-media
# itself there without build isolation. (wandb is left out: too big; its tests skip.)
#
# With nvCOMP the wheels exceed what the device tool carries (64 MiB), so they are
# installed here into site/ (pip install --no-deps --target, for CPython 3.12), thinned
# (the extension modules of other Pythons, libnvcomp's bin/ and include/ go) and packed
# as site.tar.xz, which gpu_check.sh unpacks:
#
#   bash scripts/fetch_gpu_wheels.sh        # then: benchmarks/verify_gpu.sh (or gpu_check.sh), carry ["site.tar.xz"]
#
# Versions are pinned (override: NVIMGCODEC_VERSION=... NVJPEG_VERSION=... NVCOMP_VERSION=...).
# nvCOMP 6.0 is what `pip install ".[gpu]"` takes alone; NVCOMP_VERSION=5.3.0.16 packs the
# 5.3 that pip takes next to DALI, to run verify_gpu.sh on nvCOMP's other Python API (its libnvcomp
# comes along: the requirement loop below follows the wheel's pin). One of them per site.tar.xz
# (both together pass the device tool's 64 MiB).
# Each wheel's unconditional Requires-Dist is fetched as well, except what the GPU
# machine already has (numpy, cupy). .whl/, site/ and site.tar.xz stay out of git
# (the repository's info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."

NVIMGCODEC_VERSION=${NVIMGCODEC_VERSION:-0.9.0.20}
NVJPEG_VERSION=${NVJPEG_VERSION:-13.3.2.43}
NVCOMP_VERSION=${NVCOMP_VERSION:-6.0.0.12}
PY=${PYTHON:-python3}
DEST=.whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

# keep the wheels and what is made of them out of git (a worktree shares the main exclude file)
if GITDIR=$(git rev-parse --git-common-dir 2>/dev/null); then
    mkdir -p "$GITDIR/info"
    touch "$GITDIR/info/exclude"
    for pat in '/.whl/' '/site/' '/site.tar.xz'; do
        grep -qxF "$pat" "$GITDIR/info/exclude" || echo "$pat" >> "$GITDIR/info/exclude"
    done
fi
mkdir -p "$DEST"

download() {  # NAME==VERSION or NAME
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLATFORMS[@]}" -d "$DEST" "$1"
}

download "nvidia-nvimgcodec-cu13==${NVIMGCODEC_VERSION}"
download "nvidia-nvjpeg==${NVJPEG_VERSION}"
download "nvidia-nvcomp-cu13==${NVCOMP_VERSION}"
for spec in hypothesis==6.170.15 sortedcontainers==2.4.0 tqdm==4.70.1 setuptools==84.2.1 wheel==0.48.0 pycocotools==2.0.11; do
    download "$spec"
done

# requirements of what we fetched, for CPython 3.12 on Linux x86-64 (extras and markers
# evaluated by pip's own packaging), until nothing is missing
missing() {
    "$PY" - "$DEST" <<'PYEOF'
import glob, re, sys, zipfile
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
have, need = set(), {}
for whl in glob.glob(sys.argv[1] + "/*.whl"):
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        text = z.read(meta).decode()
    have.add(canonicalize_name(re.search(r"^Name: *(\S+)", text, re.M).group(1)))
    for line in re.findall(r"^Requires-Dist: *(.+)$", text, re.M):
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            need[canonicalize_name(req.name)] = f"{req.name}{req.specifier}"
on_gpu_machine = {"numpy", "cupy-cuda13x", "cupy"}
print("\n".join(spec for name, spec in need.items() if name not in have and name not in on_gpu_machine))
PYEOF
}
while :; do
    todo=$(missing)
    [ -z "$todo" ] && break
    for spec in $todo; do
        echo "fetching a requirement: $spec"
        download "$spec"
    done
done

echo "wheels in $DEST:"
ls -l "$DEST"
du -ch "$DEST"/*.whl | tail -1

# site/: the wheels installed for CPython 3.12 (no dependency resolution: the loop above
# fetched them), then thinned, then packed
rm -rf site site.tar.xz
"$PY" -m pip install -q --no-index --no-deps --no-compile --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" --target site "$DEST"/*.whl
find site -name '*.so' -name '*cpython-*' ! -name '*cpython-312-*' -print -delete | sed 's/^/thinned: /'
find site -name '*.so' -name '*.abi3.so' -print | sed 's/^/kept (stable ABI): /'
rm -rf site/nvidia/libnvcomp/bin site/nvidia/libnvcomp/include site/bin
find site -name '__pycache__' -prune -exec rm -rf {} +
du -sh site
XZ_OPT=${XZ_OPT:--6T0} tar -cJf site.tar.xz site
echo "site.tar.xz: $(du -h site.tar.xz | cut -f1) ($(stat -c %s site.tar.xz) bytes; the device tool carries 64 MiB)"
