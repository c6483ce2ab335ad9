"""SPEC 6: wandb's layout and JSON, content-addressed names, atomic writes; both backends."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import gpu_media as gm
from gpu_media.dump import index_path
from spec_reference import normalize_image

LABELS = {0: "background", 1: "car", 2: "road"}


def load_reference(ref):
    img = np.asarray(Image.open(os.path.join(ref, "image.png")))
    mask = np.asarray(Image.open(os.path.join(ref, "mask.png")))
    boxes = json.load(open(os.path.join(ref, "boxes2D.json")))
    return img, mask, boxes


def files_under(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_image_json_equals_wandb_reference(device, tmp_path, reference_dir):
    img, mask, boxes = load_reference(reference_dir)
    dicts = gm.write_dump(  # compression_level=6: Pillow's default PNG settings, as wandb.Image
        tmp_path, img[None], key="val_images", step=3, captions=["sample 0"], device=device, compression_level=6,
        masks={"predictions": {"mask_data": mask[None], "class_labels": LABELS}},
        boxes=[{"predictions": {"box_data": boxes["box_data"], "class_labels": LABELS}}],
    )
    expected = json.load(open(os.path.join(reference_dir, "image_to_json.json")))
    assert dicts == [expected]
    assert list(dicts[0]) == list(expected)  # same key order as wandb
    for entry in [dicts[0], dicts[0]["masks"]["predictions"], dicts[0]["boxes"]["predictions"]]:
        data = open(tmp_path / entry["path"], "rb").read()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    assert open(tmp_path / dicts[0]["boxes"]["predictions"]["path"], "rb").read() == \
        open(os.path.join(reference_dir, "boxes2D.json"), "rb").read()


def test_separated_json_matches_wandb_reference(device, tmp_path, reference_dir):
    img, mask, _ = load_reference(reference_dir)
    gm.write_dump(tmp_path, np.stack([img, img]), key="batch", step=4, captions=["s0", "s1"], device=device,
                  compression_level=6,
                  masks={"gt": {"mask_data": np.stack([mask, mask]), "class_labels": LABELS}})
    index = json.load(open(index_path(tmp_path, "batch", 4)))
    ours, ref = index["separated"], json.load(open(os.path.join(reference_dir, "seq_to_json.json")))
    assert list(ours) == list(ref)
    for k in ("_type", "width", "height", "format", "count", "captions"):
        assert ours[k] == ref[k]
    # wandb names list files by index; ours are content-addressed (SPEC 6), same sha and size
    for o, r in zip(ours["all_masks"], ref["all_masks"]):
        assert {k: v for k, v in o["gt"].items() if k != "path"} == {k: v for k, v in r["gt"].items() if k != "path"}
        assert o["gt"]["path"].startswith("media/images/mask/batch_4_")
    assert all(f.startswith("media/images/batch_4_") and f.endswith(".png") for f in ours["filenames"])


def test_pixels_masks_boxes_and_index(device, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((3, 10, 12, 3)).astype(np.float32) * np.array([1, 2, 500], np.float32)[:, None, None, None]
    masks = rng.integers(0, 3, (3, 10, 12)).astype(np.uint8)
    boxes = {"pred": {"xyxy": [[1, 1, 5, 5], [0, 0, 12, 10]], "image_index": [2, 0], "class_id": [1, 2],
                      "scores": {"score": [0.25, 0.75]}}}
    dicts = gm.write_dump(tmp_path, x, key="val", masks={"m": {"mask_data": masks}}, boxes=boxes,
                          classes={1: "cat", 2: "dog"}, device=device)
    assert len(dicts) == 3 and "boxes" not in dicts[1] and "boxes" in dicts[0]
    for i, d in enumerate(dicts):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / d["path"])), normalize_image(x[i]))
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / d["masks"]["m"]["path"])), masks[i])
    b0 = json.load(open(tmp_path / dicts[0]["boxes"]["pred"]["path"]))
    assert b0["box_data"] == [{"position": {"minX": 0.0, "maxX": 12.0, "minY": 0.0, "maxY": 10.0}, "domain": "pixel",
                               "class_id": 2, "box_caption": "dog 0.75", "scores": {"score": 0.75}}]
    assert b0["class_labels"] == {"1": "cat", "2": "dog"}
    index = json.load(open(index_path(tmp_path, "val")))
    assert index["images"] == dicts and index["count"] == 3
    assert index["mask_class_labels"] == {"m": {"1": "cat", "2": "dog"}}
    for i in range(3):
        vals, counts = np.unique(masks[i], return_counts=True)
        assert index["mask_report"][i]["m"] == {str(v): int(c) for v, c in zip(vals, counts)}


def test_mask_default_labels_are_class_c(device, tmp_path):
    m = np.array([[[0, 4]], [[7, 7]]], np.uint8)
    gm.write_dump(tmp_path, np.zeros((2, 1, 2, 3), np.uint8), key="k", masks={"m": {"mask_data": m}}, device=device)
    index = json.load(open(index_path(tmp_path, "k")))
    assert index["mask_class_labels"] == {"m": {"0": "class_0", "4": "class_4", "7": "class_7"}}


@pytest.mark.parametrize("file_type,ext", [("jpg", ".jpg"), ("jpeg", ".jpeg"), ("bmp", ".bmp")])
def test_formats(device, tmp_path, file_type, ext):
    x = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    dicts = gm.write_dump(tmp_path, x, key="f", file_type=file_type, device=device)
    assert all(d["path"].endswith(ext) and d["format"] == file_type for d in dicts)
    if file_type == "bmp":
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / dicts[1]["path"])), x[1])


def test_draw_boxes_burns_outlines(device, tmp_path):
    x = np.zeros((1, 8, 8, 1), np.uint8)
    boxes = [{"b": {"box_data": [{"position": {"minX": 2, "maxX": 6, "minY": 2, "maxY": 6}, "domain": "pixel",
                                  "class_id": 3}]}}]
    d = gm.write_dump(tmp_path, x, key="k", boxes=boxes, draw_boxes=True, thickness=1, device=device)[0]
    got = np.asarray(Image.open(tmp_path / d["path"]))
    assert got.shape == (8, 8, 3)  # "L" became "RGB"
    ring = np.zeros((8, 8), bool)
    ring[2:6, 2:6] = True
    ring[3:5, 3:5] = False
    np.testing.assert_array_equal(got[ring], np.tile(gm.PALETTE[3], (ring.sum(), 1)))
    assert not got[~ring].any()


@pytest.mark.parametrize("key", ["../../x", "/etc/passwd", "a/../../b", "..", ".", "a\\..\\..\\b", "~", "\x00"])
def test_keys_and_captions_never_escape(device, tmp_path, key):
    out = tmp_path / "a" / "b"
    gm.write_dump(out, np.zeros((1, 2, 2, 3), np.uint8), key=key, step="../..", captions=["../../../evil"],
                  masks={"../m": {"mask_data": np.zeros((1, 2, 2), np.uint8)}}, device=device)
    assert sorted(os.listdir(tmp_path)) == ["a"] and os.listdir(tmp_path / "a") == ["b"]
    for rel in files_under(out):
        assert not rel.startswith("..") and not os.path.isabs(rel)
    assert sorted(os.listdir(out)) == sorted(["media", "index.html", ".gpu-media.lock",
                                              os.path.basename(index_path(out, key, "../.."))])


def test_same_dump_twice_is_identical(device, tmp_path):
    rng = np.random.default_rng(2)
    kw = dict(key="v", step=7, masks={"m": {"mask_data": rng.integers(0, 4, (4, 6, 5))}}, captions=list("abcd"),
              boxes={"p": {"xyxy": [[0, 0, 3, 3]], "image_index": [1], "class_id": [0]}}, device=device)
    x = rng.random((4, 6, 5, 3))
    gm.write_dump(tmp_path / "one", x, **kw)
    first = files_under(tmp_path / "one")
    gm.write_dump(tmp_path / "one", x, overwrite=True, **kw)
    gm.write_dump(tmp_path / "two", x, chunk_size=1, **kw)
    assert files_under(tmp_path / "one") == first == files_under(tmp_path / "two")


def test_interrupted_dump_is_finished_by_a_second_run(device, tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.random((6, 8, 8, 3))
    kw = dict(key="run", masks={"m": {"mask_data": rng.integers(0, 3, (6, 8, 8))}}, chunk_size=2, device=device)
    gm.write_dump(tmp_path / "clean", x, **kw)
    real_replace, calls = os.replace, []

    def crash_on_fifth(src, dst):
        calls.append(dst)
        if len(calls) == 5:
            raise OSError("disk full (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_fifth)
    with pytest.raises(OSError, match="simulated"):
        gm.write_dump(tmp_path / "dump", x, **kw)
    monkeypatch.setattr(os, "replace", real_replace)
    partial = files_under(tmp_path / "dump")
    assert not os.path.exists(index_path(tmp_path / "dump", "run"))  # no index: not complete
    assert not [f for f in partial if f.endswith(".tmp")]  # no half-written file left
    clean = files_under(tmp_path / "clean")
    assert 0 < len(partial) < len(clean) and all(clean[f] == b for f, b in partial.items())
    # a kill -9 leaves a hidden temporary file; it is never mistaken for a real one, and the next
    # dump removes it once its writer process is gone (SPEC 6.4; tests/test_dump_io.py)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "dump" / "media" / "images" / f".run_0_x.png.{dead.pid}.deadbeef.tmp"
    stale.write_bytes(b"partial")
    gm.write_dump(tmp_path / "dump", x, **kw)
    assert files_under(tmp_path / "dump") == clean


def test_errors_before_any_file_is_written(device, tmp_path):
    x = np.zeros((4, 5, 5, 3), np.uint8)
    bad_mask = np.zeros((4, 5, 5), np.int32)
    bad_mask[3, 0, 0] = 300
    with pytest.raises(gm.MaskError, match=r"^image 3, mask key 'm': .*largest value 300"):
        gm.write_dump(tmp_path / "o", x, key="k", masks={"m": {"mask_data": bad_mask}}, device=device)
    with pytest.raises(gm.BoxError, match=r"^image 2, box key 'b', box 0: box coordinates must be finite"):
        gm.write_dump(tmp_path / "o", x, key="k", device=device,
                      boxes={"b": {"xyxy": [[0, 0, np.nan, 1]], "image_index": [2]}})
    with pytest.raises(gm.MediaError, match="3 captions for a batch of 4 images"):
        gm.write_dump(tmp_path / "o", x, key="k", captions=["a", "b", "c"], device=device)
    with pytest.raises(gm.ImageError, match=r"^image 1: "):
        gm.write_dump(tmp_path / "o", [x[0], np.zeros((5, 5, 2), np.uint8)], key="k", device=device)
    with pytest.raises(gm.MediaError, match="key must be a non-empty string"):
        gm.write_dump(tmp_path / "o", x, key="", device=device)
    assert not (tmp_path / "o").exists()


def test_progress_bar_on_stderr(device, tmp_path, capsys):
    gm.write_dump(tmp_path, np.zeros((5, 4, 4, 3), np.uint8), key="p", chunk_size=2, progress=True, device=device)
    err = capsys.readouterr().err
    assert "5/5" in err


def test_list_of_differing_sizes_any_chunking(device, tmp_path):
    rng = np.random.default_rng(4)
    imgs = [rng.random((5, 7, 3)), rng.integers(0, 300, (9, 4)), (rng.random((5, 7, 3)) * 2 - 1).astype(np.float16),
            np.full((3, 3, 4), 9, np.uint8)]
    masks = {"m": {"mask_data": [np.zeros((5, 7), np.uint8), np.ones((9, 4), np.int32), np.full((5, 7), 2),
                                 np.ones((3, 3), bool)]}}
    boxes = [None, {"b": {"box_data": [{"position": {"minX": 0.25, "maxX": 0.75, "minY": 0.0, "maxY": 1.0},
                                        "class_id": 1}]}}, None, None]
    indexes = []
    for cs in (1, 3, None):
        out = tmp_path / str(cs)
        dicts = gm.write_dump(out, imgs, key="k", masks=masks, boxes=boxes, chunk_size=cs, device=device)
        for d, im, m in zip(dicts, imgs, masks["m"]["mask_data"]):
            expected = normalize_image(im if im.ndim == 3 else im[..., None])
            got = np.asarray(Image.open(out / d["path"]))
            np.testing.assert_array_equal(got.reshape(expected.shape), expected)
            np.testing.assert_array_equal(np.asarray(Image.open(out / d["masks"]["m"]["path"])), m.astype(np.uint8))
        indexes.append(open(index_path(out, "k"), "rb").read())
    assert indexes[0] == indexes[1] == indexes[2]
