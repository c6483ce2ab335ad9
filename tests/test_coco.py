"""COCO in (gpu_media.formats.coco, ``gpu-media dump IMAGES_DIR OUT --coco ...``).

Expected masks come from pycocotools' own COCO API (``annToMask``) painted with
the documented overlap rule; expected boxes from the JSON files. The bundled
COCO demo (``gpu_media/demo/coco``) is real photographs with real annotations.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
from PIL import Image

import gpu_media as gm
from gpu_media import cli
from gpu_media.formats.coco import CocoWarning, load_coco, write_coco_dump
from media_helpers import decode_image, read_rel

pycocotools = pytest.importorskip("pycocotools", reason="the coco extra (pycocotools) is not installed")
from pycocotools.coco import COCO  # noqa: E402

DEMO = str(resources.files("gpu_media.demo").joinpath("coco"))
CATS = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog <b>"}, {"id": 7, "name": "car"}]


# --------------------------------------------------------------------------- helpers


def make_dataset(tmp_path, annotations, *, sizes=((40, 30), (24, 32)), predictions=None, categories=CATS):
    """A small COCO folder: images of (H, W) ``sizes`` and the JSON files; returns paths."""
    img_dir = tmp_path / "images"
    img_dir.mkdir(exist_ok=True)
    images = []
    rng = np.random.default_rng(0)
    for k, (h, w) in enumerate(sizes):
        name = f"img{k}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(img_dir / name)
        images.append({"id": k + 1, "file_name": name, "height": h, "width": w})
    inst = tmp_path / "instances.json"
    inst.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    pred = None
    if predictions is not None:
        pred = tmp_path / "results.json"
        pred.write_text(json.dumps(predictions))
    return str(img_dir), str(inst), (str(pred) if pred else None)


def ann(aid, image_id, cat, bbox, seg=None, **extra):
    a = {"id": aid, "image_id": image_id, "category_id": cat, "bbox": bbox, "iscrowd": 0, **extra}
    if seg is not None:
        a["segmentation"] = seg
    return a


def square(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def load_index(out):
    with open(os.path.join(str(out), "coco_0.index.json"), "rb") as f:
        return json.load(f)


def mask_of(out, entry, key):
    return decode_image(read_rel(out, entry["masks"][key]["path"]))


def boxes_of(out, entry, key):
    return json.loads(read_rel(out, entry["boxes"][key]["path"]))


def expected_mask(coco_api, anns, h, w, order):
    """The annToMask of pycocotools per instance, painted in the documented order."""
    items = []
    for k, a in enumerate(anns):
        m = coco_api.annToMask(a).astype(bool)
        key = -float(m.sum()) if order == "area" else float(a["score"])
        items.append((key, k, m, a["category_id"]))
    out = np.zeros((h, w), np.uint8)
    for _, _, m, c in sorted(items, key=lambda t: (t[0], t[1])):
        out[m] = c
    return out


# --------------------------------------------------------------------------- the bundled demo


def test_demo_dataset_dumps_like_pycocotools(tmp_path, device):
    inst, res = os.path.join(DEMO, "instances.json"), os.path.join(DEMO, "results.json")
    out = tmp_path / "out"
    ds, dicts = write_coco_dump(out, os.path.join(DEMO, "images"), inst, res, device=device, batch_size=3)
    gt_api = COCO(inst)
    pred_api = gt_api.loadRes(res)
    assert len(dicts) == len(gt_api.getImgIds()) == 8
    index = load_index(out)
    assert index["count"] == 8
    for entry, img in zip(dicts, gt_api.loadImgs([im["id"] for im in json.load(open(inst))["images"]])):
        h, w = img["height"], img["width"]
        assert entry["caption"] == img["file_name"]
        gt = gt_api.loadAnns(gt_api.getAnnIds(imgIds=img["id"]))
        pr = pred_api.loadAnns(pred_api.getAnnIds(imgIds=img["id"]))
        np.testing.assert_array_equal(mask_of(out, entry, "ground_truth"), expected_mask(gt_api, gt, h, w, "area"))
        np.testing.assert_array_equal(mask_of(out, entry, "predictions"), expected_mask(pred_api, pr, h, w, "score"))
        gtb = boxes_of(out, entry, "ground_truth")["box_data"]
        assert [(b["class_id"], b["position"]) for b in gtb] == [
            (a["category_id"], {"minX": a["bbox"][0], "maxX": a["bbox"][0] + a["bbox"][2],
                                "minY": a["bbox"][1], "maxY": a["bbox"][1] + a["bbox"][3]}) for a in gt]
        prb = boxes_of(out, entry, "predictions")["box_data"]
        assert [b["scores"]["score"] for b in prb] == pytest.approx([a["score"] for a in pr])
        assert all(b["domain"] == "pixel" for b in gtb + prb)
        with Image.open(os.path.join(DEMO, "images", img["file_name"])) as im:
            np.testing.assert_array_equal(decode_image(read_rel(out, entry["path"])), np.asarray(im.convert("RGB")))
    labels = {c["id"]: c["name"] for c in gt_api.loadCats(gt_api.getCatIds())}
    assert index["box_class_labels"]["ground_truth"] == {str(k): v for k, v in labels.items()}
    assert index["mask_class_labels"]["ground_truth"] == {"0": "background", **{str(k): v for k, v in labels.items()}}
    assert os.path.isfile(out / "index.html")


def test_demo_dataset_is_real_and_consistent():
    inst = json.load(open(os.path.join(DEMO, "instances.json")))
    res = json.load(open(os.path.join(DEMO, "results.json")))
    assert len(inst["images"]) == 8 and len(inst["annotations"]) > 20 and len(res) > 20
    assert all(isinstance(a["segmentation"], list) for a in inst["annotations"])  # polygons
    assert all(isinstance(r["segmentation"]["counts"], str) for r in res)  # compressed RLE
    for im in inst["images"]:
        with Image.open(os.path.join(DEMO, "images", im["file_name"])) as f:
            assert f.size == (im["width"], im["height"]) and f.format == "JPEG"


# --------------------------------------------------------------------------- overlap rules and formats


def test_overlap_rules(tmp_path, device):
    # ground truth: a large "cat" listed after a small "dog" inside it -> the small one stays visible
    gt = [ann(1, 1, 2, [10, 10, 5, 5], square(10, 10, 15, 15)), ann(2, 1, 1, [2, 2, 20, 30], square(2, 2, 22, 32))]
    # predictions: the higher score wins where they overlap, whatever the order
    pred = [
        {"image_id": 1, "category_id": 7, "bbox": [0, 0, 20, 20], "score": 0.9, "segmentation": square(0, 0, 20, 20)},
        {"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.4, "segmentation": square(5, 5, 25, 25)},
    ]
    img_dir, inst, res = make_dataset(tmp_path, gt, predictions=pred)
    out = tmp_path / "out"
    _, dicts = write_coco_dump(out, img_dir, inst, res, device=device)
    g = mask_of(out, dicts[0], "ground_truth")
    p = mask_of(out, dicts[0], "predictions")
    assert g[12, 12] == 2 and g[5, 5] == 1 and g[0, 0] == 0
    assert p[10, 10] == 7 and p[22, 22] == 1
    # the second image has no annotations: empty masks, no boxes
    assert not mask_of(out, dicts[1], "ground_truth").any()
    assert "boxes" not in dicts[1]


def test_polygon_and_rle_forms_agree(tmp_path, device):
    from pycocotools import mask as mask_api

    h, w = 40, 30
    m = np.zeros((h, w), np.uint8)
    m[5:20, 3:17] = 1
    rle = mask_api.encode(np.asfortranarray(m))
    compressed = {"size": [h, w], "counts": rle["counts"].decode()}
    flat = np.asfortranarray(m).ravel(order="F")
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    uncompressed = {"size": [h, w], "counts": runs}
    anns = [ann(1, 1, 1, [3, 5, 14, 15], compressed), ann(2, 2, 7, [3, 5, 14, 15], None)]
    img_dir, inst, _ = make_dataset(tmp_path, anns, sizes=((h, w), (h, w)))
    out = tmp_path / "a"
    _, d1 = write_coco_dump(out, img_dir, inst, device=device)
    np.testing.assert_array_equal(mask_of(out, d1[0], "ground_truth"), m)
    anns[0]["segmentation"] = uncompressed
    json.dump({"images": json.load(open(inst))["images"], "annotations": anns, "categories": CATS}, open(inst, "w"))
    out2 = tmp_path / "b"
    _, d2 = write_coco_dump(out2, img_dir, inst, device=device)
    np.testing.assert_array_equal(mask_of(out2, d2[0], "ground_truth"), m)


def test_score_threshold_and_boxes_only(tmp_path, device):
    pred = [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": s} for s in (0.1, 0.5, 0.9)]
    img_dir, inst, res = make_dataset(tmp_path, [ann(1, 1, 7, [0, 0, 5, 5])], predictions=pred)
    out = tmp_path / "out"
    ds, dicts = write_coco_dump(out, img_dir, inst, res, score_threshold=0.5, device=device)
    got = boxes_of(out, dicts[0], "predictions")["box_data"]
    assert [b["scores"]["score"] for b in got] == [0.5, 0.9]
    assert got[0]["box_caption"] == "cat 0.50"
    assert "masks" not in dicts[0]  # no segmentation anywhere: boxes only
    assert not ds.has_gt_masks


# --------------------------------------------------------------------------- errors, before anything is written


BAD = [
    ("missing file", lambda a, i: i.append({"id": 9, "file_name": "nope.png", "height": 4, "width": 4}),
     "image id 9 ('nope.png'): image file"),
    ("unknown image", lambda a, i: a.append(ann(5, 42, 1, [0, 0, 1, 1])), "unknown image_id 42"),
    ("unknown category", lambda a, i: a.append(ann(5, 1, 3, [0, 0, 1, 1])), "unknown category_id 3"),
    ("short polygon", lambda a, i: a.append(ann(5, 1, 1, [0, 0, 1, 1], [[0, 0, 1, 1]])), "polygon 0 is malformed"),
    ("odd polygon", lambda a, i: a.append(ann(5, 1, 1, [0, 0, 1, 1], [[0, 0, 1, 1, 2, 2, 3]])),
     "polygon 0 is malformed"),
    ("nan polygon", lambda a, i: a.append(ann(5, 1, 1, [0, 0, 1, 1], [[0, 0, 1, 1, 2, float("nan")]])),
     "polygon 0 is malformed"),
    ("rle size", lambda a, i: a.append(ann(5, 1, 1, [0, 0, 1, 1], {"size": [3, 3], "counts": [9]})),
     "does not match the image"),
    ("rle runs", lambda a, i: a.append(ann(5, 1, 1, [0, 0, 1, 1], {"size": [40, 30], "counts": [5, 5]})),
     "RLE runs cover 10 pixels"),
    ("rle string", lambda a, i: a.append(ann(5, 1, 1, [0, 0, 1, 1], {"size": [40, 30], "counts": "ab~~"})),
     "compressed RLE 'counts' is malformed"),
    ("bbox", lambda a, i: a.append(ann(5, 1, 1, [0, 0, -1, 1])), "bbox width and height must be >= 0"),
    ("size mismatch", lambda a, i: i[0].update(width=99), "but the file is 30 x 40"),
]


@pytest.mark.parametrize("what,mutate,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_named_before_any_file(tmp_path, what, mutate, message):
    img_dir, inst, _ = make_dataset(tmp_path, [ann(1, 1, 1, [0, 0, 5, 5], square(0, 0, 5, 5))])
    data = json.load(open(inst))
    mutate(data["annotations"], data["images"])
    json.dump(data, open(inst, "w"))
    out = tmp_path / "out"
    with pytest.raises(gm.MediaError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        write_coco_dump(out, img_dir, inst)
    assert not out.exists()


@pytest.mark.parametrize("what,mutate,message", BAD, ids=[b[0] for b in BAD])
def test_skip_bad_warns_counts_and_finishes(tmp_path, what, mutate, message, device):
    img_dir, inst, _ = make_dataset(tmp_path, [ann(1, 1, 1, [0, 0, 5, 5], square(0, 0, 5, 5))])
    data = json.load(open(inst))
    mutate(data["annotations"], data["images"])
    json.dump(data, open(inst, "w"))
    out = tmp_path / "out"
    with pytest.warns(CocoWarning, match="skipped"):
        ds, dicts = write_coco_dump(out, img_dir, inst, skip_bad=True, device=device)
    assert sum(ds.skipped.values()) == 1 and len(ds.problems) == 1
    kind = "images" if what in ("missing file", "size mismatch") else "annotations"
    assert ds.skipped[kind] == 1
    assert load_index(out)["count"] == len(dicts) == (1 if what == "size mismatch" else 2)


def test_annotations_of_a_skipped_image_are_dropped_quietly(tmp_path):
    img_dir, inst, _ = make_dataset(tmp_path, [ann(1, 1, 1, [0, 0, 5, 5])])
    os.remove(os.path.join(img_dir, "img0.png"))
    with pytest.warns(CocoWarning) as rec:
        ds = load_coco(img_dir, inst, skip_bad=True)
    assert len(rec) == 1 and ds.skipped == {"images": 1, "annotations": 0, "predictions": 0}
    assert [im.id for im in ds.images] == [2]


def test_predictions_file_errors(tmp_path):
    img_dir, inst, res = make_dataset(tmp_path, [],
                                      predictions=[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])
    with pytest.raises(gm.MediaError, match=r"predictions file: detections\[0\]: score must be a finite number"):
        load_coco(img_dir, inst, res)
    with open(res, "w") as f:
        f.write("{not json")
    with pytest.raises(gm.MediaError, match="not valid JSON"):
        load_coco(img_dir, inst, res)


def test_category_id_too_large_for_a_mask(tmp_path):
    cats = CATS + [{"id": 300, "name": "big"}]
    img_dir, inst, _ = make_dataset(tmp_path, [ann(1, 1, 300, [0, 0, 5, 5], square(0, 0, 5, 5))], categories=cats)
    with pytest.raises(gm.MediaError, match="category_id 300 cannot be a mask class id"):
        load_coco(img_dir, inst)
    # boxes alone can carry it
    img_dir, inst, _ = make_dataset(tmp_path, [ann(1, 1, 300, [0, 0, 5, 5])], categories=cats)
    assert load_coco(img_dir, inst).images[0].gt[0]["category_id"] == 300


def test_missing_pycocotools_is_a_clear_error(tmp_path, monkeypatch):
    img_dir, inst, _ = make_dataset(tmp_path, [ann(1, 1, 1, [0, 0, 5, 5], square(0, 0, 5, 5))])
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    out = tmp_path / "out"
    with pytest.raises(gm.MediaError, match=r'pip install "\.\[coco\]"'):
        write_coco_dump(out, img_dir, inst)
    assert not out.exists()


def test_undecodable_image_leaves_no_index(tmp_path):
    img_dir, inst, _ = make_dataset(tmp_path, [])
    path = os.path.join(img_dir, "img1.png")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])  # the header (and size) still reads; the pixels do not
    out = tmp_path / "out"
    with pytest.raises(gm.MediaError, match="image id 2 .*cannot decode"):
        write_coco_dump(out, img_dir, inst, batch_size=1)
    assert not os.path.exists(out / "coco_0.index.json")


# --------------------------------------------------------------------------- the command


def test_cli_coco_dump(tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(["dump", os.path.join(DEMO, "images"), str(out), "--coco", os.path.join(DEMO, "instances.json"),
                   "--predictions", os.path.join(DEMO, "results.json"), "--score-threshold", "0.5",
                   "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    index = load_index(out)
    res = json.load(open(os.path.join(DEMO, "results.json")))
    kept = sum(1 for r in res if r["score"] >= 0.5)
    n = 0
    for entry in index["images"]:
        n += len(boxes_of(out, entry, "predictions")["box_data"])
    assert n == kept < len(res)


def test_cli_coco_errors(tmp_path, capsys):
    img_dir, inst, _ = make_dataset(tmp_path, [ann(1, 42, 1, [0, 0, 1, 1])])
    rc = cli.main(["dump", img_dir, str(tmp_path / "o"), "--coco", inst])
    assert rc == 2
    assert "unknown image_id 42" in capsys.readouterr().err
    rc = cli.main(["dump", img_dir, str(tmp_path / "o"), "--coco", inst, "--skip-bad"])
    captured = capsys.readouterr()
    assert rc == 0 and "skipped" in captured.err and "unknown image_id 42" in captured.err
    with pytest.raises(SystemExit):
        cli.main(["dump", "x.npz", str(tmp_path / "o"), "--predictions", "r.json"])
    assert "--predictions needs --coco" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("gpu-media") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "gpu-media")), reason="the gpu-media script is not installed")
def test_cli_coco_subprocess_summary(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "gpu-media")
    exe = exe if os.path.exists(exe) else shutil.which("gpu-media")
    out = tmp_path / "out"
    r = subprocess.run([exe, "dump", os.path.join(DEMO, "images"), str(out), "--coco",
                        os.path.join(DEMO, "instances.json"), "--predictions", os.path.join(DEMO, "results.json")],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "wrote 8 images" in r.stdout and "index.html" in r.stdout


def test_cli_coco_gpu_without_a_gpu_is_a_device_error(tmp_path, capsys):
    if gm.gpu_available():
        pytest.skip("this machine has a GPU")
    rc = cli.main(["dump", os.path.join(DEMO, "images"), str(tmp_path / "o"), "--coco",
                   os.path.join(DEMO, "instances.json"), "--device", "gpu"])
    assert rc == 2 and "device='gpu'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- every results form of COCO.loadRes


def _demo_as_segm_results():
    """The demo's predictions in pycocotools' own segm demo form: compressed RLE + score, no bbox."""
    from pycocotools import mask as mask_api

    coco = COCO(os.path.join(DEMO, "instances.json"))
    res = json.load(open(os.path.join(DEMO, "results.json")))
    out = []
    for d in res:
        im = coco.imgs[d["image_id"]]
        seg = d["segmentation"]
        if isinstance(seg, list):
            rle = mask_api.merge(mask_api.frPyObjects(seg, im["height"], im["width"]))
            seg = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        out.append({"image_id": d["image_id"], "category_id": d["category_id"], "score": d["score"],
                    "segmentation": seg})
    return coco, out


def test_segm_results_without_bbox_get_loadres_boxes(tmp_path):
    """The segm demo form of pycocotools (RLE + score, no bbox): the boxes are the ones loadRes derives."""
    coco, segm = _demo_as_segm_results()
    path = tmp_path / "segm_results.json"
    path.write_text(json.dumps(segm))
    with contextlib.redirect_stdout(io.StringIO()):
        res = coco.loadRes(json.loads(path.read_text()))
    expected = {}
    for ann_id in sorted(res.anns):
        a = res.anns[ann_id]
        expected.setdefault(a["image_id"], []).append([float(v) for v in a["bbox"]])
    ds = load_coco(os.path.join(DEMO, "images"), os.path.join(DEMO, "instances.json"), str(path))
    got = {im.id: [a["bbox"] for a in im.pred] for im in ds.images if im.pred}
    assert got == expected and sum(map(len, got.values())) == len(segm)
    assert ds.has_pred_masks
    # the dump draws those boxes and paints those masks
    out = tmp_path / "out"
    write_coco_dump(out, os.path.join(DEMO, "images"), os.path.join(DEMO, "instances.json"), str(path))
    assert load_index(out)["count"] == 8


def test_polygon_and_uncompressed_results_without_bbox(tmp_path):
    from pycocotools import mask as mask_api

    poly = square(2, 3, 12, 9)
    rle = mask_api.frPyObjects(poly, 40, 30)[0]
    raw = np.asfortranarray(mask_api.decode(rle))
    counts, prev, run = [], 0, 0  # uncompressed RLE of the same square (column-major runs from 0)
    for v in raw.ravel(order="F"):
        if v != prev:
            counts.append(run)
            prev, run = v, 0
        run += 1
    counts.append(run)
    preds = [{"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": poly},
             {"image_id": 1, "category_id": 1, "score": 0.8, "bbox": [], "segmentation": {"size": [40, 30],
                                                                                          "counts": counts}},
             {"image_id": 2, "category_id": 7, "score": 0.7, "keypoints": [4, 5, 2, 10, 1, 2, 6, 8, 1]}]
    img_dir, inst, res = make_dataset(tmp_path, [], predictions=preds)
    ds = load_coco(img_dir, inst, res)
    want = [float(v) for v in mask_api.toBbox(rle)]
    assert [a["bbox"] for a in ds.images[0].pred] == [want, want]
    assert ds.images[1].pred[0]["bbox"] == [4.0, 1.0, 6.0, 7.0]  # loadRes: [x0, y0, x1 - x0, y1 - y0]


@pytest.mark.parametrize("det,message", [
    ({"image_id": 1, "category_id": 1, "score": 0.5, "caption": "a cat"}, "a caption result has no box"),
    ({"image_id": 1, "category_id": 1, "score": 0.5}, "needs a bbox"),
    ({"image_id": 1, "category_id": 1, "score": 0.5, "keypoints": [1, 2]}, "keypoints must be"),
    ({"image_id": 99, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1]},
     "Results do not correspond to current coco set"),
])
def test_results_loadres_refuses_are_refused(tmp_path, det, message):
    img_dir, inst, res = make_dataset(tmp_path, [], predictions=[det])
    with pytest.raises(gm.MediaError, match=message):
        load_coco(img_dir, inst, res)


def test_results_not_a_list_says_so(tmp_path):
    img_dir, inst, res = make_dataset(tmp_path, [], predictions={"image_id": 1})
    with pytest.raises(gm.MediaError, match="results in not an array of objects"):
        load_coco(img_dir, inst, res)


def test_score_threshold_keeps_every_detection_for_evaluation(tmp_path):
    preds = [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": s} for s in (0.1, 0.5, 0.9)]
    img_dir, inst, res = make_dataset(tmp_path, [], predictions=preds)
    ds = load_coco(img_dir, inst, res, score_threshold=0.5)
    assert [a["score"] for a in ds.images[0].pred] == [0.5, 0.9]
    assert [a["score"] for a in ds.images[0].pred_all] == [0.1, 0.5, 0.9]
