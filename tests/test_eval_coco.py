"""gpu_media.eval.evaluate_coco against pycocotools itself.

The stats must be pycocotools' floats exactly; every TP / FP / FN mark is re-derived
here, independently of gpu_media, from pycocotools' ``COCOeval.evalImgs``
(``dtMatches``, ``dtIgnore``, ``gtMatches``, ``gtIgnore``) and its ``ious``, on the
bundled demo and on hypothesis-generated COCO data (crowds, empty images, images
without ground truth of a class, duplicate detections, equal scores).
"""

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import gpu_media as gm
from gpu_media.eval import evaluate_coco
from gpu_media.formats.coco import demo_coco

pytest.importorskip("pycocotools", reason="the coco extra (pycocotools) is not installed")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

try:
    import faster_coco_eval  # noqa: F401

    HAVE_FASTER = True
except ImportError:
    HAVE_FASTER = False

DEMO = demo_coco()


# --------------------------------------------------------------------------- the reference


def reference(inst: dict, results: list, iou_type: str):
    """Run pycocotools directly: (COCOeval after summarize, its printed summary, {dt id: mark}, {gt id: mark}).

    Marks are read from evalImgs of area "all" at IoU 0.50 and 0.75: a detection
    with dtIgnore is "ignored", with a match "tp", else "fp"; a detection absent
    from evalImgs (beyond maxDets) "ignored"; ground truth with gtIgnore
    "ignored", matched "matched", else "fn". The IoU of a match: ``ious`` row = the
    detection's place in evalImgs' dtIds, column = the ground truth's place in
    ``_gts``.
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        gt = COCO()
        gt.dataset = copy.deepcopy(inst)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        E = COCOeval(gt, dt, iou_type)
        E.evaluate()
        E.accumulate()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        E.summarize()
    p = E.params
    t_idx = [int(np.where(p.iouThrs == t)[0][0]) for t in (0.5, 0.75)]
    n_img = len(p.imgIds)
    dt_marks = {i: ["ignored", None, "ignored", None] for i in dt.anns}
    gt_marks = {}
    for k, cat in enumerate(p.catIds):
        for i, img in enumerate(p.imgIds):
            e = E.evalImgs[k * len(p.areaRng) * n_img + i]  # area index 0: "all"
            if e is None:
                continue
            assert e["aRng"] == p.areaRng[0] and e["image_id"] == img and e["category_id"] == cat
            ious = np.asarray(E.ious[img, cat])
            gt_order = [g["id"] for g in E._gts[img, cat]]
            for j, t in enumerate(t_idx):
                for d, dt_id in enumerate(e["dtIds"]):
                    match = int(e["dtMatches"][t, d])
                    if e["dtIgnore"][t, d]:
                        o = "ignored"
                    else:
                        o = "tp" if match else "fp"
                    dt_marks[dt_id][2 * j: 2 * j + 2] = [o, float(ious[d, gt_order.index(match)]) if match else None]
                for g, gt_id in enumerate(e["gtIds"]):
                    match = int(e["gtMatches"][t, g])
                    row = gt_marks.setdefault(gt_id, [None] * 4)
                    if e["gtIgnore"][g]:
                        o = "ignored"
                    else:
                        o = "matched" if match else "fn"
                    iou = float(ious[e["dtIds"].index(match), gt_order.index(gt_id)]) if match else None
                    row[2 * j: 2 * j + 2] = [o, iou]
    return E, printed.getvalue(), dt_marks, gt_marks


def assert_same_as_pycocotools(inst, results, iou_type, engine="pycocotools"):
    ev = evaluate_coco(copy.deepcopy(inst), copy.deepcopy(results), iou_type, engine=engine)
    E, printed, dt_marks, gt_marks = reference(inst, results, iou_type)
    if engine == "pycocotools":
        assert ev.stats == tuple(float(v) for v in E.stats)  # the same floats
        assert ev.summary() == printed.rstrip("\n")
    else:  # faster-coco-eval: equal to the last bits or so (see test_faster_coco_eval_is_not_bit_identical)
        np.testing.assert_allclose(ev.stats, E.stats, rtol=1e-12, atol=1e-15)
    # marks: the detections of each image in results order (loadRes ids 1..n in that order)
    by_image: dict = {}
    for k, d in enumerate(results):
        by_image.setdefault(d["image_id"], []).append(k + 1)
    gt_by_image: dict = {}
    for a in E.cocoGt.dataset["annotations"]:
        gt_by_image.setdefault(a["image_id"], []).append(a["id"])
    counts = {c: [0, 0, 0] for c in E.params.catIds}
    for im in ev.images:
        want_dt = [dt_marks[i] for i in by_image.get(im.image_id, [])]
        got_dt = [[m.o50, m.iou50, m.o75, m.iou75] for m in im.pred]
        assert got_dt == want_dt, im.image_id
        want_gt = [gt_marks.get(i, ["ignored", None, "ignored", None]) for i in gt_by_image.get(im.image_id, [])]
        got_gt = [[m.o50, m.iou50, m.o75, m.iou75] for m in im.gt]
        assert got_gt == want_gt, im.image_id
        tp = sum(m[0] == "tp" for m in want_dt)
        fp = sum(m[0] == "fp" for m in want_dt)
        fn = sum(m[0] == "fn" for m in want_gt)
        assert (im.tp, im.fp, im.fn) == (tp, fp, fn)
        assert (im.tp75, im.fp75, im.fn75) == (sum(m[2] == "tp" for m in want_dt), sum(m[2] == "fp" for m in want_dt),
                                               sum(m[2] == "fn" for m in want_gt))
        assert im.f1 == (2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None)
        for k, m in zip(by_image.get(im.image_id, []), want_dt):
            c = E.cocoDt.anns[k]["category_id"]
            counts[c][0] += m[0] == "tp"
            counts[c][1] += m[0] == "fp"
        for i, m in zip(gt_by_image.get(im.image_id, []), want_gt):
            counts[E.cocoGt.anns[i]["category_id"]][2] += m[0] == "fn"
    # per class: counts at 0.50; AP etc. as summarize computes them for that class alone
    p = E.params

    def same(a, b):
        if engine == "pycocotools" or a is None or b is None:
            return a == b
        return bool(np.allclose(a, b, rtol=1e-12, atol=1e-15))

    for k, c in enumerate(ev.classes):
        assert c.id == p.catIds[k] and [c.tp, c.fp, c.fn] == counts[c.id]
        s = E.eval["precision"][:, :, k, 0, 2]
        valid = s[s > -1]
        assert same(c.ap, float(np.mean(valid)) if valid.size else None)
        assert same(c.ap50, float(np.mean(s[0][s[0] > -1])) if (s[0] > -1).any() else None)
        assert same(c.ap75, float(np.mean(s[5][s[5] > -1])) if (s[5] > -1).any() else None)
        r = E.eval["recall"][:, k, 0, 2]
        assert same(c.ar100, float(np.mean(r[r > -1])) if (r > -1).any() else None)
        assert same(list(ev.precision50[c.id]), [float(v) for v in E.eval["precision"][0, :, k, 0, 2]])
    return ev


def demo_data():
    with open(DEMO.instances) as f:
        inst = json.load(f)
    with open(DEMO.predictions) as f:
        res = json.load(f)
    return inst, res


# --------------------------------------------------------------------------- the demo


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_demo_equals_pycocotools(iou_type):
    inst, res = demo_data()
    ev = assert_same_as_pycocotools(inst, res, iou_type)
    assert ev.engine == "pycocotools" and len(ev.images) == 8
    assert sum(im.tp for im in ev.images) > 0 and sum(im.fp for im in ev.images) > 0


def test_demo_from_paths_equals_from_dicts():
    inst, res = demo_data()
    a = evaluate_coco(DEMO.instances, DEMO.predictions, engine="pycocotools")
    b = evaluate_coco(inst, res, engine="pycocotools")
    assert a == b and a.to_json() == b.to_json()
    json.dumps(a.to_json(), allow_nan=False)  # valid JSON: no NaN / inf


def test_one_class_rows_are_the_stats():
    """With one category the class row's AP, AP50, AP75, AR100 are stats 0, 1, 2, 8."""
    inst, res = demo_data()
    inst["annotations"] = [a for a in inst["annotations"] if a["category_id"] == 1]
    res = [d for d in res if d["category_id"] == 1]
    inst["categories"] = [c for c in inst["categories"] if c["id"] == 1]
    ev = evaluate_coco(inst, res, engine="pycocotools")
    (row,) = ev.classes
    assert (row.ap, row.ap50, row.ap75, row.ar100) == tuple(ev.stats[k] for k in (0, 1, 2, 8))


