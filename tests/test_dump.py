"""docs/SPEC.md 6: wandb's layout and JSON, content-addressed names, atomic writes; both backends."""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import gpu_media as gm
from gpu_media.dump import index_path
from media_helpers import files_under
from spec_reference import normalize_image

LABELS = {0: "background", 1: "car", 2: "road"}


def load_reference(ref):
    img = np.asarray(Image.open(os.path.join(ref, "image.png")))
    mask = np.asarray(Image.open(os.path.join(ref, "mask.png")))
    boxes = json.load(open(os.path.join(ref, "boxes2D.json")))
    return img, mask, boxes



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
    # wandb names list files by index; ours are content-addressed (docs/SPEC.md 6), same sha and size
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


@pytest.mark.parametrize("key,path", [
    ("../../x", "__/__/x"), ("/etc/passwd", "etc/passwd"), ("a/../../b", "a/__/__/b"), ("..", "__"), (".", "_"),
    ("a\\..\\..\\b", "a\\..\\..\\b"), ("~", "~"), ("///a//b/", "a/b/"), ("x/./y", "x/_/y"),
])
def test_keys_and_captions_never_escape(device, tmp_path, key, path):
    # docs/SPEC.md 6.2: wandb's make_file_path_upload_safe (tests/test_wandb_cases.py checks it against wandb)
    out = tmp_path / "a" / "b"
    (d,) = gm.write_dump(out, np.zeros((1, 2, 2, 3), np.uint8), key=key, step="..", captions=["../../../evil"],
                         masks={"../m": {"mask_data": np.zeros((1, 2, 2), np.uint8)}}, device=device)
    assert sorted(os.listdir(tmp_path)) == ["a"] and os.listdir(tmp_path / "a") == ["b"]
    for rel in files_under(out):
        assert not rel.startswith("..") and not os.path.isabs(rel)
    assert sorted(os.listdir(out)) == sorted(["media", "index.html", "viewer", ".gpu-media.lock", ".gpu-media-claims",
                                              os.path.basename(index_path(out, key, ".."))])
    stem = path + "_.._"
    assert d["path"].startswith(f"media/images/{stem}") and d["masks"]["../m"]["path"].startswith(
        f"media/images/mask/{stem}")
    assert (out / d["path"]).is_file() and (out / d["masks"]["../m"]["path"]).is_file()


@pytest.mark.parametrize("key,step,match", [
    ("\x00", 0, "key must not contain NUL"),
    ("a/b\x00c", 0, "key must not contain NUL"),
    ("k", "../..", "step must not contain '/' or NUL"),
    ("k", "a\x00", "step must not contain '/' or NUL"),
    ("\udc80", 0, "key must be valid UTF-8"),
    ("a" * 256 + "/x", 0, "folder 'a+' of key .*: 256 bytes"),
    ("\u00e9" * 99, 0, "file names of key .*: 234 bytes in UTF-8, above the 233"),  # + _0_<20>.boxes2D.json
    ("a/" * 55 + "b", 0, "index file name of key .*: 234 bytes"),  # each / is %2F in the index name
    ("k", "s" * 240, "file names of key"),
])
def test_bad_keys_and_steps_raise_before_writing(device, tmp_path, key, step, match):
    with pytest.raises(gm.MediaError, match=match) as info:
        gm.write_dump(tmp_path / "o", np.zeros((1, 2, 2, 3), np.uint8), key=key, step=step, device=device)
    assert info.value.key == key
    assert not (tmp_path / "o").exists()


def test_numpy_integer_step(device, tmp_path):
    (d,) = gm.write_dump(tmp_path, np.zeros((1, 2, 2, 3), np.uint8), key="k", step=np.int64(3), device=device)
    assert d["path"].startswith("media/images/k_3_")
    index = json.load(open(index_path(tmp_path, "k", 3)))
    assert index["step"] == 3 and index_path(tmp_path, "k", np.uint8(3)) == index_path(tmp_path, "k", 3)


