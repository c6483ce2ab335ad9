"""docs/SPEC.md 3: masks checked against their images; the report is a per-class pixel count."""

import numpy as np
import pytest
from PIL import Image

import gpu_media
from gpu_media import MaskError, MediaError
from media_helpers import host  # noqa: F401  (the report is plain Python; host() kept for symmetry)


def expected_counts(mask):
    """docs/SPEC.md 3: the classes present in one (H,W) mask and their pixel counts, by np.unique."""
    vals, counts = np.unique(np.asarray(mask).astype(np.int64), return_counts=True)
    return {int(v): int(c) for v, c in zip(vals, counts)}


def one(mask_data, **extra):
    return {"m": dict(mask_data=mask_data, **extra)}


# --------------------------------------------------------------------------- the error type


def test_mask_error_is_a_media_error_and_a_value_error():
    assert issubclass(MaskError, MediaError)
    assert issubclass(MaskError, ValueError)


# --------------------------------------------------------------------------- report = histogram


def test_report_counts_equal_np_unique_for_several_keys(device):
    rng = np.random.default_rng(0)
    n, h, w = 3, 7, 9
    a = rng.integers(0, 256, size=(n, h, w)).astype(np.uint8)
    b = rng.choice(np.array([0, 3, 17, 255]), size=(n, h, w)).astype(np.uint8)
    c = np.zeros((n, h, w), np.uint8)
    c[1, 2:4, 3:8] = 9
    masks = {
        "semantic": {"mask_data": a, "class_labels": {int(v): f"c{v}" for v in range(256)}},
        "sparse": {"mask_data": b},
        "blob": {"mask_data": c, "class_labels": {0: "bg", 9: "thing"}},
    }
    report = gpu_media.validate_masks(masks, (h, w), device=device)
    assert len(report) == n
    for i in range(n):
        assert list(report[i]) == ["semantic", "sparse", "blob"]
        assert report[i]["semantic"] == expected_counts(a[i])
        assert report[i]["sparse"] == expected_counts(b[i])
        assert report[i]["blob"] == expected_counts(c[i])
        # classes are listed in increasing class id, counts add up to H*W
        assert list(report[i]["sparse"]) == sorted(report[i]["sparse"])
        assert sum(report[i]["semantic"].values()) == h * w
    assert report[0]["blob"] == {0: h * w}
    assert report[1]["blob"] == {0: h * w - 10, 9: 10}


def test_list_of_masks_with_differing_image_sizes(device):
    rng = np.random.default_rng(1)
    sizes = [(3, 5), (6, 2), (1, 1), (4, 4)]
    masks = [rng.integers(0, 5, size=s).astype(np.uint8) for s in sizes]
    report = gpu_media.validate_masks({"m": {"mask_data": masks}}, sizes, device=device)
    assert [r["m"] for r in report] == [expected_counts(m) for m in masks]


def test_one_size_for_all_images_equals_a_list_of_sizes(device):
    rng = np.random.default_rng(2)
    data = rng.integers(0, 4, size=(4, 5, 6)).astype(np.uint8)
    one_size = gpu_media.validate_masks(one(data), (5, 6), device=device)
    listed = gpu_media.validate_masks(one(data), [(5, 6)] * 4, device=device)
    assert one_size == listed == [{"m": expected_counts(d)} for d in data]


def test_single_2d_mask_is_a_batch_of_one(device):
    m = np.array([[0, 1, 1], [2, 2, 2]], np.uint8)
    assert gpu_media.validate_masks(one(m), (2, 3), device=device) == [{"m": {0: 1, 1: 2, 2: 3}}]


def test_no_class_labels_is_fine_without_strict(device):
    m = np.array([[[5, 6], [7, 8]]], np.uint8)
    report = gpu_media.validate_masks(one(m), (2, 2), device=device)
    assert report == [{"m": {5: 1, 6: 1, 7: 1, 8: 1}}]


# --------------------------------------------------------------------------- shapes


def test_shape_mismatch_names_seen_and_expected_shape(device):
    data = np.zeros((2, 4, 5), np.uint8)
    with pytest.raises(MaskError, match=r"image 0, mask key 'm'.*\(4, 5\).*\(4, 6\)"):
        gpu_media.validate_masks(one(data), (4, 6), device=device)


