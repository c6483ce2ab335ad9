"""NVIDIA DALI (the ``dali`` extra): reading image folders and DALI outputs as inputs.

DALI's CPU-only mode (``device_id=None``) runs the same pipeline code as the GPU
path on machines without a GPU; the nvJPEG ("mixed") decode runs where a GPU is.
"""

import os
from importlib import resources

import numpy as np
import pytest

import gpu_media as gm
from gpu_media.cuda import dali_reader
from gpu_media.formats.coco import load_coco, read_image, write_coco_dump
from media_helpers import host

dali = pytest.importorskip("nvidia.dali", reason="NVIDIA DALI (the dali extra) is not installed")
from nvidia.dali import fn, pipeline_def  # noqa: E402

DEMO = str(resources.files("gpu_media.demo").joinpath("coco"))


def _passthrough(batch):
    """Run ``batch`` (a list of arrays) through a CPU DALI pipeline: a TensorListCPU."""

    @pipeline_def(batch_size=len(batch), num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe():
        return fn.external_source(name="x", device="cpu")

    p = pipe()
    p.build()
    p.feed_input("x", batch)
    (out,) = p.run()
    return out


@pytest.mark.parametrize("max_batch", [3, 64])
def test_reader_matches_pillow(max_batch):
    ds = load_coco(os.path.join(DEMO, "images"), os.path.join(DEMO, "instances.json"))
    got = dali_reader.read_files([im.path for im in ds.images], device="cpu", max_batch=max_batch)
    assert len(got) == len(ds.images)
    for im, arr in zip(ds.images, got):
        assert arr.dtype == np.uint8 and arr.shape == (im.height, im.width, 3)
        np.testing.assert_array_equal(arr, read_image(im))  # both libjpeg-turbo, no EXIF rotation


def test_reader_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(gm.MediaError, match="bad.jpg"):
        dali_reader.read_files([str(bad)], device="cpu")
    with pytest.raises(gm.MediaError, match="missing.jpg"):
        dali_reader.read_files([str(tmp_path / "missing.jpg")], device="cpu")
    good = os.path.join(DEMO, "images", "clock.jpg")  # a failed run does not break the next one
    assert dali_reader.read_files([good], device="cpu")[0].shape == (256, 256, 3)


def test_coco_dump_with_the_dali_reader_equals_pillow(tmp_path):
    args = (os.path.join(DEMO, "images"), os.path.join(DEMO, "instances.json"), os.path.join(DEMO, "results.json"))

    def reader(images):
        return dali_reader.read_files([im.path for im in images], device="cpu")

    _, a = write_coco_dump(tmp_path / "a", *args, device="cpu", reader=reader, batch_size=5)
    _, b = write_coco_dump(tmp_path / "b", *args, device="cpu")
    assert a == b  # same content-addressed files, same JSON


def test_tensor_lists_are_inputs(device):
    rng = np.random.default_rng(1)
    dense = [rng.random((5, 6, 3), dtype=np.float32) for _ in range(3)]
    out = gm.normalize(_passthrough(dense), device=device)
    np.testing.assert_array_equal(host(out), host(gm.normalize(np.stack(dense), device=device)))
    ragged = [rng.random((5, 6, 3), dtype=np.float32), rng.random((4, 4, 1), dtype=np.float32)]
    out = gm.normalize(_passthrough(ragged), device=device)
    assert isinstance(out, list) and [o.shape for o in out] == [(5, 6, 3), (4, 4, 1)]
    for o, r in zip(out, ragged):
        np.testing.assert_array_equal(host(o), host(gm.normalize(r[None], device=device))[0])


@pytest.mark.gpu
def test_gpu_decode_stays_on_the_gpu_and_matches():
    if not gm.gpu_available():
        pytest.skip("no usable GPU backend (CuPy + CUDA device) on this machine")
    import cupy

    ds = load_coco(os.path.join(DEMO, "images"), os.path.join(DEMO, "instances.json"))
    got = dali_reader.read_files([im.path for im in ds.images], device="gpu")
    for im, arr in zip(ds.images, got):
        assert isinstance(arr, cupy.ndarray) and arr.shape == (im.height, im.width, 3)
        # nvJPEG's IDCT may differ from libjpeg-turbo's by a grey level or two
        diff = np.abs(arr.get().astype(np.int16) - read_image(im))
        assert diff.max() <= 8 and diff.mean() < 1.0
    reader = dali_reader.reader_or_none()
    assert reader is not None
    batch = reader(ds.images[:2])
    u8 = gm.normalize(batch, device="gpu")
    assert all(isinstance(x, cupy.ndarray) for x in u8)
