"""Input dtypes (docs/SPEC.md 1, 3, 4): checked on the caller's array, before the device and any copy.

Images, masks and the batched box columns take bool, every integer type, float16,
float32 and float64. Anything else (object, string, bytes, void, datetime, timedelta,
complex, float128, PyTorch's bfloat16) raises the stage's MediaError subclass with the
same message on both backends, naming the batch index of a list element. Because the
check reads the input's own dtype before the device is resolved, ``device="gpu"`` on a
machine without a GPU raises that error too, not DeviceError: the tests of that run
only where no GPU is usable (they prove no device work happens before the check).
"""

import os
from typing import ClassVar

import numpy as np
import pytest

import gpu_media as gm
from gpu_media import BoxError, DeviceError, ImageError, MaskError, checks
from gpu_media._arrays import input_dtype
from media_helpers import host

#: Dtypes neither backend takes; float128 only where NumPy has a 16-byte float.
BAD_DTYPES = [object, np.str_, np.bytes_, np.dtype([("a", np.uint8), ("b", np.uint8)]), "datetime64[s]",
              "timedelta64[ms]", np.complex64, np.complex128]
if np.dtype(np.longdouble).itemsize == 16:
    BAD_DTYPES.append(np.longdouble)
GOOD_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
               np.float16, np.float32, np.float64]

no_gpu = pytest.mark.skipif(gm.gpu_available(), reason="checks device='gpu' where no GPU is usable")


def bad(shape, dtype):
    """An array of ``shape`` and an unsupported ``dtype`` (zeros where NumPy has a zero)."""
    return np.zeros(shape, dtype=dtype)


def dt_str(dtype):
    """How the messages spell ``dtype`` for an array made by :func:`bad` (``<U1``, not ``<U0``)."""
    return str(bad((1,), dtype).dtype)


def dt_id(dtype):
    return np.dtype(dtype).name


def raised(fn, error):
    """Call ``fn``, assert it raises ``error`` (exactly that class), return the exception."""
    with pytest.raises(error) as info:
        fn()
    assert type(info.value) is error
    return info.value


# --------------------------------------------------------------------------- the shared rule


def test_supported_dtypes_are_the_numeric_ones():
    for dt in GOOD_DTYPES:
        assert checks.is_supported_dtype(np.dtype(dt)), dt
    for dt in BAD_DTYPES:
        assert not checks.is_supported_dtype(np.dtype(dt)), dt
    assert not checks.is_supported_dtype("bfloat16")  # a dtype NumPy lacks, by name
    assert not checks.is_supported_dtype(None)
    assert checks.is_supported_dtype(np.dtype(np.int16), "iu")
    assert not checks.is_supported_dtype(np.dtype(np.float32), "iu")


def test_check_dtype_message_and_fields():
    with pytest.raises(MaskError) as info:
        checks.check_dtype(np.dtype(np.complex64), "image 4, mask key 'seg'", label="mask dtype", use="integers",
                           error=MaskError, index=4, key="seg")
    err = info.value
    assert str(err) == "image 4, mask key 'seg': mask dtype complex64 is not supported; use integers"
    assert (err.index, err.key, err.item) == (4, "seg", np.dtype(np.complex64))
    assert checks.dtype_name("torch.bfloat16") == "bfloat16"


def test_input_dtype_reads_without_converting():
    class CudaLike:  # a CUDA array seen only through its interface: never dereferenced
        __cuda_array_interface__: ClassVar = {"shape": (2, 2), "typestr": "<c8", "data": (0, False), "version": 3}

    assert input_dtype(CudaLike()) == np.dtype(np.complex64)
    assert input_dtype(np.zeros(2, np.uint16)) == np.dtype(np.uint16)
    assert input_dtype([1, 2]) is None


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=dt_id)
def test_normalize_rejects_dtype(device, dtype):
    x = bad((2, 3, 4, 3), dtype)
    err = raised(lambda: gm.normalize(x, device=device), ImageError)
    assert str(err) == (f"images: dtype {x.dtype} is not supported; use bool, an integer type, "
                        "float16, float32 or float64")
    assert err.index is None and err.item == x.dtype


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=dt_id)
def test_list_element_dtype_names_its_index(device, dtype):
    images = [np.zeros((3, 4, 3), np.uint8), np.zeros((5, 4), np.float32), bad((3, 4), dtype)]
    err = raised(lambda: gm.normalize(images, device=device), ImageError)
    assert str(err).startswith(f"image 2: dtype {dt_str(dtype)} is not supported") and err.index == 2


