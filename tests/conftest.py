"""One contract, two backends: every semantic test takes the ``device`` fixture.

"gpu" runs where CuPy and a CUDA device are usable and skips cleanly elsewhere.
"""

import os

import pytest

import gpu_media


@pytest.fixture(autouse=True)
def _no_device_env(monkeypatch):
    monkeypatch.delenv("GPU_MEDIA_DEVICE", raising=False)


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "gpu" and not gpu_media.gpu_available():
        pytest.skip("no usable GPU backend (CuPy + CUDA device) on this machine")
    return request.param


@pytest.fixture
def reference_dir():
    """What wandb 0.31 writes (tests/data/wandb-0.31/, made by make_reference.py there)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "wandb-0.31")


@pytest.fixture
def bounded():
    """The test fails after ``dataset_helpers.TEST_SECONDS`` instead of hanging (Ray and S3 tests)."""
    from dataset_helpers import time_limit

    with time_limit():
        yield


@pytest.fixture(scope="module")
def ray():
    """A local 2-CPU Ray for the module (``dataset_helpers.local_ray``), shut down after its last test."""
    from dataset_helpers import local_ray

    mod = local_ray()
    yield mod
    mod.shutdown()


# ---- the viewer's browser tests (tests/test_viewer.py, tests/test_viewer_eval.py): one Chromium per session ----

def _unavailable(what: str):
    msg = (f"{what}; the viewer's browser tests need Chromium and Playwright's Python package: "
           "`apt-get install chromium` (Debian/Ubuntu; or set GPU_MEDIA_CHROMIUM to a Chromium binary) and "
           "`pip install playwright` (no `playwright install` needed)")
    if os.environ.get("GPU_MEDIA_BROWSER_OPTIONAL") == "1":
        pytest.skip(msg + " [skipped: GPU_MEDIA_BROWSER_OPTIONAL=1]")
    pytest.fail(msg + " (set GPU_MEDIA_BROWSER_OPTIONAL=1 to skip instead)", pytrace=False)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's, through Playwright) for tests/test_viewer*.py, one per session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    from gpu_media import viewer

    exe = viewer.find_chromium()
    if not exe or not os.path.exists(exe):
        _unavailable(f"no Chromium found (GPU_MEDIA_CHROMIUM={os.environ.get('GPU_MEDIA_CHROMIUM')!r}, "
                     "/usr/bin/chromium, chromium / chromium-browser on PATH)")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=exe, args=list(viewer.CHROMIUM_ARGS))
    except Exception as exc:  # noqa: BLE001 - report whatever the launch says
        pw.stop()
        _unavailable(f"Chromium at {exe} does not start ({exc})")
    yield b
    b.close()
    pw.stop()