@pytest.mark.skipif(not HAVE_FASTER, reason="faster-coco-eval is not installed (the eval extra)")
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_faster_coco_eval_gives_the_same_marks_and_stats_to_1e12(iou_type):
    inst, res = demo_data()
    ev = assert_same_as_pycocotools(inst, res, iou_type, engine="faster-coco-eval")
    assert ev.engine == "faster-coco-eval"


def test_the_default_engine_is_pycocotools_exact():
    """The engine "auto" prefers pycocotools (exact stats); faster-coco-eval is chosen explicitly or without it."""
    inst, res = demo_data()
    assert evaluate_coco(inst, res).engine == "pycocotools"


def test_more_than_100_detections_of_one_class_in_one_image():
    """COCOeval looks at the 100 best per image and category; the rest are 'ignored'."""
    inst = {"images": [{"id": 1, "height": 100, "width": 100}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400,
                             "iscrowd": 0}],
            "categories": [{"id": 1, "name": "a"}]}
    res = [{"image_id": 1, "category_id": 1, "bbox": [float(k % 50), 10, 20, 20], "score": 0.5 + (k % 7) / 100}
           for k in range(130)]
    ev = assert_same_as_pycocotools(inst, res, "bbox")
    assert sum(m.o50 == "ignored" for m in ev.images[0].pred) == 30


