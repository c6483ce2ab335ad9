"""benchmarks/verify_gpu.sh (issue 17.8) stays in step with the code, checked without a GPU.

Its GPU steps skip cleanly where no GPU is usable (exit status 3, the seven figures listed as
skipped), its ``names`` step still checks that every function it drives exists, and each of
its Python steps parses and has no undefined name (pyflakes through ruff, where installed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

import gpu_media

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "verify_gpu.sh")
SEVEN = ["gpu_png_encode_images_per_s", "gpu_png_dump_images_per_s", "gpu_png_bytes_vs_pillow6",
         "gpu_jpeg_dump_vs_torchvision_by_hand", "gpu_jpeg_encode_vs_torchvision",
         "gpu_normalize_fraction_of_copy_bandwidth", "first_call_seconds"]


def python_steps() -> list[str]:
    with open(SCRIPT, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"<<'EOF'\n(.*?)\nEOF\n", text, flags=re.S)


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
@pytest.mark.skipif(gpu_media.gpu_available(), reason="with a GPU the script runs for minutes: run it by hand")
def test_dry_run_without_a_gpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "VERIFY_BUDGET_S": "120"}
    proc = subprocess.run(["bash", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "names: all present" in out and "## names rc=0" in out, out
    for step in ("probe", "png", "fused", "compare", "coco", "tests"):
        assert f"## {step} SKIPPED (no usable GPU)" in out, (step, out)
    for i, name in enumerate(SEVEN, 1):
        assert re.search(rf"^{i} {name} .*skipped$", out, flags=re.M), (name, out)
    assert "gpu_status: unusable: " in out


def test_python_steps_parse_and_use_no_undefined_name(tmp_path):
    steps = python_steps()
    assert len(steps) == 6  # names, probe, png, fused, coco, the figures (compare runs by its own script)
    for i, code in enumerate(steps):
        compile(code, f"verify_gpu.sh step {i}", "exec")
        (tmp_path / f"step{i}.py").write_text(code)
    try:
        import ruff  # noqa: F401
    except ImportError:
        pytest.skip("ruff is not installed (pip install '.[test]')")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F",
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
