"""Device dispatch (gpu_media.backend) and the numpy + pillow only promise."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gpu_media as gm
from gpu_media.backend import resolve_device


def test_cpu_and_auto_on_host_arrays(monkeypatch):
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto", on_gpu=False) == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("cuda")


def test_gpu_without_gpu_is_an_error_not_a_fallback(monkeypatch):
    if gm.gpu_available():
        pytest.skip("this machine has a usable GPU")
    with pytest.raises(gm.DeviceError, match="device='gpu'"):
        gm.normalize(np.zeros((1, 2, 2, 3), np.uint8), device="gpu")
    monkeypatch.setenv("GPU_MEDIA_DEVICE", "gpu")
    with pytest.raises(gm.DeviceError):
        gm.encode(np.zeros((1, 2, 2, 3), np.uint8))  # the variable overrides "auto"
    assert resolve_device("cpu") == "cpu"  # ... but never an explicit device


def test_environment_variable_is_checked(monkeypatch):
    monkeypatch.setenv("GPU_MEDIA_DEVICE", "tpu")
    with pytest.raises(ValueError, match="GPU_MEDIA_DEVICE must be one of"):
        resolve_device("auto")
    monkeypatch.setenv("GPU_MEDIA_DEVICE", "cpu")
    assert resolve_device("auto", on_gpu=True) == "cpu"


def test_imports_and_works_with_only_numpy_and_pillow(tmp_path):
    script = textwrap.dedent(f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"wandb", "torch", "cupy", "tqdm", "hypothesis", "nvidia", "skimage",
                                           "scipy", "ray", "fsspec", "s3fs", "moto", "boto3", "botocore"}}:
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np, gpu_media as gm
        x = np.random.default_rng(0).random((3, 8, 8, 3))
        d = gm.write_dump({str(tmp_path)!r}, x, key="k", masks={{"m": {{"mask_data": np.zeros((3, 8, 8), np.uint8)}}}},
                          chunk_size=1, progress=True)
        assert len(d) == 3 and not gm.gpu_available()
        try:
            gm.to_wandb(x)
        except ImportError as e:
            assert "pip install" in str(e)
        else:
            raise SystemExit("to_wandb worked without wandb?")
        import gpu_media.ray, gpu_media.storage, gpu_media.formats.shards  # no Ray, no fsspec: still importable
        try:
            gpu_media.ray.write_dump_dataset(None, {str(tmp_path)!r}, key="r")
        except gm.MediaError as e:
            assert 'pip install ".[ray]"' in str(e), e
        else:
            raise SystemExit("write_dump_dataset worked without Ray?")
        try:
            gpu_media.storage.open_output("s3://bucket/x")
        except gm.MediaError as e:
            assert 'pip install ".[s3]"' in str(e), e
        else:
            raise SystemExit("an s3:// URL opened without fsspec?")
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok" and "3/3 images" in r.stderr  # plain progress without tqdm