def test_names_that_just_fit(device, tmp_path):
    # the file b*197_0_<20 hex>.boxes2D.json of 233 bytes (255 less the room the temporary name
    # .<name>.<pid>.<8 hex>.tmp takes); an index name of 233 bytes
    box = [{"b": {"box_data": [{"position": {"minX": 0, "maxX": 1, "minY": 0, "maxY": 1}, "class_id": 0}]}}]
    key = "b" * 197
    (d,) = gm.write_dump(tmp_path, np.zeros((1, 2, 2, 3), np.uint8), key=key, device=device, boxes=box)
    assert len(os.path.basename(d["boxes"]["b"]["path"]).encode()) == 233
    key2 = "a/" * 54 + "b" * 4  # a%2F * 54 + bbbb + _0.index.json
    gm.write_dump(tmp_path, np.zeros((1, 2, 2, 3), np.uint8), key=key2, device=device, boxes=box)
    assert len(os.path.basename(index_path(tmp_path, key2))) == 233 and os.path.exists(index_path(tmp_path, key2))


def test_symlink_out_of_the_dump_folder_is_refused(device, tmp_path):
    out, elsewhere = tmp_path / "dump", tmp_path / "elsewhere"
    (out / "media" / "images").mkdir(parents=True)
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "media" / "images" / "val")
    with pytest.raises(gm.MediaError, match=r"refusing to write 'media/images/val/pred_0': it resolves outside"):
        gm.write_dump(out, np.zeros((1, 2, 2, 3), np.uint8), key="val/pred", device=device)
    assert os.listdir(elsewhere) == [] and not list(out.glob("*.index.json"))
    gm.write_dump(out, np.zeros((1, 2, 2, 3), np.uint8), key="other/pred", device=device)  # other folders: fine


def test_index_names_are_injective(device, tmp_path):
    pairs = [("a/b", 0), ("a_b", 0), ("a%2Fb", 0), ("x", "1_2"), ("x_1", 2), ("x_1", "2"), (".h", 0), ("%2Eh", 0),
             ("~", 0), ("%7E", 0), ("demo", 0), ("sp ace", "s p"), ("\u00fc", 0)]
    names = {index_path("", k, s) for k, s in pairs}
    assert len(names) == len(pairs) - 1  # only ("x_1", 2) and ("x_1", "2") share the step text "2"
    assert index_path("", "a/b", 0) == "a%2Fb_0.index.json" and index_path("", "a_b", 0) == "a_b_0.index.json"
    assert index_path("", "demo", 0) == "demo_0.index.json" and index_path("", "x", "1_2") == "x_1%5F2.index.json"
    assert index_path("", ".h", 0) == "%2Eh_0.index.json" and index_path("", "~", 0) == "%7E_0.index.json"
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9%_.-]+", name) and not name.startswith(".")
    # two keys of one folder: each index and its files stay as written
    rng = np.random.default_rng(9)
    x, y = rng.integers(0, 256, (2, 1, 3, 3, 3), dtype=np.uint8)
    da = gm.write_dump(tmp_path, x, key="a/b", device=device)
    db = gm.write_dump(tmp_path, y, key="a_b", device=device)
    for key, dicts, img in (("a/b", da, x), ("a_b", db, y)):
        index = json.load(open(index_path(tmp_path, key)))
        assert index["key"] == key and index["images"] == dicts
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / dicts[0]["path"])), img[0])
    assert da[0]["path"].startswith("media/images/a/b_0_") and db[0]["path"].startswith("media/images/a_b_0_")