def test_dtype_is_reported_before_shape(device):
    # (2, 2, 5): 5 channels is a shape error too, but the dtype is read first, from the input itself
    with pytest.raises(ImageError, match=r"^images: dtype complex64 is not supported"):
        gm.normalize(np.zeros((2, 2, 5), np.complex64), device=device)


def test_encode_and_draw_boxes_reject_dtype(device):
    x = bad((1, 4, 4, 3), np.complex64)
    with pytest.raises(ImageError, match=r"^images: dtype complex64 is not supported"):
        gm.encode(x, device=device)
    with pytest.raises(ImageError, match=r"^image 1: dtype <U1 is not supported"):
        gm.encode([np.zeros((4, 4, 3), np.uint8), bad((4, 4, 3), np.str_)], device=device)
    with pytest.raises(ImageError, match=r"^images: dtype object is not supported"):
        gm.draw_boxes(bad((1, 4, 4, 3), object), None, device=device)


def test_ragged_nested_list_is_an_image_error(device):
    ragged = [[0, 1, 2], [3, 4]]  # one image whose rows differ in length
    err = raised(lambda: gm.normalize([np.zeros((2, 3), np.uint8), ragged], device=device), ImageError)
    assert str(err).startswith("image 1: cannot be read as an array") and err.index == 1


def test_nested_lists_of_numbers_are_still_images(device):
    out = gm.normalize([[[0, 255], [255, 0]], np.full((2, 2), 255, np.uint8)], device=device)
    assert np.array_equal(host(out)[..., 0],
                          [[[0, 255], [255, 0]], [[255, 255], [255, 255]]])


def test_none_as_an_image_is_an_image_error(device):
    with pytest.raises(ImageError, match=r"^image 0: dtype object is not supported"):
        gm.normalize([None], device=device)


def test_dlpack_only_object_is_checked(device):
    class DLPackOnly:  # a producer NumPy can only read through DLPack
        def __init__(self, a):
            self._a = a

        def __dlpack__(self, **kw):
            return self._a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self._a.__dlpack_device__()

    with pytest.raises(ImageError, match=r"^images: dtype complex64 is not supported"):
        gm.normalize(DLPackOnly(np.zeros((1, 2, 2, 3), np.complex64)), device=device)
    out = gm.normalize(DLPackOnly(np.full((1, 2, 2, 3), 255, np.uint8)), device=device)
    assert out.shape == (1, 2, 2, 3)


def test_cuda_interface_with_bad_dtype_needs_no_cupy(device):
    class CudaLike:  # claims to be on the GPU; a bad dtype is reported from the interface alone
        __cuda_array_interface__: ClassVar = {"shape": (1, 2, 2, 3), "typestr": "<c16", "data": (0, False),
                                              "version": 3}

    with pytest.raises(ImageError, match=r"^images: dtype complex128 is not supported"):
        gm.normalize(CudaLike(), device=device)
    with pytest.raises(ImageError, match=r"^image 1: dtype complex128 is not supported"):
        gm.normalize([np.zeros((2, 2, 3)), CudaLike()], device=device)


def test_cuda_interface_without_cupy_is_a_device_error():
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed here")

    class CudaLike:
        __cuda_array_interface__: ClassVar = {"shape": (1, 2, 2, 3), "typestr": "<f4", "data": (0, False),
                                              "version": 3}

    with pytest.raises(DeviceError, match=r"a CUDA array was given, and reading it needs CuPy"):
        gm.normalize(CudaLike(), device="cpu")


def test_big_endian_inputs_equal_native_ones(device):
    rng = np.random.default_rng(5)
    x = rng.random((2, 3, 4, 3)).astype("<f4")
    m = rng.integers(0, 256, (2, 3, 4)).astype("<u2")
    got = gm.normalize(x.astype(">f4"), device=device)
    want = gm.normalize(x, device="cpu")
    assert np.array_equal(host(got), want)
    assert gm.validate_masks({"m": {"mask_data": m.astype(">u2")}}, (3, 4), device=device) == \
        gm.validate_masks({"m": {"mask_data": m}}, (3, 4), device="cpu")


