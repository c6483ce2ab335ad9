"""Every documented ``pip install "gpu-media[...]"`` resolves against PyPI (issue 17.1).

``pip install ".[dali,gpu]"`` once failed with ResolutionImpossible: nvCOMP 6's Python
wheel pins ``nvidia-libnvcomp-cu13==6.*`` while every DALI 2.x pins a libnvcomp 5.x. That
only shows against the real index, so these tests run ``pip install --dry-run
--ignore-installed`` of each combination (all at once, in parallel subprocesses; about a
minute) and fail on any resolution error, printing pip's explanation.

They need PyPI: they run where ``CI`` is set (``.ci/run`` sets it) or
``GPU_MEDIA_CHECK_EXTRAS=1``, and skip, saying why, where PyPI cannot be reached. The
combinations are :data:`REQUIRED` (what the README and issue 17 promise) plus every
``.[...]`` / ``gpu-media[...]`` spelled in the README, docs/ and the package's messages
(:func:`documented_combinations`), so a new install line is checked as soon as it is written.
The project's own requirements are taken from pyproject.toml (no build of gpu-media needed).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the combinations the README and issue 17 promise, whatever the docs spell today
REQUIRED = ("gpu", "dali,gpu", "gpu,ray,s3", "gpu,coco", "gpu,ray,s3,coco", "gpu-cu12", "dali-cu12,gpu-cu12",
            "coco", "ray", "s3", "wandb", "bench", "test", "dali,test")
#: where install lines are documented
DOC_PATHS = ("README.md", "docs", "gpu_media", "benchmarks", ".ci/run", "scripts")
PATTERN = re.compile(r"""(?:["'(\s]\.|gpu-media|gpu_media-\*\.whl\))\[([a-z0-9][a-z0-9,\- ]*)\]""")
TIMEOUT_S = 240
WORKERS = 8


def pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pip's own copy of tomli
        from pip._vendor import tomli as tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def normalized(combo: str) -> str:
    return ",".join(sorted({e.strip() for e in combo.split(",") if e.strip()}))


def documented_combinations() -> set[str]:
    """Every extras combination spelled ``.[a,b]`` or ``gpu-media[a,b]`` in the docs and the package."""
    found = set()
    for rel in DOC_PATHS:
        path = os.path.join(ROOT, rel)
        files = [path] if os.path.isfile(path) else [
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith((".py", ".md", ".sh", ".html"))]
        for name in files:
            with open(name, encoding="utf-8", errors="replace") as f:
                found.update(normalized(m) for m in PATTERN.findall(f.read()))
    return found


def requirements(combo: str) -> list[str]:
    """gpu-media's own requirements plus those of each extra of ``combo`` (as pip would gather them)."""
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    out = list(project["dependencies"])
    for extra in combo.split(","):
        out += extras[extra]
    return out


def combinations() -> list[str]:
    return sorted({normalized(c) for c in REQUIRED} | documented_combinations())


def covering(combos: list[str]) -> dict[str, str]:
    """Each combination -> the one whose dry run answers for it: itself, or one with a superset of its requirements.

    A resolution of the larger set is one of the smaller (the same pins satisfy fewer
    requirements), so only the maximal combinations are handed to pip (about a minute
    instead of four on a shared 2-core machine).
    """
    reqs = {c: set(requirements(c)) for c in combos}
    out = {}
    for c in combos:
        bigger = [b for b in combos if b != c and reqs[c] < reqs[b]]
        out[c] = max(bigger, key=lambda b: (len(reqs[b]), b)) if bigger else c
    # one covering answer per group: follow chains to a maximal combination
    for c in combos:
        while out[out[c]] != out[c]:
            out[c] = out[out[c]]
    return out


def test_every_documented_extra_exists():
    """Offline: each extra named in the docs is defined in pyproject.toml (a typo fails here)."""
    defined = set(pyproject()["project"]["optional-dependencies"])
    unknown = {c: sorted(set(c.split(",")) - defined) for c in combinations() if set(c.split(",")) - defined}
    assert not unknown, f"extras documented but not in pyproject.toml: {unknown}"
    assert "dali,gpu" in documented_combinations(), "the README's DALI install line is not seen by the scan"


def test_gpu_extras_keep_nvcomp_5_3_reachable():
    """Offline: DALI 2.x pins libnvcomp 5.3, nvCOMP 6's wheel pins libnvcomp 6: the gpu extras must allow 5.3.

    (gpu_media.cuda's nvCOMP wrapper speaks both Python APIs.)
    """
    from pip._vendor.packaging.requirements import Requirement

    extras = pyproject()["project"]["optional-dependencies"]
    for extra, name in (("gpu", "nvidia-nvcomp-cu13"), ("gpu-cu12", "nvidia-nvcomp-cu12")):
        reqs = {Requirement(r).name: Requirement(r) for r in extras[extra]}
        spec = reqs[name].specifier
        assert spec.contains("5.3.0.16") and spec.contains("6.0.0.12"), (extra, str(spec))
        # NVRTC comes with the GPU extras (CuPy compiles its elementwise kernels with it)
        assert "nvrtc" in reqs["cuda-toolkit"].extras, extra


def _pypi_reachable() -> str | None:
    """None when pip reaches its index, else why not."""
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "pip"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if proc.returncode != 0 or "Available versions" not in proc.stdout:
        return (proc.stderr.strip().splitlines() or ["pip index versions failed"])[-1]
    return None


def _dry_run(combo: str, tmp: str) -> tuple[str, int, str, list]:
    report = os.path.join(tmp, combo.replace(",", "+") + ".json")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--disable-pip-version-check", "--report", report, *requirements(combo)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return combo, -1, f"pip did not finish resolving in {TIMEOUT_S} s", []
    installed = []
    if proc.returncode == 0:
        with open(report, encoding="utf-8") as f:
            installed = [(i["metadata"]["name"], i["metadata"]["version"]) for i in json.load(f)["install"]]
    return combo, proc.returncode, proc.stdout + proc.stderr, installed


@pytest.fixture(scope="module")
def resolved():
    if not (os.environ.get("CI") or os.environ.get("GPU_MEDIA_CHECK_EXTRAS") == "1"):
        pytest.skip("resolving the extras against PyPI runs in CI (CI set) or with GPU_MEDIA_CHECK_EXTRAS=1")
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("the GPU extras exist for Linux x86-64/aarch64 only")
    why = _pypi_reachable()
    if why:
        pytest.skip(f"PyPI is not reachable here ({why})")
    cover = covering(combinations())
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda c: _dry_run(c, tmp), sorted(set(cover.values()))))
    by_run = {combo: (rc, log, installed) for combo, rc, log, installed in results}
    return {combo: by_run[run] for combo, run in cover.items()}