def test_shape_mismatch_in_list_form_names_the_image(device):
    masks = [np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.uint8), np.zeros((2, 3), np.uint8)]
    with pytest.raises(MaskError, match=r"image 2, mask key 'seg'.*\(2, 3\).*\(3, 3\)"):
        gpu_media.validate_masks({"seg": {"mask_data": masks}}, [(3, 3)] * 3, device=device)


def test_transposed_mask_is_a_shape_mismatch(device):
    masks = [np.zeros((4, 6), np.uint8), np.zeros((6, 4), np.uint8)]
    with pytest.raises(MaskError, match=r"image 1, mask key 'm'.*\(6, 4\).*\(4, 6\)"):
        gpu_media.validate_masks(one(masks), [(4, 6), (4, 6)], device=device)


def test_non_2d_mask_in_list_form(device):
    masks = [np.zeros((3, 3), np.uint8), np.zeros((3, 3, 1), np.uint8)]
    with pytest.raises(MaskError, match=r"image 1, mask key 'm'.*2-D.*\(3, 3, 1\)"):
        gpu_media.validate_masks(one(masks), [(3, 3), (3, 3)], device=device)


def test_non_3d_batch_array_is_rejected(device):
    with pytest.raises(MaskError, match=r"mask key 'm'.*\(2, 3, 3, 1\)"):
        gpu_media.validate_masks(one(np.zeros((2, 3, 3, 1), np.uint8)), [(3, 3), (3, 3)], device=device)
    with pytest.raises(MaskError, match=r"mask key 'm'.*\(9,\)"):
        gpu_media.validate_masks(one(np.zeros(9, np.uint8)), [(3, 3)], device=device)


@pytest.mark.parametrize("given", [1, 3])
def test_wrong_number_of_masks_for_the_batch_array(device, given):
    data = np.zeros((given, 2, 2), np.uint8)
    with pytest.raises(MaskError, match=rf"mask key 'm'.*{given} masks for a batch of 2 images"):
        gpu_media.validate_masks(one(data), [(2, 2), (2, 2)], device=device)


@pytest.mark.parametrize("given", [1, 3])
def test_wrong_number_of_masks_for_the_batch_list(device, given):
    data = [np.zeros((2, 2), np.uint8)] * given
    with pytest.raises(MaskError, match=rf"mask key 'm'.*{given} masks for a batch of 2 images"):
        gpu_media.validate_masks(one(data), [(2, 2), (2, 2)], device=device)


# --------------------------------------------------------------------------- value range


def test_negative_value_names_the_smallest(device):
    data = np.zeros((4, 3, 3), np.int16)
    data[3, 0, 0] = -2
    data[3, 2, 1] = -7
    data[3, 1, 1] = 200  # in range, not mentioned
    with pytest.raises(MaskError, match=r"image 3, mask key 'm'.*smallest value -7") as exc:
        gpu_media.validate_masks(one(data), (3, 3), device=device)
    assert "largest" not in str(exc.value)


def test_too_large_value_names_the_largest(device):
    data = np.zeros((2, 3, 3), np.int32)
    data[1, 0, 0] = 256
    data[1, 1, 2] = 1000
    with pytest.raises(MaskError, match=r"image 1, mask key 'm'.*largest value 1000") as exc:
        gpu_media.validate_masks(one(data), (3, 3), device=device)
    assert "smallest" not in str(exc.value)


def test_both_out_of_range_directions_are_named(device):
    data = np.zeros((1, 2, 2), np.int64)
    data[0, 0, 0] = -1
    data[0, 1, 1] = 2**40
    with pytest.raises(MaskError, match=rf"image 0, mask key 'm'.*smallest value -1.*largest value {2**40}"):
        gpu_media.validate_masks(one(data), (2, 2), device=device)


def test_boundary_values_0_and_255_are_valid(device):
    data = np.array([[[0, 255], [255, 255]]], np.int32)
    assert gpu_media.validate_masks(one(data), (2, 2), device=device) == [{"m": {0: 1, 255: 3}}]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64, np.uint16, np.uint32, np.uint8])
def test_integer_dtypes_in_range(device, dtype):
    rng = np.random.default_rng(3)
    hi = 127 if dtype == np.int8 else 255
    data = rng.integers(0, hi + 1, size=(2, 4, 5)).astype(dtype)
    report = gpu_media.validate_masks(one(data), (4, 5), device=device)
    assert report == [{"m": expected_counts(d)} for d in data]


def test_int8_negative_value(device):
    data = np.zeros((2, 2, 2), np.int8)
    data[1, 1, 0] = -128
    with pytest.raises(MaskError, match=r"image 1, mask key 'm'.*smallest value -128"):
        gpu_media.validate_masks(one(data), (2, 2), device=device)


