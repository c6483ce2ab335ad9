"""Errors carry what their messages name: ``index`` (batch index), ``key`` and ``item``.

Also the shared checks (gpu_media.checks) and the validation of DumpOptions. The
semantic tests take the ``device`` fixture: the fields are part of the contract that
both backends share.
"""

from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np
import pytest

import gpu_media as gm
from gpu_media import checks, errors
from gpu_media.dump import DumpOptions
from gpu_media.errors import BoxError, ImageError, MaskError, MediaError


def test_mask_of_the_wrong_shape(device):
    good = np.zeros((8, 8), np.uint8)
    masks = {"gt": {"mask_data": [good, good, good]}, "pred": {"mask_data": [good, good, np.zeros((5, 8), np.uint8)]}}
    with pytest.raises(MaskError) as info:
        gm.validate_masks(masks, (8, 8), device=device)
    err = info.value
    assert str(err) == "image 2, mask key 'pred': mask shape (5, 8) does not match the image's (H, W) (8, 8)"
    assert (err.index, err.key, err.item) == (2, "pred", (5, 8))


def test_mask_value_out_of_range(device):
    m = np.zeros((3, 4, 4), np.int16)
    m[1, 2, 3] = 300
    with pytest.raises(MaskError, match=r"^image 1, mask key 'seg': .* found largest value 300$") as info:
        gm.validate_masks({"seg": {"mask_data": m}}, (4, 4), device=device)
    assert (info.value.index, info.value.key, info.value.item) == (1, "seg", 300)


def test_mask_errors_from_a_dump_carry_the_same_fields(tmp_path, device):
    images = np.zeros((3, 8, 8, 3), np.uint8)
    masks = {"pred": {"mask_data": [np.zeros((8, 8), np.uint8)] * 2 + [np.zeros((8, 7), np.uint8)]}}
    with pytest.raises(MaskError) as info:
        gm.write_dump(tmp_path / "out", images, key="k", masks=masks, device=device)
    assert (info.value.index, info.value.key, info.value.item) == (2, "pred", (8, 7))
    assert not (tmp_path / "out").exists()  # raised before anything was written


def test_box_with_a_nan_coordinate(device):
    images = np.zeros((2, 16, 16, 3), np.uint8)
    bad = {"position": {"minX": 1.0, "maxX": float("nan"), "minY": 1.0, "maxY": 4.0}, "domain": "pixel"}
    ok = {"position": {"minX": 1, "maxX": 4, "minY": 1, "maxY": 4}, "domain": "pixel"}
    boxes = [None, {"gt": {"box_data": [ok, ok, bad]}}]
    with pytest.raises(BoxError, match=r"^image 1, box key 'gt', box 2: box coordinates must be finite") as info:
        gm.draw_boxes(images, boxes, device=device)
    assert (info.value.index, info.value.key) == (1, "gt")
    assert info.value.item is bad


def test_batched_box_with_a_nan_coordinate(device):
    images = np.zeros((3, 16, 16, 3), np.uint8)
    xyxy = np.array([[0, 0, 4, 4], [1, 1, 5, 5], [2, np.nan, 6, 6]], np.float64)
    boxes = {"pred": {"xyxy": xyxy, "image_index": np.array([0, 2, 1])}}
    with pytest.raises(BoxError, match=r"^image 1, box key 'pred', box 2: box coordinates must be finite") as info:
        gm.draw_boxes(images, boxes, device=device)
    err = info.value
    assert (err.index, err.key) == (1, "pred")
    assert err.item[0] == 2.0 and np.isnan(err.item[1]) and err.item[2:] == [6.0, 6.0]


def test_image_of_an_unsupported_dtype(device):
    images = [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.complex64)]
    with pytest.raises(ImageError, match=r"^image 2: dtype complex64 is not supported") as info:
        gm.normalize(images, device=device)
    assert (info.value.index, info.value.key, info.value.item) == (2, None, np.dtype(np.complex64))
    with pytest.raises(ImageError, match=r"^images: dtype complex64") as info:  # one array: no single image to name
        gm.normalize(np.zeros((2, 4, 4, 3), np.complex64), device=device)
    assert info.value.index is None and info.value.item == np.dtype(np.complex64)