def test_sub_folder_keys_in_the_viewer(device, tmp_path):
    from gpu_media import viewer

    m = np.zeros((1, 4, 4), np.uint8)
    m[0, 1:3, 1:3] = 2
    (d,) = gm.write_dump(tmp_path, np.zeros((1, 4, 4, 3), np.uint8), key="val/pred", step=3, device=device,
                         masks={"m": {"mask_data": m}},
                         boxes=[{"b": {"box_data": [{"position": {"minX": 0, "maxX": 2, "minY": 0, "maxY": 2},
                                                     "domain": "pixel", "class_id": 1}]}}])
    assert re.fullmatch(r"media/images/val/pred_3_[0-9a-f]{20}\.png", d["path"])
    assert re.fullmatch(r"media/images/mask/val/pred_3_[0-9a-f]{20}\.mask\.png", d["masks"]["m"]["path"])
    assert re.fullmatch(r"media/metadata/boxes2D/val/pred_3_[0-9a-f]{20}\.boxes2D\.json", d["boxes"]["b"]["path"])
    (dump,) = viewer.viewer_data(tmp_path)["dumps"]
    assert (dump["key"], dump["step"], dump["file"]) == ("val/pred", 3, "val%2Fpred_3.index.json")
    im = dump["images"][0]
    assert (im["path"], im["masks"]["m"]) == (d["path"], d["masks"]["m"]["path"])
    assert im["boxes"]["b"][0]["class_id"] == 1 and dump["box_labels"] == {"b": {"1": "class_1"}}
    # an index without its "key" gets it back from the file name
    idx = json.load(open(index_path(tmp_path, "val/pred", 3)))
    del idx["key"]
    (tmp_path / "val%2Fpred_3.index.json").write_text(json.dumps(idx))
    assert viewer.viewer_data(tmp_path)["dumps"][0]["key"] == "val/pred"


def test_boxes2D_files_hold_class_labels_only_when_given(device, tmp_path):
    box = {"position": {"minX": 0, "maxX": 2, "minY": 0, "maxY": 2}, "domain": "pixel", "class_id": 4}
    x = np.zeros((1, 4, 4, 3), np.uint8)
    cases = {
        "none": ({}, [{"b": {"box_data": [box]}}], None),
        "batched": ({}, {"b": {"xyxy": [[0, 0, 2, 2]], "class_id": [4]}}, None),
        "given": ({}, [{"b": {"box_data": [box], "class_labels": {4: "cat"}}}], {"4": "cat"}),
        "batched_given": ({}, {"b": {"xyxy": [[0, 0, 2, 2]], "class_id": [4], "class_labels": {4: "cat"}}},
                          {"4": "cat"}),
        "classes": ({"classes": {4: "dog"}}, [{"b": {"box_data": [box]}}], {"4": "dog"}),
    }
    for key, (kw, boxes, labels) in cases.items():
        (d,) = gm.write_dump(tmp_path, x, key=key, boxes=boxes, device=device, **kw)
        doc = json.load(open(tmp_path / d["boxes"]["b"]["path"]))
        assert list(doc) == (["box_data"] if labels is None else ["box_data", "class_labels"])
        assert doc.get("class_labels") == labels
        index = json.load(open(index_path(tmp_path, key)))
        assert index["box_class_labels"] == {"b": labels or {"4": "class_4"}}  # what the viewer shows