# --------------------------------------------------------------------------- torch


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_torch_dtypes(device):
    torch = pytest.importorskip("torch")
    with pytest.raises(ImageError, match=r"^images: dtype complex64 is not supported"):
        gm.normalize(torch.zeros((1, 3, 2, 2), dtype=torch.complex64), device=device)
    # bfloat16: NumPy has no such dtype (torch's .numpy() raises TypeError); named as torch names it
    err = raised(lambda: gm.normalize(torch.zeros((1, 3, 2, 2), dtype=torch.bfloat16), device=device), ImageError)
    assert str(err).startswith("images: dtype bfloat16 is not supported")
    for name in ("float8_e4m3fn", "complex32"):
        if hasattr(torch, name):
            with pytest.raises(ImageError, match=rf"^image 0: dtype {name} is not supported"):
                gm.normalize([torch.zeros((3, 2, 2), dtype=getattr(torch, name))], device=device)
    with pytest.raises(MaskError, match=r"^image 1, mask key 'm': mask dtype bfloat16 is not supported"):
        gm.validate_masks({"m": {"mask_data": [torch.zeros((2, 2)), torch.zeros((2, 2), dtype=torch.bfloat16)]}},
                          (2, 2), device=device)
    # bool tensors are images and masks (0/1)
    out = gm.normalize(torch.ones((1, 1, 2, 2), dtype=torch.bool), device=device)
    assert int(out.max()) == 255
    rep = gm.validate_masks({"m": {"mask_data": torch.ones((1, 2, 2), dtype=torch.bool)}}, (2, 2), device=device)
    assert rep == [{"m": {1: 4}}]


# --------------------------------------------------------------------------- masks


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=dt_id)
def test_mask_array_dtype(device, dtype):
    err = raised(lambda: gm.validate_masks({"m": {"mask_data": bad((2, 3, 4), dtype)}}, (3, 4), device=device),
                 MaskError)
    assert str(err) == (f"mask key 'm': mask dtype {dt_str(dtype)} is not supported; "
                        "use integers, bool or integral floats")
    assert err.key == "m" and err.index is None


@pytest.mark.parametrize("k", [0, 2])
def test_list_of_masks_names_the_bad_one(device, k):
    data = [np.zeros((3, 4), np.uint8) for _ in range(3)]
    data[k] = bad((3, 4), np.complex64)
    masks = {"ok": {"mask_data": np.zeros((3, 3, 4), np.uint8)}, "m": {"mask_data": data}}
    err = raised(lambda: gm.validate_masks(masks, (3, 4), device=device), MaskError)
    assert str(err).startswith(f"image {k}, mask key 'm': mask dtype complex64 is not supported")
    assert (err.index, err.key) == (k, "m")


def test_ragged_mask_list_item(device):
    data = [np.zeros((2, 2), np.uint8), [[0, 1], [1]]]
    err = raised(lambda: gm.validate_masks({"m": {"mask_data": data}}, (2, 2), device=device), MaskError)
    assert str(err).startswith("image 1, mask key 'm': cannot be read as an array") and err.index == 1


def test_masks_as_nested_lists_still_work(device):
    rep = gm.validate_masks({"m": {"mask_data": [[[0, 1], [1, 1]], np.zeros((2, 2), np.uint8)]}}, (2, 2),
                            device=device)
    assert rep == [{"m": {0: 1, 1: 3}}, {"m": {0: 4}}]


def test_float128_mask_is_rejected_on_both_backends(device):
    if np.dtype(np.longdouble).itemsize != 16:
        pytest.skip("NumPy has no 16-byte float here")
    with pytest.raises(MaskError, match=r"mask dtype float128 is not supported"):
        gm.validate_masks({"m": {"mask_data": np.zeros((1, 2, 2), np.longdouble)}}, (2, 2), device=device)


# --------------------------------------------------------------------------- boxes


def _batched(**cols):
    spec = {"xyxy": np.array([[0, 0, 2, 2]], np.float32), "image_index": np.array([0]), "class_id": np.array([1])}
    spec.update(cols)
    return {"det": spec}


@pytest.mark.parametrize("column", ["xyxy", "image_index", "class_id"])
@pytest.mark.parametrize("dtype", [object, np.str_, np.complex64, "datetime64[s]"], ids=dt_id)
def test_box_column_dtype(device, column, dtype):
    shape = (1, 4) if column == "xyxy" else (1,)
    img = np.zeros((1, 4, 4, 3), np.uint8)
    err = raised(lambda: gm.draw_boxes(img, _batched(**{column: bad(shape, dtype)}), device=device), BoxError)
    assert str(err) == (f"box key 'det': {column} dtype {dt_str(dtype)} is not supported; "
                        "use bool, an integer type, float16, float32 or float64")
    assert err.key == "det"