def test_caption_of_the_wrong_type(tmp_path, device):
    with pytest.raises(MediaError, match=r"^image 1: caption must be a string or None, got int$") as info:
        gm.write_dump(tmp_path, np.zeros((2, 4, 4, 3), np.uint8), key="k", captions=["a", 7], device=device)
    assert (info.value.index, info.value.item) == (1, 7)


def test_fields_default_to_none_and_str_is_the_message():
    err = MediaError("something is wrong")
    assert str(err) == "something is wrong" and err.args == ("something is wrong",)
    assert (err.index, err.key, err.item) == (None, None, None)
    assert isinstance(err, ValueError)
    for cls in (ImageError, MaskError, BoxError):
        assert issubclass(cls, MediaError)


@pytest.mark.parametrize("cls", [MediaError, ImageError, MaskError, BoxError])
def test_errors_pickle_with_their_fields(cls):
    err = cls("image 3, mask key 'm': bad", index=3, key="m", item=(1, 2))
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err)
    assert (back.index, back.key, back.item) == (3, "m", (1, 2))


def test_is_integer():
    for yes in (0, -3, 2**70, np.int64(5), np.uint8(7), np.int8(-1)):
        assert checks.is_integer(yes), yes
    for no in (True, False, np.bool_(True), np.bool_(False), 1.0, np.float32(2), "1", None, np.array(3), 1 + 0j):
        assert not checks.is_integer(no), no


def test_is_number_and_is_finite_number():
    for yes in (0, 1.5, np.float64("nan"), np.int32(4), float("inf")):
        assert checks.is_number(yes), yes
    for no in (True, np.bool_(True), "1", None, [1]):
        assert not checks.is_number(no), no
    assert checks.is_finite_number(2.5) and checks.is_finite_number(np.int64(3))
    for no in (float("nan"), float("inf"), True, 1 + 2j, "3"):
        assert not checks.is_finite_number(no), no


def test_check_int_messages_and_fields():
    assert checks.check_int(np.int64(5), "quality", lo=1, hi=100) == 5
    assert type(checks.check_int(np.int64(5), "quality", lo=1, hi=100)) is int
    assert checks.check_int(None, "level", lo=0, hi=9, optional=True) is None
    cases = [
        (dict(lo=1, hi=100), 0, "quality must be an integer from 1 to 100, got 0"),
        (dict(lo=1, hi=100), True, "quality must be an integer from 1 to 100, got True"),
        (dict(lo=0, hi=9, optional=True), 10, "quality must be None or an integer from 0 to 9, got 10"),
        (dict(lo=1, unit="pixels"), 2.0, "quality must be an integer >= 1 (pixels), got 2.0"),
        (dict(hi=3), 4, "quality must be an integer <= 3, got 4"),
        (dict(), "x", "quality must be an integer, got 'x'"),
    ]
    for kw, value, message in cases:
        with pytest.raises(MediaError) as info:
            checks.check_int(value, "quality", **kw)
        assert str(info.value) == message and info.value.item is value
    with pytest.raises(MaskError) as info:
        checks.check_int(-1, "class id", lo=0, error=MaskError, index=4, key="seg")
    assert (info.value.index, info.value.key, info.value.item) == (4, "seg", -1)


def test_check_choice():
    assert checks.check_choice("png", "file_type", ("png", "jpg")) == "png"
    with pytest.raises(MediaError, match=r"^file_type must be one of \['png', 'jpg'\], got 'gif'$") as info:
        checks.check_choice("gif", "file_type", ("png", "jpg"))
    assert info.value.item == "gif"


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(quality=0), MediaError, "quality must be an integer from 1 to 100, got 0"),
    (dict(quality=True), MediaError, "quality must be an integer from 1 to 100, got True"),
    (dict(compression_level=10), MediaError, "compression_level must be None or an integer from 0 to 9, got 10"),
    (dict(file_type="gif"), MediaError, "file_type must be one of ['png', 'jpg', 'jpeg', 'bmp'], got 'gif'"),
    (dict(thickness=0), BoxError, "thickness must be an integer >= 1 (pixels), got 0"),
    (dict(colors={1: (1, 2)}), BoxError, "colors[1] must be an (r, g, b) triple of integers in [0, 255], got (1, 2)"),
    (dict(classes={"a": "b"}), MediaError, "classes: class_labels must be a dictionary of numbers to strings, "
                                           "got 'a': 'b'"),
    (dict(chunk_size=0), MediaError, "chunk_size must be None or an integer >= 1, got 0"),
])
def test_dump_options_are_validated_when_built(kwargs, error, message):
    with pytest.raises(error) as info:
        DumpOptions(**kwargs)
    assert str(info.value) == message


