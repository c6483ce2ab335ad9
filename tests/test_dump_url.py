"""docs/SPEC.md 6.5: ``write_dump`` to a URL goes to storage or fails clearly; never a local ``./s3:`` folder.

The S3 round trip itself (a moto server) is in tests/test_s3.py.
"""

import os
import re
import sys

import numpy as np
import pytest

import gpu_media as gm
from gpu_media import MediaError
from gpu_media.dump import write_dump_batches
from gpu_media.storage import S3_EXTRA, is_url
from media_helpers import files_under


def batch(n=2):
    rng = np.random.default_rng(0)
    return {"images": rng.integers(0, 256, (n, 5, 6, 3), dtype=np.uint8),
            "masks": {"m": {"mask_data": rng.integers(0, 3, (n, 5, 6))}}}


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """An empty working folder: nothing may appear in it."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.parametrize("url", ["s3://b/p", "gs://b", "file:///x", "s3a://b", "my-scheme://x", "a+b.c://x",
                                 "HTTPS://h/p"])
def test_is_url_takes_any_scheme(url):
    assert is_url(url)


@pytest.mark.parametrize("path", ["d", "./s3:/b", "a/b://c", "C:/x", "://x", "1s3://b", "", "s3:/b"])
def test_is_url_refuses_paths(path):
    assert not is_url(path)


@pytest.mark.parametrize("write", ["write_dump", "write_dump_batches"])
def test_empty_out_dir_is_an_error(cwd, write):
    b = batch()
    call = (lambda: gm.write_dump("", key="k", device="cpu", **b)) if write == "write_dump" else (
        lambda: write_dump_batches("", [b], key="k", device="cpu"))
    with pytest.raises(MediaError, match=r"out_dir must be a folder or a URL, got ''"):
        call()
    assert os.listdir(cwd) == []


def test_file_url_is_the_local_folder(cwd, tmp_path):
    ref = gm.write_dump(tmp_path / "ref", key="k", device="cpu", **batch())
    got = gm.write_dump(f"file://{tmp_path}/viaurl", key="k", device="cpu", **batch())
    assert got == ref
    assert files_under(tmp_path / "viaurl") == files_under(tmp_path / "ref")
    assert os.listdir(cwd) == []  # no ./file: folder


@pytest.mark.parametrize("url,package", [("s3://bucket/prefix", "s3fs"), ("gs://bucket/prefix", "gcsfs")])
def test_url_without_its_package_is_a_clear_error_naming_the_extra(cwd, monkeypatch, url, package):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed: its import raises ImportError
    registry = sys.modules.get("fsspec.registry")
    if registry is not None:  # fsspec keeps the classes it imported before (another test's s3fs)
        for protocol in ("s3", "s3a", "gs", "gcs"):
            monkeypatch.delitem(registry._registry, protocol, raising=False)
    for call in (lambda: gm.write_dump(url, key="k", device="cpu", **batch()),
                 lambda: write_dump_batches(url, [batch()], key="k", device="cpu")):
        with pytest.raises(MediaError, match=re.escape(url) + ".*" + package + ".*" + re.escape(S3_EXTRA)):
            call()
    assert os.listdir(cwd) == []  # no ./s3: folder


def test_url_without_fsspec_is_a_clear_error(cwd, monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(MediaError, match=r"s3://b/p: writing to a URL needs fsspec: " + re.escape(S3_EXTRA)):
        gm.write_dump("s3://b/p", key="k", device="cpu", **batch())
    assert os.listdir(cwd) == []


@pytest.mark.parametrize("url", ["nosuchscheme://b/p", "my-scheme://x"])
def test_unknown_scheme_is_an_error_not_a_folder(cwd, url):
    pytest.importorskip("fsspec")
    with pytest.raises(MediaError, match=re.escape(url) + r": unknown or unusable URL"):
        gm.write_dump(url, key="k", device="cpu", **batch())
    assert os.listdir(cwd) == []


def test_memory_url_is_written_through_fsspec(cwd, tmp_path):
    """Any fsspec file system takes the dump: memory:// holds the same files as a local dump, byte for byte."""
    fsspec = pytest.importorskip("fsspec")
    gm.write_dump(tmp_path / "ref", key="val/pred", step=2, device="cpu", **batch())
    dicts = gm.write_dump("memory://dumps/a", key="val/pred", step=2, device="cpu", **batch())
    fs = fsspec.filesystem("memory")
    got = {p[len("/dumps/a/"):]: fs.cat_file(p) for p in fs.find("/dumps/a")}
    ref = {k: v for k, v in files_under(tmp_path / "ref").items() if k != ".gpu-media.lock"}
    assert got == ref
    assert [d["path"] for d in dicts] == [d["path"] for d in gm.write_dump(
        tmp_path / "ref2", key="val/pred", step=2, device="cpu", **batch())]
    with pytest.raises(gm.DumpExistsError, match="overwrite=True"):
        gm.write_dump("memory://dumps/a", key="val/pred", step=2, device="cpu", **batch())
    assert os.listdir(cwd) == []
    fs.rm("/dumps", recursive=True)
