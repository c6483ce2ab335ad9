"""One benchmark per stage and backend: normalize, masks, boxes, encode, dump."""

import os
import tempfile

import numpy as np
import pytest

import gpu_media as gm


def on(device, x):
    """The batch on the device's array library."""
    if device == "gpu":
        import cupy

        return cupy.asarray(x)
    return x


def sync(device):
    if device == "gpu":
        import cupy

        cupy.cuda.Device().synchronize()


def test_normalize_float32(benchmark, device, photos):
    x = on(device, photos)
    benchmark.extra_info.update(images=len(photos), shape=list(photos.shape[1:]))
    benchmark(lambda: (gm.normalize(x, device=device), sync(device)))


def test_numpy_baseline_x255_astype(benchmark, photos):
    """The reference point of the normalize target: NumPy's plain conversion, no ranges."""
    benchmark(lambda: (photos * 255).astype(np.uint8))


def test_validate_masks(benchmark, device, masks):
    m = on(device, masks)
    benchmark(lambda: gm.validate_masks({"pred": {"mask_data": m}}, masks.shape[1:], device=device))


def test_draw_boxes(benchmark, device, photos_u8):
    n = len(photos_u8)
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (8 * n, 2))
    boxes = {"pred": {"xyxy": np.hstack([xy, xy + rng.uniform(8, 56, (8 * n, 2))]),
                      "image_index": np.repeat(np.arange(n), 8), "class_id": rng.integers(0, 20, 8 * n)}}
    x = on(device, photos_u8)
    benchmark(lambda: (gm.draw_boxes(x, boxes, device=device), sync(device)))


@pytest.mark.parametrize("file_type", ["png", "jpg"])
def test_encode(benchmark, device, photos_u8, file_type):
    x = on(device, photos_u8)
    out = benchmark(lambda: gm.encode(x, file_type=file_type, quality=75, device=device))
    benchmark.extra_info["bytes_per_image"] = float(np.mean([len(b) for b in out]))


@pytest.mark.parametrize("file_type", ["png", "jpg"])
def test_write_dump(benchmark, device, photos, masks, file_type):
    x = on(device, photos)
    root = tempfile.mkdtemp(prefix="gpu-media-bench-")
    runs = iter(range(10**9))
    benchmark.pedantic(
        lambda: gm.write_dump(os.path.join(root, str(next(runs))), x, key="bench", file_type=file_type,
                              masks={"pred": {"mask_data": masks}}, device=device),
        rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "no-fsync"])
def test_write_dump_durable(benchmark, device, photos, masks, durable):
    """What the fsyncs of a durable dump cost (docs/SPEC.md 6.4; benchmarks/durable.py compares them in turn)."""
    n = 8  # the demo's size: small files, where the fsyncs weigh most
    x = on(device, photos[:n])
    root = tempfile.mkdtemp(prefix="gpu-media-bench-")
    runs = iter(range(10**9))
    benchmark.pedantic(
        lambda: gm.write_dump(os.path.join(root, str(next(runs))), x, key="bench", durable=durable,
                              masks={"pred": {"mask_data": masks[:n]}}, device=device),
        rounds=5, warmup_rounds=1)