def test_box_scores_dtype(device):
    img = np.zeros((1, 4, 4, 3), np.uint8)
    boxes = _batched(scores={"conf": np.array(["0.5"])})  # a string NumPy would turn into 0.5
    with pytest.raises(BoxError, match=r"^box key 'det': scores\['conf'\] dtype <U3 is not supported"):
        gm.draw_boxes(img, boxes, device=device)


def test_box_columns_as_lists_still_work(device):
    img = np.zeros((1, 4, 4, 3), np.uint8)
    boxes = {"det": {"xyxy": [[0, 0, 4, 4]], "image_index": [0], "class_id": [3], "scores": {"s": [0.5]}}}
    out = np.asarray(gm.draw_boxes(img, boxes, thickness=1, device="cpu"))
    assert tuple(out[0, 0, 0]) == gm.PALETTE[3]
    with pytest.raises(BoxError, match=r"^box key 'det': cannot be read as an array"):
        gm.draw_boxes(img, {"det": {"xyxy": [[0, 0, 4, 4], [0, 0]]}}, device=device)


# --------------------------------------------------------------------------- write_dump


def test_write_dump_reports_dtypes_before_writing(device, tmp_path):
    img = np.zeros((2, 4, 4, 3), np.uint8)
    cases = [
        ({"images": bad((2, 4, 4, 3), np.complex64)}, ImageError, r"^images: dtype complex64"),
        ({"images": img, "masks": {"m": {"mask_data": [np.zeros((4, 4), np.uint8), bad((4, 4), object)]}}},
         MaskError, r"^image 1, mask key 'm': mask dtype object"),
        ({"images": img, "boxes": {"b": {"xyxy": bad((1, 4), np.str_), "image_index": [0]}}},
         BoxError, r"^box key 'b': xyxy dtype <U1"),
    ]
    for kw, error, match in cases:
        with pytest.raises(error, match=match):
            gm.write_dump(tmp_path, key="val", device=device, **kw)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- device="gpu" without a GPU


@no_gpu
def test_gpu_without_a_gpu_still_names_the_dtype(tmp_path):
    good = np.zeros((1, 2, 2, 3), np.uint8)
    with pytest.raises(DeviceError):  # the control: this machine has no usable GPU
        gm.normalize(good, device="gpu")
    calls = [
        (lambda: gm.normalize(bad((1, 2, 2, 3), np.complex64), device="gpu"), ImageError),
        (lambda: gm.normalize([good[0], bad((2, 2), np.str_)], device="gpu"), ImageError),
        (lambda: gm.encode(bad((1, 2, 2, 3), object), device="gpu"), ImageError),
        (lambda: gm.draw_boxes(bad((1, 2, 2, 3), np.bytes_), None, device="gpu"), ImageError),
        (lambda: gm.draw_boxes(good, _batched(class_id=bad((1,), np.str_)), device="gpu"), BoxError),
        (lambda: gm.validate_masks({"m": {"mask_data": np.array([[["a", "b"]]])}}, (1, 2), device="gpu"),
         MaskError),
        (lambda: gm.validate_masks({"m": {"mask_data": [np.zeros((1, 2)), bad((1, 2), np.complex128)]}}, (1, 2),
                                   device="gpu"), MaskError),
        (lambda: gm.write_dump(tmp_path, good, key="k", device="gpu",
                               masks={"m": {"mask_data": bad((1, 2, 2), "datetime64[s]")}}), MaskError),
        (lambda: gm.write_dump(tmp_path, good, key="k", device="gpu",
                               boxes={"b": {"xyxy": bad((1, 4), np.complex64)}}), BoxError),
    ]
    for call, error in calls:
        err = raised(call, error)
        assert "dtype" in str(err)


@no_gpu
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=dt_id)
def test_gpu_without_a_gpu_gives_the_cpu_message(dtype):
    def message(device, fn):
        with pytest.raises(MaskError if fn is gm.validate_masks else ImageError) as info:
            if fn is gm.validate_masks:
                fn({"m": {"mask_data": [np.zeros((2, 2), np.uint8), bad((2, 2), dtype)]}}, (2, 2), device=device)
            else:
                fn([np.zeros((2, 2), np.uint8), bad((2, 2), dtype)], device=device)
        return str(info.value), info.value.index

    for fn in (gm.normalize, gm.validate_masks):
        assert message("gpu", fn) == message("cpu", fn)