def test_dump_options_hold_the_checked_values():
    opt = DumpOptions(file_type="jpeg", quality=np.int64(90), thickness=2**40, draw_boxes=1,
                      classes=[{"id": 1, "name": "car"}])
    assert (opt.codec, opt.quality, type(opt.quality), opt.thickness) == ("jpg", 90, int, 2**31)
    assert opt.draw_boxes is True and opt.classes == {1: "car"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        opt.quality = 10
    assert dataclasses.replace(opt, quality=50).codec == "jpg"
    assert DumpOptions() == DumpOptions(file_type="png", quality=75, device="auto")


def test_bad_options_are_raised_before_the_images_are_looked_at(tmp_path):
    with pytest.raises(MediaError, match="^quality must be"):
        gm.write_dump(tmp_path / "out", np.zeros((2, 4, 4, 3), np.complex64), key="k", quality=0)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the output folder and the device


def _folder_cases(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_bytes(b"keep")
    locked = tmp_path / "locked"
    (locked / ".gpu-media.lock").mkdir(parents=True)
    return [
        (a_file, errors.DumpPathExistsError, FileExistsError, ["a_file", "existing file"]),
        (a_file / "sub", errors.DumpPathNotADirectoryError, NotADirectoryError, ["a_file", "which is a file"]),
        (os.fsencode(tmp_path / "b"), errors.DumpPathTypeError, TypeError, ["bytes"]),
        (locked, errors.DumpLockError, IsADirectoryError, [".gpu-media.lock", "is a folder"]),
    ]


def test_bad_output_folders_are_gpu_media_errors_keeping_the_builtin_base(tmp_path):
    """write_dump raises a gpu_media error that callers catching the builtin one still catch; nothing written."""
    for out, cls, builtin, words in _folder_cases(tmp_path):
        before = sorted(str(p) for p in tmp_path.rglob("*"))
        with pytest.raises(cls) as info:
            gm.write_dump(out, np.zeros((2, 4, 4, 3), np.uint8), key="k", device="cpu")
        assert isinstance(info.value, MediaError) and isinstance(info.value, builtin)
        assert isinstance(info.value, errors.DumpPathError)
        assert info.value.item in (out, os.fspath(out))
        for word in words:
            assert word in str(info.value), (word, str(info.value))
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # found before any work


def test_the_lock_folder_is_found_before_any_media_file(tmp_path):
    """Found in the preflight, not by the lock after every media file was encoded and written."""
    (tmp_path / ".gpu-media.lock").mkdir()
    with pytest.raises(errors.DumpLockError):
        gm.write_dump(tmp_path, np.zeros((2, 4, 4, 3), np.uint8), key="k", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gpu-media.lock"]


@pytest.mark.parametrize("cls", [errors.DumpPathExistsError, errors.DumpPathNotADirectoryError,
                                 errors.DumpPathTypeError, errors.DumpLockError, errors.DumpWriteError])
def test_dump_path_errors_pickle_with_their_fields(cls):
    err = cls("/x: bad", item="/x")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == "/x: bad" and back.item == "/x"


def test_an_unknown_device_is_a_media_error(tmp_path, monkeypatch):
    monkeypatch.delenv("GPU_MEDIA_DEVICE", raising=False)
    with pytest.raises(MediaError, match="device must be one of") as info:
        gm.write_dump(tmp_path / "o", np.zeros((2, 4, 4, 3), np.uint8), key="k", device="tpu")
    assert info.value.item == "tpu"
    monkeypatch.setenv("GPU_MEDIA_DEVICE", "tpu")
    with pytest.raises(MediaError, match="GPU_MEDIA_DEVICE must be one of"):
        gm.encode(np.zeros((1, 4, 4, 3), np.uint8))
    assert not (tmp_path / "o").exists()
