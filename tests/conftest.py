"""One contract, two backends: every semantic test takes the ``device`` fixture.

"gpu" runs where CuPy and a CUDA device are usable and skips cleanly elsewhere.
"""

import os

import numpy as np
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


def host(x):
    """Any backend output (NumPy/CuPy array, or a list of them) -> NumPy."""
    if isinstance(x, list):
        return [host(a) for a in x]
    if type(x).__module__.split(".")[0] == "cupy":
        return x.get()
    return np.asarray(x)


@pytest.fixture
def reference_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", "..", "shared", "reference", "wandb-0.31"),
                 os.path.join(here, "..", "shared", "reference", "wandb-0.31")):
        if os.path.isdir(cand):
            return os.path.abspath(cand)
    pytest.fail("../shared/reference/wandb-0.31 is missing: it ships beside the repository")


def read_rel(root, rel) -> bytes:
    """Bytes of the file at the '/'-separated path ``rel`` under ``root`` (asserting it exists)."""
    path = os.path.join(str(root), *rel.split("/"))
    assert os.path.isfile(path), rel
    with open(path, "rb") as f:
        return f.read()


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image bytes -> the decoded NumPy array (Pillow)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


def hwc(a):
    """(H,W) -> (H,W,1); (H,W,C) unchanged."""
    a = np.asarray(a)
    return a[:, :, None] if a.ndim == 2 else a
