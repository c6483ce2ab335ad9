"""Build gpu_media/cuda/src/kernels.fatbin with nvcc: the CUDA kernels precompiled (issue 11, goal 4).

    python scripts/build_kernels.py            # nvcc from PATH, CUDA_HOME or /usr/local/cuda; NVCC=... to choose

Machine code for sm_80/86/89/90/100 plus PTX for compute_80 (any later GPU), compiled
with the backend's NVRTC options (``--fmad=false -std=c++17 -ftz=true``), so the
results are the same bits whichever way a kernel was built. Beside it,
``kernels.fatbin.json`` records the source digest (``gpu_media.cuda.kernels.source_digest()``):
the backend loads the fatbin only while that digest matches the sources, and
``tests/test_kernels_compile.py`` fails when a kernel changed without a rebuild.
Run it after any change to ``gpu_media/cuda/src/*``, and commit both files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpu_media.cuda import kernels as cuda_kernels


def find_nvcc():
    for cand in (os.environ.get("NVCC"), shutil.which("nvcc"),
                 os.path.join(os.environ.get("CUDA_HOME", ""), "bin", "nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and os.path.isfile(cand):
            return cand
    return None


def main() -> int:
    nvcc = find_nvcc()
    if nvcc is None:
        print("nvcc not found (PATH, CUDA_HOME, /usr/local/cuda; or NVCC=...)", file=sys.stderr)
        return 1
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernels.cu")
        with open(src, "w", encoding="utf-8") as f:
            f.write(cuda_kernels.source())
        out = os.path.join(tmp, "kernels.fatbin")
        cmd = cuda_kernels.nvcc_fatbin_command(nvcc, src, out)
        print(" ".join(cmd))
        subprocess.run(cmd, check=True)
        shutil.copyfile(out, cuda_kernels.FATBIN)
    stamp = {"source_sha256": cuda_kernels.source_digest(), "archs": list(cuda_kernels.FATBIN_ARCHS),
             "ptx": f"compute_{cuda_kernels.FATBIN_ARCHS[0]}", "nvcc": version}
    with open(cuda_kernels.FATBIN_STAMP, "w", encoding="utf-8") as f:
        json.dump(stamp, f, indent=1)
        f.write("\n")
    print(f"wrote {cuda_kernels.FATBIN} ({os.path.getsize(cuda_kernels.FATBIN)} bytes) and {cuda_kernels.FATBIN_STAMP}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