@pytest.mark.parametrize("engine", ["pycocotools", "faster-coco-eval"])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_the_callers_data_is_left_as_it_was(iou_type, engine):
    """COCO.loadRes and COCOeval write into the dicts they get: evaluate_coco hands them copies."""
    if engine == "faster-coco-eval" and not HAVE_FASTER:
        pytest.skip("faster-coco-eval is not installed (the eval extra)")
    inst, res = demo_data()
    res[0] = {k: v for k, v in res[0].items() if k != "bbox"}  # (a segm result without bbox: loadRes adds one)
    before = copy.deepcopy((inst, res))
    ev = evaluate_coco(inst, res, iou_type, engine=engine)
    assert (inst, res) == before
    assert evaluate_coco(inst, res, iou_type, engine=engine).images == ev.images


@pytest.mark.parametrize("engine", ["pycocotools", "faster-coco-eval"])
def test_crowded_images_equal_pycocotools(engine):
    """Crowded images, with ties, crowds and every ground-truth count of the matching's buckets.

    Many ground-truth boxes of one class in an image, over 100 detections of it,
    equal IoUs and scores (copies of one box, of a detection or of a ground truth),
    crowds, an area outside area "all".
    """
    if engine == "faster-coco-eval" and not HAVE_FASTER:
        pytest.skip("faster-coco-eval is not installed (the eval extra)")
    rng = np.random.default_rng(7)
    images = [{"id": i + 1, "file_name": f"{i}.png", "height": 200, "width": 200} for i in range(6)]
    anns, res = [], []
    for im, n_gt in zip(images, (1, 2, 3, 7, 20, 45)):
        boxes = []
        for g in range(n_gt):
            x, y = [float(v) for v in rng.integers(0, 150, 2)]
            w, h = [float(v) for v in rng.integers(5, 60, 2)]
            if g % 6 == 5:  # the box of ground truth g - 2 (same class) again: ties of IoU among ground truth
                x, y, w, h = boxes[g - 2]
            boxes.append((x, y, w, h))
            area = 2e10 if g == 3 else w * h  # outside area "all" (0 to 1e10): ignored
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": 1 + g % 2, "bbox": [x, y, w, h],
                         "area": area, "iscrowd": int(g % 5 == 4)})
            for _ in range(int(rng.integers(1, 4))):  # copies: equal IoUs, often equal scores
                res.append({"image_id": im["id"], "category_id": 1 + g % 2, "score": float(rng.choice([0.5, 0.9])),
                            "bbox": [x + float(rng.integers(-3, 4)), y, w, h]})
        for _ in range(130):  # over 100 of class 1 in the crowded images
            xy, wh = rng.integers(0, 150, 2), rng.integers(5, 60, 2)
            res.append({"image_id": im["id"], "category_id": 1, "score": round(float(rng.random()), 2),
                        "bbox": [float(v) for v in (*xy, *wh)]})
    inst = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    assert_same_as_pycocotools(inst, res, "bbox", engine=engine)


def test_the_garbage_collector_is_as_it_was(monkeypatch):
    """evaluate_coco pauses the cyclic collector while it runs (eval.coco._gc_paused) and leaves it as it was."""
    import gc

    import gpu_media.eval.coco as coco

    inst, res = demo_data()
    seen = []
    inner = coco._evaluate_coco
    monkeypatch.setattr(coco, "_evaluate_coco", lambda *a: seen.append(gc.isenabled()) or inner(*a))
    assert gc.isenabled()
    evaluate_coco(inst, res)
    assert gc.isenabled() and seen == [False]
    with pytest.raises(gm.MediaError):
        evaluate_coco(inst, [{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])
    assert gc.isenabled()
    gc.disable()
    try:
        evaluate_coco(inst, res)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_no_detections_at_all():
    """The loadRes of pycocotools fails on an empty list; evaluated here as no detections: every GT an FN."""
    inst, _ = demo_data()
    ev = evaluate_coco(inst, [], engine="pycocotools")
    assert all(im.tp == im.fp == 0 and im.fn == len(im.gt) for im in ev.images)
    assert ev.stats[0] == 0.0


@pytest.mark.parametrize("bad,message", [
    ({"images": "x"}, "needs an 'images' list"),
    ({"images": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                                               "iscrowd": 0}], "categories": []}, "has no 'area'"),
])
def test_bad_instances(bad, message):
    with pytest.raises(gm.MediaError, match=message):
        evaluate_coco(bad, [])