def test_covering_runs_only_maximal_combinations():
    """Offline: the plan of dry runs covers every combination with one whose requirements contain its own."""
    combos = combinations()
    cover = covering(combos)
    assert set(cover) == set(combos)
    for c, run in cover.items():
        assert set(requirements(c)) <= set(requirements(run)), (c, run)
        assert cover[run] == run
    assert cover["gpu"] != "gpu" and cover["dali,gpu"] == "dali,gpu" and cover["gpu-cu12"] == "dali-cu12,gpu-cu12"


def test_every_documented_combination_resolves(resolved):
    failed = {c: log[-3000:] for c, (rc, log, _) in resolved.items() if rc != 0}
    assert not failed, "\n\n".join(f'pip install ".[{c}]" does not resolve:\n{log}' for c, log in failed.items())


def test_dali_and_gpu_meet_on_one_libnvcomp(resolved):
    """With DALI, pip must settle on one libnvcomp both accept (5.3 today), the nvCOMP wheel of that version."""
    for combo, lib in (("dali,gpu", "nvidia-libnvcomp-cu13"), ("dali-cu12,gpu-cu12", "nvidia-libnvcomp-cu12")):
        rc, _, installed = resolved[combo]
        assert rc == 0
        versions = dict(installed)
        assert lib in versions, combo
        assert versions[lib.replace("libnvcomp", "nvcomp")] == versions[lib], (combo, versions)
        # and the GPU extras bring NVRTC (a clean GPU machine without torch needs it)
        assert any(n.startswith("nvidia-cuda-nvrtc") for n in versions), combo