def test_uint16_value_above_255(device):
    data = np.full((1, 2, 2), 7, np.uint16)
    data[0, 0, 1] = 65535
    with pytest.raises(MaskError, match=r"image 0, mask key 'm'.*largest value 65535"):
        gpu_media.validate_masks(one(data), (2, 2), device=device)


# --------------------------------------------------------------------------- float and bool


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_integral_float_masks_are_accepted(device, dtype):
    data = np.array([[[0.0, 1.0, 1.0], [254.0, 255.0, 3.0]]], dtype)
    report = gpu_media.validate_masks(one(data), (2, 3), device=device)
    assert report == [{"m": {0: 1, 1: 2, 3: 1, 254: 1, 255: 1}}]


@pytest.mark.parametrize("bad", [0.5, 2.25, -0.5, 254.9])
def test_fractional_float_masks_are_rejected(device, bad):
    data = np.zeros((3, 2, 2), np.float32)
    data[2, 1, 1] = bad
    with pytest.raises(MaskError, match=r"image 2, mask key 'm'.*not integers"):
        gpu_media.validate_masks(one(data), (2, 2), device=device)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_masks_are_rejected(device, bad):
    data = np.ones((2, 2, 2), np.float64)
    data[1, 0, 0] = bad
    with pytest.raises(MaskError, match=r"image 1, mask key 'm'.*not integers"):
        gpu_media.validate_masks(one(data), (2, 2), device=device)


def test_integral_float_out_of_range_names_the_value(device):
    data = np.zeros((1, 2, 2), np.float32)
    data[0, 0, 0] = 300.0
    with pytest.raises(MaskError, match=r"image 0, mask key 'm'.*largest value 300\b"):
        gpu_media.validate_masks(one(data), (2, 2), device=device)
    data[0, 0, 0] = -4.0
    with pytest.raises(MaskError, match=r"image 0, mask key 'm'.*smallest value -4\b"):
        gpu_media.validate_masks(one(data), (2, 2), device=device)


def test_bool_masks_are_zero_and_one(device):
    data = np.zeros((2, 3, 4), bool)
    data[0, 1, :] = True
    data[1] = True
    report = gpu_media.validate_masks(one(data), (3, 4), device=device)
    assert report == [{"m": {0: 8, 1: 4}}, {"m": {1: 12}}]


def test_non_numeric_mask_dtype_is_rejected(device):
    data = np.array([[["a", "b"]]])
    with pytest.raises(MaskError, match=r"mask key 'm'.*dtype"):
        gpu_media.validate_masks(one(data), (1, 2), device=device)


# --------------------------------------------------------------------------- class labels


@pytest.mark.parametrize(
    "labels",
    [{"car": "car"}, {1: 2}, {1: None}, {None: "x"}, {True: "x"}, {(1,): "x"}],
    ids=["str-key", "int-value", "none-value", "none-key", "bool-key", "tuple-key"],
)
def test_class_labels_must_be_numbers_to_strings(device, labels):
    data = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(MaskError, match=r"mask key 'm'.*class_labels must be a dictionary of numbers to strings"):
        gpu_media.validate_masks(one(data, class_labels=labels), (2, 2), device=device)


def test_class_labels_not_a_dict(device):
    data = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(MaskError, match=r"mask key 'm'.*class_labels must be a dictionary"):
        gpu_media.validate_masks(one(data, class_labels=["a", "b"]), (2, 2), device=device)


def test_class_label_key_must_be_integral(device):
    data = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(MaskError, match=r"mask key 'm'.*class_labels key 1\.5 is not an integer"):
        gpu_media.validate_masks(one(data, class_labels={1.5: "x"}), (2, 2), device=device)


def test_integral_number_keys_are_accepted(device):
    data = np.array([[[0, 2], [2, 2]]], np.uint8)
    labels = {0.0: "bg", np.int64(2): "car"}
    report = gpu_media.validate_masks(one(data, class_labels=labels), (2, 2), strict=True, device=device)
    assert report == [{"m": {0: 1, 2: 3}}]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_class_label_key_is_a_mask_error(device, bad):
    data = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(MaskError, match=r"mask key 'm'.*class_labels"):
        gpu_media.validate_masks(one(data, class_labels={bad: "x"}), (2, 2), device=device)