def test_path_masks_keep_their_bytes_and_extension(device, tmp_path):
    m = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(m).save(src / "a.mask.png", compress_level=9, optimize=True)
    Image.fromarray(m * 3).save(src / "b.PNG.bmp")
    Image.fromarray(m).save(src / "noext", format="PNG")
    out = tmp_path / "out"
    dicts = gm.write_dump(out, np.zeros((3, 2, 3, 3), np.uint8), key="k/v", device=device,
                          masks={"gt": {"path": [src / "a.mask.png", str(src / "b.PNG.bmp"),
                                                 os.fsencode(src / "noext")]}})
    for d, name, ext in zip(dicts, ["a.mask.png", "b.PNG.bmp", "noext"], [".png", ".bmp", ""]):
        data = (src / name).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        assert d["masks"]["gt"] == {"_type": "mask", "sha256": sha, "size": len(data),
                                    "path": f"media/images/mask/k/v_0_{sha[:20]}{ext}"}
        assert (out / d["masks"]["gt"]["path"]).read_bytes() == data
    index = json.load(open(index_path(out, "k/v")))
    assert index["mask_report"][1]["gt"] == {"0": 2, "3": 2, "6": 2}
    assert index["mask_class_labels"] == {"gt": {"0": "class_0", "1": "class_1", "2": "class_2", "3": "class_3",
                                                 "6": "class_6"}}
    with pytest.raises(gm.MaskError, match=r"^image 0, mask key 'gt': cannot read mask file"):
        gm.write_dump(tmp_path / "bad", np.zeros((1, 2, 3, 3), np.uint8), key="k", device=device,
                      masks={"gt": {"path": src / "missing.png"}})
    assert not (tmp_path / "bad").exists()


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
    real_replace, real_link, calls = os.replace, os.link, []

    def crash_on_fifth(real):  # the fifth file put in place (renamed, or linked: fileio.write_atomic) fails
        def put(src, dst, *args, **kwargs):
            calls.append(dst)
            if len(calls) == 5:
                raise OSError("disk full (simulated)")
            return real(src, dst, *args, **kwargs)
        return put

    monkeypatch.setattr(os, "replace", crash_on_fifth(real_replace))
    monkeypatch.setattr(os, "link", crash_on_fifth(real_link))
    with pytest.raises(OSError, match="simulated"):
        gm.write_dump(tmp_path / "dump", x, **kw)
    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(os, "link", real_link)
    partial = files_under(tmp_path / "dump")
    assert not os.path.exists(index_path(tmp_path / "dump", "run"))  # no index: not complete
    assert not [f for f in partial if f.endswith(".tmp")]  # no half-written file left
    clean = files_under(tmp_path / "clean")
    assert 0 < len(partial) < len(clean) and all(clean[f] == b for f, b in partial.items())
    # a kill -9 leaves a hidden temporary file; it is never mistaken for a real one, and the next
    # dump removes it once its writer process is gone (docs/SPEC.md 6.4; tests/test_dump_io.py)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "dump" / "media" / "images" / f".run_0_x.png.{dead.pid}.deadbeef.tmp"
    stale.write_bytes(b"partial")
    claim = {"pid": dead.pid, "host": socket.gethostname(), "prefixes": ["media/images/run_0_"]}
    (tmp_path / "dump" / ".gpu-media-claims" / f"{dead.pid}.0123abcd.json").write_text(json.dumps(claim))  # its claim
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


def _strict_json(path):
    """The JSON of ``path`` as a browser's JSON.parse reads it: NaN and Infinity refused."""
    def refuse(name):
        raise ValueError(f"{path}: {name} is not JSON")
    return json.loads(open(path, "rb").read().decode("utf-8"), parse_constant=refuse)


def test_boxes2D_files_are_strict_json_and_carry_batched_captions(device, tmp_path):
    x = np.zeros((2, 6, 6, 3), np.uint8)
    nan_box = {"position": {"minX": 0, "maxX": 2, "minY": 0, "maxY": 2}, "class_id": 1, "scores": {"p": float("nan")}}
    with pytest.raises(gm.BoxError, match=r"image 1, box key 'b', box 0: score 'p' must be finite, got nan"):
        gm.write_dump(tmp_path, x, key="k", boxes=[None, {"b": {"box_data": [nan_box]}}], device=device)
    assert not os.listdir(tmp_path)  # refused before any file is written
    with pytest.raises(gm.BoxError, match=r"box key 'b': unknown field 'score' of the batched form"):
        gm.write_dump(tmp_path, x, key="k", device=device, boxes={"b": {
            "xyxy": [[0, 0, 2, 2]], "image_index": [1], "class_id": [1], "score": [0.5]}})
    assert not os.listdir(tmp_path)
    boxes = {"b": {"xyxy": [[0, 0, 2, 2], [1, 1, 4, 4]], "image_index": [1, 1], "class_id": [1, 2],
                   "scores": {"p": [0.5, 0.25]}, "captions": ["person, 50%", None], "class_labels": {1: "person"}}}
    dicts = gm.write_dump(tmp_path, x, key="k", boxes=boxes, device=device)
    doc = _strict_json(tmp_path / dicts[1]["boxes"]["b"]["path"])
    assert [b["box_caption"] for b in doc["box_data"]] == ["person, 50%", "class_2 0.25"]
    assert [b["scores"] for b in doc["box_data"]] == [{"p": 0.5}, {"p": 0.25}]
    for d in dicts:
        for entry in d.get("boxes", {}).values():
            _strict_json(tmp_path / entry["path"])
    _strict_json(index_path(tmp_path, "k"))
