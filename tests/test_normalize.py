"""docs/SPEC.md 1-2: inputs, layouts, dtypes and per-image normalization, on both backends."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gpu_media as gm
from media_helpers import host
from spec_reference import normalize_image

ALL_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
              np.float16, np.float32, np.float64]


def ref_batch(x_nhwc, normalize=True):
    return np.stack([normalize_image(im, normalize) for im in x_nhwc])


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_every_dtype_matches_reference(device, dtype):
    rng = np.random.default_rng(1)
    if dtype == np.bool_:
        x = rng.random((3, 5, 6, 3)) > 0.5
    elif np.dtype(dtype).kind == "f":
        x = np.stack([rng.random((5, 6, 3)), rng.random((5, 6, 3)) * 2 - 1, rng.random((5, 6, 3)) * 600 - 200])
        x = x.astype(dtype)
    else:
        info = np.iinfo(dtype)
        x = np.stack([
            rng.integers(0, 2, (5, 6, 3)),  # [0,1] row
            rng.integers(max(info.min, -1), 2, (5, 6, 3)),  # [-1,1] row for signed types
            rng.integers(info.min, info.max, (5, 6, 3), endpoint=True, dtype=dtype),  # full range
        ]).astype(dtype)
    got = host(gm.normalize(x, device=device))
    assert got.dtype == np.uint8 and got.shape == (3, 5, 6, 3)
    np.testing.assert_array_equal(got, ref_batch(x))


def test_documented_rows(device):
    x = np.zeros((3, 1, 4, 1), np.float32)
    x[0, 0] = [[0.0], [0.5], [1.0], [0.999]]  # [0,1] -> trunc(x*255)
    x[1, 0] = [[-1.0], [0.0], [1.0], [0.5]]  # [-1,1] -> trunc((x+1)*127.5)
    x[2, 0] = [[-5.0], [12.7], [300.0], [254.9]]  # else clip
    got = host(gm.normalize(x, device=device))[..., 0]
    np.testing.assert_array_equal(got, [[[0, 127, 255, 254]], [[0, 127, 255, 191]], [[0, 12, 255, 254]]])


def test_per_image_ranges_inside_one_batch(device):
    # same values, different neighbours: image 0 is in [0,1], image 1 reaches 2 -> clip row
    x = np.array([[[0.5, 1.0]], [[0.5, 2.0]]], np.float64)[..., None]
    got = host(gm.normalize(x, device=device))[..., 0]
    np.testing.assert_array_equal(got, [[[127, 255]], [[0, 2]]])


def test_normalize_false_clips(device):
    x = np.array([[[0.5, 1.0, -3.0, 300.0, 254.99]]], np.float32)[..., None]
    got = host(gm.normalize(x, normalize=False, device=device))[..., 0]
    np.testing.assert_array_equal(got, [[[0, 1, 0, 255, 254]]])


def test_non_finite_values(device):
    nan, inf = np.nan, np.inf
    x = np.array([
        [[0.5, nan, inf, -inf]],  # finite range [0.5,0.5] -> unit row
        [[-0.5, nan, inf, -inf]],  # signed row
        [[100.0, nan, inf, -inf]],  # clip row
        [[nan, nan, inf, -inf]],  # no finite value
    ], np.float32)[..., None]
    got = host(gm.normalize(x, device=device))[..., 0]
    np.testing.assert_array_equal(got, [[[127, 0, 255, 0]], [[63, 0, 255, 0]], [[100, 0, 255, 0]], [[0, 0, 255, 0]]])


def test_float16_rounds_after_each_operation(device):
    # every float16 in [0, 1): where rounding x*255 to float16 crosses an integer,
    # docs/SPEC.md 2 (and NumPy) take the float16 value, not the exact float32 product
    v = np.arange(0, 1, 2**-11, dtype=np.float64).astype(np.float16)
    exact = np.trunc(v.astype(np.float32) * np.float32(255))
    f16 = np.trunc((v * np.float16(255)).astype(np.float32))
    assert (exact != f16).sum() > 10  # the case exists, so this test can fail
    got = host(gm.normalize(v.reshape(1, 1, -1, 1), device=device))[0, 0, :, 0]
    np.testing.assert_array_equal(got, f16.astype(np.uint8))
    # signed row: (x + 1) is rounded to float16 before * 127.5
    w = np.arange(-1, 1, 2**-10, dtype=np.float64).astype(np.float16)
    two = np.trunc(((w + np.float16(1)) * np.float16(127.5)).astype(np.float32))
    one = np.trunc((w.astype(np.float64) + 1) * 127.5)
    assert (two != one).any()
    got = host(gm.normalize(w.reshape(1, 1, -1, 1), device=device))[0, 0, :, 0]
    np.testing.assert_array_equal(got, two.astype(np.uint8))


def test_float32_no_fused_multiply_add(device):
    # values where (x + 1) * 127.5 differs between one rounding (FMA-like, float64) and two
    xs = (np.random.default_rng(7).random(5_000_000) * 2 - 1).astype(np.float32)
    two_roundings = np.trunc((xs + np.float32(1)) * np.float32(127.5)).astype(np.uint8)
    one_rounding = np.trunc(np.float32(xs.astype(np.float64) * 127.5 + 127.5)).astype(np.uint8)
    differ = two_roundings != one_rounding
    assert differ.any()  # inputs where one rounding gives another pixel value
    xs, two_roundings = xs[differ | (np.arange(xs.size) < 1000)], two_roundings[differ | (np.arange(xs.size) < 1000)]
    x = np.concatenate([xs, [-1.0, 1.0]]).astype(np.float32).reshape(1, 1, -1, 1)
    two_roundings = np.concatenate([two_roundings, [0, 255]])
    np.testing.assert_array_equal(host(gm.normalize(x, device=device))[0, 0, :, 0], two_roundings)


def test_integers_exact_and_no_overflow(device):
    x = np.array([[[-1, 0, 1]], [[-128, 0, 127]]], np.int8)[..., None]
    got = host(gm.normalize(x, device=device))[..., 0]
    np.testing.assert_array_equal(got, [[[0, 127, 255]], [[0, 0, 127]]])
    big = np.array([[[np.iinfo(np.uint64).max, 7]]], np.uint64)[..., None]
    np.testing.assert_array_equal(host(gm.normalize(big, device=device))[..., 0], [[[255, 7]]])


def test_uint8_zero_one_image_becomes_0_255(device):
    x = np.array([[[0, 1], [1, 0]], [[0, 1], [2, 0]]], np.uint8)
    got = host(gm.normalize(x, layout="NHW", device=device))[..., 0]
    np.testing.assert_array_equal(got, [[[0, 255], [255, 0]], [[0, 1], [2, 0]]])


def test_bool_images(device):
    x = np.array([[True, False]])
    np.testing.assert_array_equal(host(gm.normalize(x, device=device))[0, :, :, 0], [[255, 0]])


@pytest.mark.parametrize("layout,shape", [
    ("NHWC", (2, 4, 5, 3)), ("NCHW", (2, 3, 4, 5)), ("HWC", (4, 5, 3)), ("CHW", (3, 4, 5)),
    ("HW", (4, 5)), ("NHW", (2, 4, 5)),
])
def test_every_layout(device, layout, shape):
    rng = np.random.default_rng(2)
    x = rng.random(shape).astype(np.float32)
    nhwc = {"NHWC": x, "NCHW": np.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else None,
            "HWC": x[None], "CHW": np.transpose(x, (1, 2, 0))[None] if x.ndim == 3 else None,
            "HW": x[None, :, :, None], "NHW": x[..., None]}[layout]
    got = host(gm.normalize(x, layout=layout, device=device))
    np.testing.assert_array_equal(got, ref_batch(nhwc))


def test_default_layout_rules(device):
    x = np.random.default_rng(3).random((4, 5, 3)).astype(np.float32)
    assert host(gm.normalize(x, device=device)).shape == (1, 4, 5, 3)  # HWC single image
    y = np.random.default_rng(3).random((6, 4, 5)).astype(np.float32)
    assert host(gm.normalize(y, device=device)).shape == (6, 4, 5, 1)  # NHW batch
    z = np.random.default_rng(3).random((2, 4, 5, 4)).astype(np.float32)
    assert host(gm.normalize(z, device=device)).shape == (2, 4, 5, 4)  # NHWC, RGBA


def test_torch_tensors_are_channel_first(device):
    torch = pytest.importorskip("torch")
    t = torch.rand(2, 3, 4, 5)
    got = host(gm.normalize(t, device=device))
    np.testing.assert_array_equal(got, ref_batch(np.transpose(t.numpy(), (0, 2, 3, 1))))


def test_dlpack_input(device):
    class Wrapped:  # only the DLPack protocol, like a foreign array library
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    x = np.random.default_rng(4).random((2, 4, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(host(gm.normalize(Wrapped(x), device=device)), ref_batch(x))


def test_pil_images_are_never_normalized(device):
    from PIL import Image

    a = np.array([[0, 1], [1, 0]], np.uint8)  # would become 0/255 if normalized
    got = host(gm.normalize(Image.fromarray(a), device=device))
    np.testing.assert_array_equal(got[0, :, :, 0], a)
    rgba = Image.fromarray(np.full((2, 3, 4), 7, np.uint8))
    assert host(gm.normalize(rgba, device=device)).shape == (1, 2, 3, 4)


def test_list_of_differing_sizes(device):
    rng = np.random.default_rng(5)
    imgs = [rng.random((4, 5, 3)).astype(np.float32), rng.integers(0, 300, (7, 2)), rng.random((4, 5, 3)) * 2 - 1]
    got = host(gm.normalize(imgs, device=device))
    assert isinstance(got, list) and len(got) == 3
    for g, im in zip(got, imgs):
        im = im if im.ndim == 3 else im[..., None]
        np.testing.assert_array_equal(g, normalize_image(im))


def test_list_of_equal_sizes_is_stacked(device):
    imgs = [np.full((2, 2, 3), v, np.float32) for v in (0.5, 2.0)]
    got = host(gm.normalize(imgs, device=device))
    assert got.shape == (2, 2, 2, 3)
    np.testing.assert_array_equal(got[:, 0, 0, 0], [127, 2])


@pytest.mark.parametrize("shape,match", [
    ((2, 4, 5, 5), r"channels must be 1, 3 or 4"),
    ((2, 0, 5, 3), r"height 0 and width 5"),
])
def test_bad_shapes(device, shape, match):
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=shape, strides=(0,) * len(shape))
    with pytest.raises(gm.ImageError, match=match):
        gm.normalize(x, device=device)


@pytest.mark.parametrize("shape", [(1, 3, 65501, 1), (1, 65501, 2, 3)])
def test_no_size_limit_above_65500(device, shape):
    # wandb 0.31 takes any size (its MAX_DIMENSION is unused); only JPEG encoding limits it (test_encode.py)
    x = np.lib.stride_tricks.as_strided(np.full(1, 7, np.uint8), shape=shape, strides=(0,) * len(shape))
    got = host(gm.normalize(x, device=device))
    assert got.shape == shape and (got == 7).all()


def test_bad_list_element_names_batch_index(device):
    with pytest.raises(gm.ImageError, match=r"^image 2: .*channels must be 1, 3 or 4"):
        gm.normalize([np.zeros((2, 2, 3)), np.zeros((2, 2)), np.zeros((2, 2, 5))], device=device)


def test_bad_dtype_and_layout(device):
    with pytest.raises(gm.ImageError, match="dtype complex64 is not supported"):
        gm.normalize(np.zeros((2, 2, 3), np.complex64), device=device)
    with pytest.raises(gm.ImageError, match="does not match layout 'NCHW'"):
        gm.normalize(np.zeros((2, 2, 3)), layout="NCHW", device=device)
    with pytest.raises(gm.ImageError, match="layout must be one of"):
        gm.normalize(np.zeros((2, 2, 3)), layout="WHC", device=device)
    with pytest.raises(gm.ImageError, match="the batch is empty"):
        gm.normalize([], device=device)
    assert issubclass(gm.ImageError, ValueError)


float_dtypes = st.sampled_from([np.float16, np.float32, np.float64])


@st.composite
def float_batches(draw):
    dtype = draw(float_dtypes)
    n, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    c = draw(st.sampled_from([1, 3, 4]))
    scale = draw(st.sampled_from([1.0, 2.0, 300.0, 1e4]))
    elems = st.one_of(
        st.floats(-scale, scale, width=np.dtype(dtype).itemsize * 8, allow_nan=False),
        st.sampled_from([0.0, 1.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 255.0, 254.99, -0.0]),
    )
    return draw(hnp.arrays(dtype, (n, h, w, c), elements=elems))


# the device fixture holds no state, so reusing it across hypothesis examples is safe
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=float_batches(), norm=st.booleans())
def test_property_floats_match_per_image_reference(device, x, norm):
    np.testing.assert_array_equal(host(gm.normalize(x, normalize=norm, device=device)), ref_batch(x, norm))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=hnp.arrays(st.sampled_from([np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint16]),
                    hnp.array_shapes(min_dims=4, max_dims=4, min_side=1, max_side=4)
                    .filter(lambda s: s[3] in (1, 3, 4))))
def test_property_integers_match_per_image_reference(device, x):
    np.testing.assert_array_equal(host(gm.normalize(x, device=device)), ref_batch(x))


@pytest.mark.gpu
def test_property_gpu_matches_cpu(device):
    if device != "gpu":
        pytest.skip("parity: gpu only")
    rng = np.random.default_rng(6)
    for dtype in ALL_DTYPES:
        x = (rng.random((8, 9, 7, 3)) * 4 - 2).astype(dtype) if np.dtype(dtype).kind == "f" else \
            rng.integers(-2, 300, (8, 9, 7, 3)).astype(dtype)
        np.testing.assert_array_equal(host(gm.normalize(x, device="gpu")), host(gm.normalize(x, device="cpu")))


class _StackSpy:
    """The CPU backend with ``xp.stack`` counted (normalize_groups' join of per-group results)."""

    def __init__(self):
        import cpu_fallback

        self.name, self.stacks, self._cpu = "cpu", 0, cpu_fallback
        spy = self

        class _Xp:
            def __getattr__(self, attr):
                return getattr(np, attr)

            def stack(self, arrays, *a, **k):
                spy.stacks += 1
                return np.stack(arrays, *a, **k)

        self.xp = _Xp()

    def normalize(self, x, layout, normalize=True):
        self.sliced = np.shares_memory(x, self.source) if hasattr(self, "source") else None
        return self._cpu.normalize(x, layout, normalize)


@pytest.mark.parametrize("lo, hi", [(0, 4), (4, 8), (13, 16), (5, 6)])
def test_one_contiguous_group_normalizes_the_slice_without_stack(lo, hi):
    """Issue 17.7: a dump's chunk of one array goes to the backend as a view of the input, never stacked.

    (On the GPU ``xp.stack`` NVRTC-compiles CuPy's concatenate kernel on a first call and copies the chunk.)
    """
    from gpu_media import _arrays
    from gpu_media.backend import get_backend
    from gpu_media.normalize import normalize_groups

    x = np.random.default_rng(0).random((16, 3, 5, 4), dtype=np.float32)
    groups, n = _arrays.image_groups(x, "NCHW", "cpu")
    spy = _StackSpy()
    spy.source = x
    got = normalize_groups(groups, n, True, spy, lo, hi)
    assert spy.stacks == 0 and spy.sliced
    want = normalize_groups(groups, n, True, get_backend("cpu"))[lo:hi]
    assert got.dtype == np.uint8 and np.array_equal(got, want)


def test_images_from_several_groups_are_still_joined():
    """The spy does see a stack where one is needed: a chunk spanning two shapes' groups of equal C."""
    from gpu_media import _arrays
    from gpu_media.normalize import normalize_groups

    rng = np.random.default_rng(1)
    imgs = [rng.random((4, 5, 3), dtype=np.float32), rng.random((4, 5, 3)).astype(np.float64),
            rng.random((4, 5, 3), dtype=np.float32)]
    groups, n = _arrays.image_groups(imgs, "HWC", "cpu")
    assert len(groups) == 2
    spy = _StackSpy()
    got = normalize_groups(groups, n, True, spy, 0, 3)
    assert spy.stacks == 1
    assert np.array_equal(got, np.stack([gm.normalize(i[None], layout="NHWC", device="cpu")[0] for i in imgs]))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_large_batch_on_every_core_follows_the_spec(layout, dtype):
    """A batch over cpu_fallback.normalize.PARALLEL_BYTES is split over threads (issue 19): same rules per image."""
    import importlib
    import threading

    cpu_norm = importlib.import_module("cpu_fallback.normalize")

    rng = np.random.default_rng(5)
    n, h, w = 40, 96, 80
    x = (rng.random((n, h, w, 3)) * 600 - 300).astype(dtype)
    x[::3] = (rng.random((len(x[::3]), h, w, 3))).astype(dtype) if dtype == np.float32 else 7
    x[1::3] = (rng.random((len(x[1::3]), h, w, 3)) * 2 - 1).astype(dtype) if dtype == np.float32 else -1
    if dtype == np.float32:
        x[4, 0, 0, 0], x[5, 1, 1, 1], x[6, 2, 2, 2] = np.nan, np.inf, -np.inf
    arr = x.transpose(0, 3, 1, 2).copy() if layout == "NCHW" else x
    old = cpu_norm.PARALLEL_BYTES
    try:
        cpu_norm.PARALLEL_BYTES = 1 << 16  # make sure the threaded path runs
        got = gm.normalize(arr, layout=layout, device="cpu")
        serial = []
        t = threading.Thread(target=lambda: serial.append(cpu_norm.normalize(arr, layout)), name="gpu-media-test")
        t.start()
        t.join()
    finally:
        cpu_norm.PARALLEL_BYTES = old
    assert got.shape == (n, h, w, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, serial[0])
    for i in range(n):
        np.testing.assert_array_equal(got[i], normalize_image(x[i]))