def test_strict_names_the_missing_class_ids(device):
    data = np.zeros((3, 3, 3), np.uint8)
    data[2, 0, 0] = 4
    data[2, 1, 1] = 9
    data[2, 2, 2] = 1
    labels = {0: "bg", 1: "a"}
    # not strict: fine
    gpu_media.validate_masks(one(data, class_labels=labels), (3, 3), device=device)
    with pytest.raises(MaskError, match=r"image 2, mask key 'm'.*class ids \[4, 9\].*class_labels") as exc:
        gpu_media.validate_masks(one(data, class_labels=labels), (3, 3), strict=True, device=device)
    assert "[1," not in str(exc.value) and ", 1]" not in str(exc.value)


def test_strict_passes_when_all_present_ids_are_labelled(device):
    data = np.array([[[0, 1], [1, 7]]], np.uint8)
    labels = {0: "bg", 1: "a", 7: "b", 200: "unused"}
    report = gpu_media.validate_masks(one(data, class_labels=labels), (2, 2), strict=True, device=device)
    assert report == [{"m": {0: 1, 1: 2, 7: 1}}]


# --------------------------------------------------------------------------- the {"path": file} form


def _write_png(path, arr):
    Image.fromarray(np.asarray(arr, np.uint8), mode="L").save(path)
    with Image.open(path) as im:  # the fixture really is an 8-bit grayscale PNG
        assert im.mode == "L" and im.format == "PNG"
    return str(path)


def test_path_form_reads_a_grayscale_png(device, tmp_path):
    arr = np.zeros((5, 7), np.uint8)
    arr[1:3, 2:6] = 12
    arr[4, 6] = 255
    p = _write_png(tmp_path / "mask.png", arr)
    report = gpu_media.validate_masks({"m": {"path": p}}, (5, 7), device=device)
    assert report == [{"m": {0: 26, 12: 8, 255: 1}}]


def test_path_form_list_of_files(device, tmp_path):
    rng = np.random.default_rng(4)
    arrs = [rng.integers(0, 3, size=(4, 3)), rng.integers(5, 8, size=(2, 6))]
    paths = [_write_png(tmp_path / f"m{i}.png", a) for i, a in enumerate(arrs)]
    report = gpu_media.validate_masks({"m": {"path": paths}}, [(4, 3), (2, 6)], device=device)
    assert report == [{"m": expected_counts(a)} for a in arrs]


def test_path_form_list_with_one_size_for_all(device, tmp_path):
    arrs = [np.full((3, 4), 1), np.full((3, 4), 2)]
    paths = [_write_png(tmp_path / f"m{i}.png", a) for i, a in enumerate(arrs)]
    report = gpu_media.validate_masks({"m": {"path": paths}}, (3, 4), device=device)
    assert report == [{"m": {1: 12}}, {"m": {2: 12}}]


def test_path_form_shape_mismatch(device, tmp_path):
    p = _write_png(tmp_path / "mask.png", np.zeros((5, 7)))
    with pytest.raises(MaskError, match=r"image 0, mask key 'm'.*\(5, 7\).*\(7, 5\)"):
        gpu_media.validate_masks({"m": {"path": p}}, (7, 5), device=device)


def test_path_form_missing_file(device, tmp_path):
    p = str(tmp_path / "nope.png")
    with pytest.raises(MaskError, match=r"image 0, mask key 'm'.*cannot read mask file.*nope\.png"):
        gpu_media.validate_masks({"m": {"path": p}}, (2, 2), device=device)


def test_mask_spec_without_data_or_path(device):
    with pytest.raises(MaskError, match=r"mask key 'm'.*mask_data.*path"):
        gpu_media.validate_masks({"m": {"class_labels": {0: "bg"}}}, (2, 2), device=device)


# --------------------------------------------------------------------------- error order


def test_value_errors_report_the_lowest_image_first(device):
    data = np.zeros((5, 2, 2), np.int16)
    data[4, 0, 0] = -1
    data[1, 0, 0] = 999
    data[3, 0, 0] = -5
    with pytest.raises(MaskError, match=r"image 1, mask key 'm'.*largest value 999"):
        gpu_media.validate_masks(one(data), (2, 2), device=device)


def test_lowest_image_wins_across_keys(device):
    a = np.zeros((3, 2, 2), np.int16)
    a[2, 0, 0] = 300  # key "a", image 2
    b = np.zeros((3, 2, 2), np.float32)
    b[0, 1, 1] = 0.5  # key "b", image 0 -> this one is raised
    with pytest.raises(MaskError, match=r"image 0, mask key 'b'.*not integers"):
        gpu_media.validate_masks({"a": {"mask_data": a}, "b": {"mask_data": b}}, (2, 2), device=device)