def test_bad_predictions():
    inst, res = demo_data()
    with pytest.raises(gm.MediaError, match="Results do not correspond to current coco set"):
        evaluate_coco(inst, [{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])
    with pytest.raises(gm.MediaError, match="results in not an array of objects"):
        evaluate_coco(inst, {"image_id": 1})
    with pytest.raises(gm.MediaError, match="iou_type must be"):
        evaluate_coco(inst, res, "keypoints")
    with pytest.raises(gm.MediaError, match="engine must be"):
        evaluate_coco(inst, res, engine="mine")


def test_segm_results_without_bbox_evaluate_like_loadres():
    """The segm demo form of pycocotools (RLE + score, no bbox) and the same with polygons."""
    from pycocotools import mask as mask_api

    inst, res = demo_data()
    sizes = {im["id"]: (im["height"], im["width"]) for im in inst["images"]}
    rle_form = []
    for d in res:
        seg = d["segmentation"]
        if isinstance(seg, list):
            r = mask_api.merge(mask_api.frPyObjects(seg, *sizes[d["image_id"]]))
            seg = {"size": r["size"], "counts": r["counts"].decode("ascii")}
        rle_form.append({"image_id": d["image_id"], "category_id": d["category_id"], "score": d["score"],
                         "segmentation": seg})
    assert_same_as_pycocotools(inst, rle_form, "segm")
    assert_same_as_pycocotools(inst, rle_form, "bbox")


# --------------------------------------------------------------------------- randomized COCO data

SIZE = 64


@st.composite
def coco_data(draw):
    n_images = draw(st.integers(1, 4))
    cats = [1, 2, 3]
    box = st.tuples(st.integers(0, SIZE - 2), st.integers(0, SIZE - 2), st.integers(1, 40), st.integers(1, 40))
    images = [{"id": 10 + i, "file_name": f"{i}.png", "height": SIZE, "width": SIZE} for i in range(n_images)]
    anns, res = [], []
    for im in images:
        n_gt = draw(st.integers(0, 6))  # 0: an image without ground truth
        gts = []
        for _ in range(n_gt):
            x, y, w, h = draw(box)
            c = draw(st.sampled_from(cats))
            crowd = draw(st.sampled_from([0, 0, 0, 1]))
            area = draw(st.sampled_from([float(w * h), float(w * h) * 40]))  # some "large" by area only
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": c, "bbox": [x, y, w, h],
                         "area": area, "iscrowd": crowd,
                         "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
            gts.append((x, y, w, h, c))
        n_dt = draw(st.integers(0, 8))
        for _ in range(n_dt):
            if gts and draw(st.booleans()):  # near a ground truth box (often a TP), maybe twice (duplicates)
                x, y, w, h, c = draw(st.sampled_from(gts))
                dx, dy = draw(st.integers(-4, 4)), draw(st.integers(-4, 4))
                bb = [x + dx, y + dy, w, h]
                c = draw(st.sampled_from([c, c, c, 1]))
            else:
                x, y, w, h = draw(box)
                bb, c = [x, y, w, h], draw(st.sampled_from(cats))
            score = draw(st.sampled_from([0.1, 0.5, 0.5, 0.9, 0.95]))  # ties on purpose
            for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):
                res.append({"image_id": im["id"], "category_id": c, "bbox": [float(v) for v in bb], "score": score})
    inst = {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in cats]}
    return inst, res


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coco_data())
def test_random_bbox_equals_pycocotools(data):
    inst, res = data
    assume(res)  # pycocotools' loadRes cannot read an empty list
    assert_same_as_pycocotools(inst, res, "bbox")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coco_data())
def test_random_segm_equals_pycocotools(data):
    inst, res = data
    assume(res)
    for d in res:  # segm results: the boxes as polygons (loadRes' bbox form does the same)
        x, y, w, h = d["bbox"]
        d["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    assert_same_as_pycocotools(inst, res, "segm")


@pytest.mark.skipif(not HAVE_FASTER, reason="faster-coco-eval is not installed (the eval extra)")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coco_data())
def test_random_faster_coco_eval_marks_equal(data):
    inst, res = data
    assume(res)
    assert_same_as_pycocotools(inst, res, "bbox", engine="faster-coco-eval")