def test_same_image_first_key_wins(device):
    a = np.zeros((2, 2, 2), np.int16)
    a[1, 0, 0] = 300
    b = np.zeros((2, 2, 2), np.int16)
    b[1, 0, 0] = -3
    with pytest.raises(MaskError, match=r"image 1, mask key 'a'.*largest value 300"):
        gpu_media.validate_masks({"a": {"mask_data": a}, "b": {"mask_data": b}}, (2, 2), device=device)


def test_shape_errors_report_the_lowest_image_first_across_keys(device):
    good = np.zeros((4, 4), np.uint8)
    a = [good, good, np.zeros((2, 2), np.uint8)]
    b = [np.zeros((3, 3), np.uint8), good, good]
    with pytest.raises(MaskError, match=r"image 0, mask key 'b'"):
        gpu_media.validate_masks({"a": {"mask_data": a}, "b": {"mask_data": b}}, (4, 4), device=device)


def test_shape_errors_come_before_value_errors(device):
    """validate_masks' documented order: every shape check, then the values."""
    good = np.zeros((4, 4), np.uint8)
    a = [good, good, np.zeros((2, 2), np.uint8)]
    b = np.zeros((3, 4, 4), np.int16)
    b[0, 0, 0] = -1
    with pytest.raises(MaskError, match=r"image 2, mask key 'a'.*\(2, 2\)"):
        gpu_media.validate_masks({"a": {"mask_data": a}, "b": {"mask_data": b}}, (4, 4), device=device)


def test_strict_without_class_labels_uses_the_defaults(device):
    data = np.array([[[0, 7]]], np.uint8)
    report = gpu_media.validate_masks({"m": {"mask_data": data}}, (1, 2), strict=True, device=device)
    assert report == [{"m": {0: 1, 7: 1}}]


def test_nothing_is_reported_when_any_image_fails(device):
    """Errors are raised before anything is returned: no partial report."""
    data = np.zeros((3, 2, 2), np.int16)
    data[2, 0, 0] = 256
    with pytest.raises(MaskError, match=r"image 2"):
        gpu_media.validate_masks(one(data), (2, 2), device=device)


# --------------------------------------------------------------------------- keys and class ids the viewer can read


def test_empty_mask_key_is_an_error(device):
    data = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(MaskError, match=r"mask key '': keys must be non-empty strings"):
        gpu_media.validate_masks({"": {"mask_data": data}}, (2, 2), device=device)
    with pytest.raises(MaskError, match=r"mask key 'm': needs 'mask_data' \(an array\) or 'path'"):
        gpu_media.validate_masks({"m": {}}, (2, 2), device=device)


@pytest.mark.parametrize("label", [2**53, -(2**53), 2**64, 1e300], ids=["2**53", "-2**53", "2**64", "1e300"])
def test_class_label_key_beyond_2_53_is_an_error(device, label):
    # the viewer's JavaScript reads integers above 2**53 - 1 back as other numbers (docs/SPEC.md 3)
    data = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(MaskError, match=r"mask key 'm': class_labels key -?\d+ is outside "
                       r"\[-\(2\*\*53 - 1\), 2\*\*53 - 1\]") as info:
        gpu_media.validate_masks(one(data, class_labels={0: "bg", label: "x"}), (2, 2), device=device)
    assert info.value.key == "m"


def test_negative_and_2_53_class_label_keys_are_kept(device):
    data = np.array([[[0, 1], [1, 1]]], np.uint8)
    labels = {-1: "ignore", 0: "bg", 1: "a", 2**53 - 1: "far"}
    report = gpu_media.validate_masks(one(data, class_labels=labels), (2, 2), strict=True, device=device)
    assert report == [{"m": {0: 1, 1: 3}}]


@pytest.mark.parametrize("labels", [{1: {"name": "car"}}, {1: ["car"]}, {"a": {1: "car"}}],
                         ids=["dict-value", "list-value", "nested-labels"])
def test_nested_class_labels_are_an_error(device, labels):
    data = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(MaskError, match=r"mask key 'm': class_labels must be a dictionary of numbers to strings"):
        gpu_media.validate_masks(one(data, class_labels=labels), (2, 2), device=device)
