"""The viewer's evaluation parts: an index's ``eval`` section (docs/SPEC.md) in the page, driven in Chromium.

The dump is a real :func:`gpu_media.write_dump` of the boxes in
``tests/data/eval_index_sample.json`` and of the masks made here; the sample's ``eval``
section (written by hand, checked against the boxes and masks below) is then added to
the index, and ``index.html`` rewritten with :func:`gpu_media.viewer.write_viewer`.
Browser requirements as in tests/test_viewer.py.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_viewer import _check, _open, _set, _settle

import gpu_media
from gpu_media import viewer

SAMPLE = os.path.join(os.path.dirname(__file__), "data", "eval_index_sample.json")
PAL = [tuple(c) for c in gpu_media.PALETTE]
N, H, W, C = 5, 48, 64, 4
XSS = "<script>window.__xss=3</script>"
RED, GREEN, ORANGE = (230, 0, 0), (0, 200, 0), (255, 165, 0)


def _sample() -> dict:
    with open(SAMPLE, encoding="utf-8") as f:
        return json.load(f)


def _per_box(cols: dict) -> list:
    """An image's outcome columns ``{"o50": [...], ...}`` (docs/SPEC.md 6.6) as one dict per box."""
    keys = ("o50", "iou50", "o75", "iou75")
    return [dict(zip(keys, row)) for row in zip(*(cols[k] for k in keys), strict=True)]


def _masks():
    """The semantic masks whose numbers the sample's ``segmentation`` part holds."""
    gt = np.zeros((N, H, W), np.uint8)
    gt[:, :24, :32] = 1
    gt[:, 24:, 32:] = 2
    gt[:, :12, 40:] = 3
    pred = gt.copy()
    for i in range(N):
        pred[i, 24:, 32: 32 + 6 * i] = 0  # the dog shrinks from the left, image by image
        pred[i, :4 * i, :32] = 3  # class 3 grows over the cat
    pred[4, :12, 40:] = 0  # image 4 misses class 3 altogether
    return gt, pred


def _write(out, with_eval=True) -> str:
    sample = _sample()
    gt, pred = _masks()
    labels = {0: "background", 1: "cat", 2: "dog", 3: XSS}
    images = np.full((N, H, W, 3), 90, np.uint8)
    gpu_media.write_dump(out, images, key="val", step=1, classes=labels, boxes=sample["boxes"], device="cpu",
                         masks={"ground_truth": {"mask_data": gt}, "predictions": {"mask_data": pred}},
                         captions=[f"image {i}" for i in range(N)])
    if with_eval:
        path = os.path.join(out, "val_1.index.json")
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        index["eval"] = sample["eval"]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(index, f)
    viewer.write_viewer(out)
    return os.path.join(out, viewer.INDEX_HTML)


@pytest.fixture(scope="module")
def eval_page_url(tmp_path_factory):
    return "file://" + _write(str(tmp_path_factory.mktemp("viewer-eval")))


@pytest.fixture
def page(browser, eval_page_url):
    with _open(browser, eval_page_url) as pg:
        yield pg


# ---------------------------------------------------------------- no browser

def test_sample_agrees_with_its_boxes_and_masks():
    """The hand-written sample is self-consistent: counts = outcome marks, lists aligned, matrix = the masks'."""
    s = _sample()
    det, seg = s["eval"]["detection"], s["eval"]["segmentation"]
    assert len(det["images"]) == len(s["boxes"]) == N
    for boxes, im in zip(s["boxes"], det["images"], strict=True):
        assert len(_per_box(im["pred"])) == len(boxes["predictions"]["box_data"])
        assert len(_per_box(im["gt"])) == len(boxes["ground_truth"]["box_data"])
        for t in ("50", "75"):
            suffix = "" if t == "50" else t
            marks = im["pred"][f"o{t}"] + im["gt"][f"o{t}"]
            assert (im["tp" + suffix], im["fp" + suffix], im["fn" + suffix]) == (
                marks.count("tp"), marks.count("fp"), marks.count("fn"))
        tp, fp, fn = im["tp"], im["fp"], im["fn"]
        assert im["f1"] == (pytest.approx(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else None)
    for row in det["classes"]:
        c = row["id"]
        errors = [i for i, im in enumerate(det["images"]) if c in im["error_classes"]]
        wrong = []
        for i, (b, im) in enumerate(zip(s["boxes"], det["images"], strict=True)):
            marks = list(zip(_per_box(im["pred"]), b["predictions"]["box_data"], strict=True))
            marks += zip(_per_box(im["gt"]), b["ground_truth"]["box_data"], strict=True)
            if any(m["o50"] in ("fp", "fn") and x["class_id"] == c for m, x in marks):
                wrong.append(i)
        assert errors == wrong, c
    gt, pred = _masks()
    cm = np.zeros((C, C), np.int64)
    np.add.at(cm, (gt.ravel(), pred.ravel()), 1)  # (not the bincount the sample was made with)
    assert seg["confusion_matrix"] == cm.tolist()
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    assert seg["iou"] == pytest.approx((np.diag(cm) / union).tolist(), abs=1e-6)
    assert seg["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-6)


def test_eval_section_reaches_the_page_checked(tmp_path):
    _write(str(tmp_path))
    (d,) = viewer.viewer_data(tmp_path)["dumps"]
    det = d["eval"]["detection"]
    assert det["stats"][3] == -1.0 and len(det["stats"]) == 12
    assert det["images"][1]["pred"] == [["tp", 0.625, "fp", None], ["fp", None, "fp", None]]
    assert det["images"][0]["gt"][1] == ["ignored", None, "ignored", None]
    assert det["classes"][2]["name"] == XSS
    assert d["eval"]["segmentation"]["labels"]["3"] == XSS
    # hostile or broken values: dropped, never passed on raw
    path = tmp_path / "val_1.index.json"
    index = json.loads(path.read_text())
    index["eval"]["detection"]["images"] = index["eval"]["detection"]["images"][:3]
    index["eval"]["detection"]["images"][0]["pred"].update({"o50": ["<b>"], "iou50": ["x"], "extra": 1})
    index["eval"]["detection"]["stats"][0] = float("nan")
    index["eval"]["detection"]["classes"].append({"id": "1; drop", "name": "x"})
    path.write_text(json.dumps(index))
    data = viewer.viewer_data(tmp_path)
    det = data["dumps"][0]["eval"]["detection"]
    assert det["stats"][0] is None and len(det["classes"]) == 3
    assert det["images"][0]["pred"][0] == [None, None, "tp", 0.9012]  # (its 0.75 columns untouched)
    assert len(det["images"]) == N and det["images"][4]["tp"] is None
    assert any("eval.detection.images: 3 entries for 5 images" in e for e in data["errors"])
    viewer.script_json(data)  # no NaN left in
    # outcomes that do not match the boxes one for one (say, of all predictions where the dump holds those
    # above a score threshold) are not shown at all, and the page says why
    for col in ("o50", "o75"):  # (the IoU columns one shorter: read as null)
        index["eval"]["detection"]["images"][2]["pred"][col].append("fp")
    path.write_text(json.dumps(index))
    data = viewer.viewer_data(tmp_path)
    det = data["dumps"][0]["eval"]["detection"]
    assert det["images"][2]["pred"] == [] and len(det["images"][2]["gt"]) == 2 and len(det["images"][1]["pred"]) == 2
    assert any("outcomes not shown: image 2: 2 pred outcomes for 1 boxes of 'predictions'" in e for e in data["errors"])


def test_outcomes_one_object_per_box_read_as_the_columns(tmp_path):
    """The first evaluated dumps wrote one {"o50", "iou50", "o75", "iou75"} per box: read as the columns are."""
    _write(str(tmp_path))
    want = viewer.viewer_data(tmp_path)["dumps"][0]["eval"]["detection"]["images"]
    path = tmp_path / "val_1.index.json"
    index = json.loads(path.read_text())
    for im in index["eval"]["detection"]["images"]:
        im["pred"], im["gt"] = _per_box(im["pred"]), _per_box(im["gt"])
    path.write_text(json.dumps(index))
    data = viewer.viewer_data(tmp_path)
    assert data["errors"] == [] and data["dumps"][0]["eval"]["detection"]["images"] == want
    assert sum(len(im["pred"]) for im in want) == 10


def test_no_eval_no_section(tmp_path):
    _write(str(tmp_path), with_eval=False)
    assert viewer.viewer_data(tmp_path)["dumps"][0]["eval"] is None


# ---------------------------------------------------------------- the browser

def _order(pg):
    return [int(i) for i in pg.eval_on_selector_all("#grid figure.cell", "l => l.map(f => f.dataset.index)")]


def _sort(pg, how):
    pg.locator(f"#eval-controls button.ev-sort[data-sort='{how}']").click()
    _settle(pg)
    return _order(pg)


def _all_box_layers_on(pg):
    """Both box layers on: the viewer's defaults (README, "The viewer") start a layer off while its mask shows."""
    for i in range(pg.locator("#box-controls .layer-toggle").count()):
        _check(pg, f"#box-controls fieldset[data-layer='{i}'] .layer-toggle", True)


def _boxes_drawn(pg, i):
    sel = f"#grid figure.cell[data-index='{i}'] canvas.boxes"
    pg.locator(f"#grid figure.cell[data-index='{i}']").scroll_into_view_if_needed()
    pg.wait_for_function("s => document.querySelector(s) && document.querySelector(s).dataset.drawn", arg=sel)
    return int(pg.eval_on_selector(sel, "c => c.dataset.boxes"))


def test_panel_shows_stats_classes_curves_and_confusion(page):
    ev = _sample()["eval"]
    stats = page.eval_on_selector_all("#eval-stats .ev-stat", "l => l.map(e => [e.querySelector('.n').textContent, "
                                      "e.querySelector('.v').textContent])")
    assert stats == [[n, f"{v:.3f}" if v >= 0 else "\u2013"]
                     for n, v in zip(ev["detection"]["stats_names"], ev["detection"]["stats"], strict=True)]
    assert page.locator("#eval-panel").is_visible()
    head = page.locator(".ev-detection h3").first.inner_text()
    assert "ground_truth vs predictions \u00b7 pycocotools, 5 images" in head
    rows = page.eval_on_selector_all("#eval-class-table tbody tr", """l => l.map(r => [r.dataset.classId,
        r.querySelector('.cname').textContent,
        Array.from(r.querySelectorAll('td[data-value]')).map(t => t.textContent)])""")
    assert rows == [[str(r["id"]), r["name"], [f"{r[k]:.3f}" for k in ("ap", "ap50", "ap75", "ar100")] +
                     [str(r[k]) for k in ("tp", "fp", "fn")]] for r in ev["detection"]["classes"]]
    # PR curves: one SVG per class; dog's line stops at recall 2/3 (COCO's -1 beyond), the hostile class is flat at 0
    curves = page.eval_on_selector_all("#eval-pr figure", """l => l.map(f => [f.dataset.classId,
        Array.from(f.querySelectorAll('polyline')).map(p => p.getAttribute('points').split(' ').length)])""")
    assert curves == [["1", [101]], ["2", [67]], ["3", [101]]]
    # the confusion matrix: every count, rows ground truth, shaded by the row's share
    cm = page.eval_on_selector_all("#eval-cm tbody tr", "l => l.map(r => Array.from(r.querySelectorAll('td.cm'))"
                                   ".map(t => Number(t.dataset.value)))")
    assert cm == ev["segmentation"]["confusion_matrix"]
    shades = page.eval_on_selector_all("#eval-cm tbody tr:nth-child(2) td.cm", "l => l.map(t => t.style.background)")
    row = np.array(ev["segmentation"]["confusion_matrix"][1])
    assert shades == [f"rgba(47, 111, 222, {float(f'{v:.3f}'):g})" if v else "rgba(47, 111, 222, 0)"
                      for v in row / row.sum()]
    ious = page.eval_on_selector_all("#eval-cm tbody td.iou", "l => l.map(t => t.textContent)")
    assert ious == [f"{v:.3f}" for v in ev["segmentation"]["iou"]]
    # per image: counts, F1, mIoU
    badge = page.locator("#grid figure.cell[data-index='2'] .ev-badge").inner_text()
    assert badge.split() == ["TP", "0", "FP", "1", "FN", "2", "F1", "0.00", "mIoU",
                             f"{ev['segmentation']['images'][2]['miou']:.2f}"]
    assert "F1 \u2013" in page.locator("#grid figure.cell[data-index='4'] .ev-badge").inner_text()


def test_class_table_sorts_by_any_column(page):
    def order():
        ids = page.eval_on_selector_all("#eval-class-table tbody tr", "l => l.map(r => r.dataset.classId)")
        return [int(c) for c in ids]

    def click(col):
        page.locator(f"#eval-class-table th[data-col='{col}']").click()
        _settle(page)
        return order()

    assert order() == [1, 2, 3]
    assert click("ap50") == [3, 2, 1]
    assert click("ap50") == [1, 2, 3]  # again: descending
    assert click("fn") == [1, 2, 3]
    assert click("fp") == [3, 1, 2]
    assert click("name") == [3, 1, 2]  # "<script>..." < "cat" < "dog"
    assert page.locator("#eval-class-table th[data-col='name']").get_attribute("class").endswith("sorted-asc")


def test_sorting_puts_the_worst_image_first(page):
    assert _order(page) == [0, 1, 2, 3, 4]
    assert _sort(page, "f1") == [2, 1, 3, 0, 4]  # F1 0, 0.5, 4/7, 1; image 4 (nothing to find) last
    assert page.locator("#eval-controls button[data-sort='f1']").get_attribute("aria-pressed") == "true"
    assert _sort(page, "fn") == [2, 1, 3, 0, 4]
    assert _sort(page, "fp") == [3, 2, 1, 0, 4]
    assert _sort(page, "miou") == [4, 3, 2, 1, 0]
    # at IoU 0.75 image 1's loose cat is an FP and the cat an FN: F1 0 with 4 errors, before image 2 (3 errors)
    _set(page, "#eval-iou", 75)
    assert _sort(page, "f1") == [1, 2, 3, 0, 4]
    assert page.locator("#grid figure.cell[data-index='1'] .ev-badge").inner_text().split()[:6] == [
        "TP", "0", "FP", "2", "FN", "2"]
    assert _sort(page, "index") == [0, 1, 2, 3, 4]
    # paging follows the order: the worst image opens the first page
    _set(page, "#eval-iou", 50)
    _set(page, "#page-size-select", 12)
    assert _sort(page, "f1")[0] == 2


def test_outcome_toggles_change_the_boxes_drawn(page):
    _all_box_layers_on(page)
    assert _boxes_drawn(page, 3) == 7  # 2 ground truth + 5 predictions
    _check(page, "#eval-controls input[data-outcome='fp']", False)
    assert _boxes_drawn(page, 3) == 4
    _check(page, "#eval-controls input[data-outcome='tp']", False)  # TP predictions and the ground truth they match
    assert _boxes_drawn(page, 3) == 0
    _check(page, "#eval-controls input[data-outcome='tp']", True)
    _check(page, "#eval-controls input[data-outcome='fp']", True)
    assert _boxes_drawn(page, 0) == 4
    _check(page, "#eval-controls input[data-outcome='ignored']", False)  # the crowd and the prediction on it
    assert _boxes_drawn(page, 0) == 2
    _check(page, "#eval-controls input[data-outcome='ignored']", True)
    _check(page, "#eval-controls input[data-outcome='fn']", False)
    assert _boxes_drawn(page, 1) == 3  # the missed dog
    _set(page, "#eval-iou", 75)
    assert _boxes_drawn(page, 1) == 2  # and the loosely found cat
    _check(page, "#eval-controls input[data-outcome='fp']", False)
    assert _boxes_drawn(page, 1) == 0
    # colours: outcome colours on the canvas, the class colour with colouring off
    _set(page, "#eval-iou", 50)
    _check(page, "#eval-controls input[data-outcome='fp']", True)
    _check(page, "#eval-controls input[data-outcome='fn']", True)

    def px(i, x, y):  # image pixels -> RGB of the canvas (shown at 256 px: 4x)
        _boxes_drawn(page, i)
        return page.evaluate("""([i, x, y]) => Array.from(document.querySelector(
            `#grid figure.cell[data-index='${i}'] canvas.boxes`).getContext('2d').getImageData(x, y, 1, 1).data)""",
                             [i, x * 4 + 1, y * 4])[:3]

    assert px(1, 4, 40) == list(RED)  # the dog predicted where there is none: FP
    assert px(1, 8, 16) == list(GREEN)  # the cat found: TP
    assert px(1, 36, 40) == list(ORANGE)  # the missed dog: FN (dashed: this spot is on a dash)
    _check(page, "#eval-by-outcome", False)
    assert px(1, 4, 40) == list(PAL[2]) and px(1, 8, 16) == list(PAL[1])


def _layers_on(pg):
    """{box key: its layer's switch} of the sidebar."""
    keys = pg.eval_on_selector_all("#box-controls fieldset.box-layer legend .key", "l => l.map(e => e.textContent)")
    on = pg.eval_on_selector_all("#box-controls fieldset.box-layer .layer-toggle", "l => l.map(e => e.checked)")
    return dict(zip(keys, on, strict=True))


def test_an_outcome_switch_shows_the_boxes_it_concerns(page):
    """The ground truth's box layer starts off (its mask shown): hiding TP shows the FN too, so it goes on."""
    assert _layers_on(page) == {"ground_truth": False, "predictions": True}  # the viewer's defaults here
    assert _boxes_drawn(page, 2) == 1  # the FP prediction; not the two missed ground-truth boxes
    _check(page, "#eval-controls input[data-outcome='tp']", False)
    assert _layers_on(page) == {"ground_truth": True, "predictions": True}
    assert _boxes_drawn(page, 2) == 3


def test_showing_fp_turns_on_the_predictions_only(page):
    for o in ("tp", "fp", "fn", "ignored"):  # every outcome off (the layers of those still shown go on meanwhile)
        _check(page, f"#eval-controls input[data-outcome='{o}']", False)
    for key in ("ground_truth", "predictions"):  # then both layers off by hand
        _check(page, f"#box-controls fieldset.box-layer:has(.key:text-is('{key}')) .layer-toggle", False)
    assert _layers_on(page) == {"ground_truth": False, "predictions": False}
    _check(page, "#eval-controls input[data-outcome='fp']", True)  # "show me the false positives"
    assert _layers_on(page) == {"ground_truth": False, "predictions": True}
    assert _boxes_drawn(page, 3) == 3
    _check(page, "#eval-controls input[data-outcome='fn']", True)
    assert _layers_on(page) == {"ground_truth": True, "predictions": True}
    assert _boxes_drawn(page, 2) == 3  # image 2: the dog predicted where there is none, the two missed


def test_the_iou_threshold_shows_the_boxes(page):
    _set(page, "#eval-iou", 75)
    assert _layers_on(page) == {"ground_truth": True, "predictions": True}
    assert _boxes_drawn(page, 3) == 7


def test_clicking_a_class_shows_its_boxes(page):
    _check(page, "#box-controls fieldset[data-layer='0'] input[data-class-id='2']", False)  # dogs hidden by hand
    _check(page, "#box-controls fieldset[data-layer='1'] input[data-class-id='2']", False)
    page.locator("#eval-class-table tr[data-class-id='2'] button.ev-class").click()
    _settle(page)
    assert _layers_on(page) == {"ground_truth": True, "predictions": True}
    assert page.locator("#box-controls input[data-class-id='2']:checked").count() == 2  # the class shown again
    assert _boxes_drawn(page, 1) == 4  # image 1: its cat and dogs, predicted and true
    page.locator("#eval-class-table tr[data-class-id='2'] button.ev-class").click()  # again: the filter off;
    _settle(page)  # the boxes stay
    assert _layers_on(page) == {"ground_truth": True, "predictions": True}


def test_clicking_a_class_filters_the_gallery(page):
    page.locator("#eval-class-table tr[data-class-id='2'] button.ev-class").click()
    _settle(page)
    assert _order(page) == [1, 2, 3]
    assert "only images with errors in class 2 dog (3)" in page.locator("#eval-class-filter").inner_text()
    assert page.locator("#eval-class-table tr.selected").get_attribute("data-class-id") == "2"
    assert _sort(page, "f1") == [2, 1, 3]  # filter and order together
    page.locator("#eval-class-table tr[data-class-id='3'] button.ev-class").click()
    _settle(page)
    assert _order(page) == [2]
    page.locator("#eval-class-table tr[data-class-id='3'] button.ev-class").click()  # again: every image
    _settle(page)
    assert _order(page) == [2, 1, 3, 0, 4]
    page.locator("#eval-class-table tr[data-class-id='1'] button.ev-class").click()
    _settle(page)
    assert _order(page) == [3]
    _set(page, "#caption-filter", "image 0")  # with the caption filter: nothing left, and the page says why
    assert _order(page) == [] and page.locator("#grid .empty").inner_text() == (
        "no image has an error in class 1 and matches the caption filter")
    _set(page, "#caption-filter", "")
    page.locator("#eval-class-filter button").click()
    _settle(page)
    assert len(_order(page)) == N and page.locator("#eval-class-filter").inner_text() == ""


def test_class_names_are_text(page):
    page.locator("#eval-class-table tr[data-class-id='3'] button.ev-class").click()
    _settle(page)
    for sel in ("#eval-class-table tr[data-class-id='3'] .cname", "#eval-pr figure[data-class-id='3'] .cname",
                "#eval-cm tr[data-class-id='3'] .cname", "#eval-class-filter .cname"):
        assert page.locator(sel).text_content() == XSS, sel
    assert page.locator("#eval-panel script, #eval-controls script, #eval-panel img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_without_eval_the_page_is_as_before(browser, tmp_path):
    url = "file://" + _write(str(tmp_path), with_eval=False)
    with _open(browser, url) as pg:
        assert not pg.locator("#eval-panel").is_visible()
        assert pg.locator("#eval-controls *").count() == 0
        assert pg.locator("#grid .ev-badge").count() == 0
        assert _order(pg) == [0, 1, 2, 3, 4]
        _all_box_layers_on(pg)
        assert _boxes_drawn(pg, 3) == 7
        # outlines in the class colours as always
        rgb = pg.evaluate("""() => Array.from(document.querySelector("#grid figure.cell[data-index='1'] canvas.boxes")
                             .getContext('2d').getImageData(17, 160, 1, 1).data)""")[:3]
        assert rgb == list(PAL[2])


def test_the_coco_demo_evaluated_worst_image_first(browser, tmp_path):
    """``gpu-media dump <COCO demo> --eval --draw-boxes``: the page shows its numbers; one click sorts worst first."""
    pytest.importorskip("pycocotools")
    pytest.importorskip("gpu_media.eval", reason="gpu-media dump --eval (issue 20, items 1-3) is not in this tree")
    from gpu_media import cli

    coco = os.path.join(os.path.dirname(cli.__file__), "demo", "coco")
    assert cli.main(["dump", os.path.join(coco, "images"), str(tmp_path), "--coco",
                     os.path.join(coco, "instances.json"), "--predictions", os.path.join(coco, "results.json"),
                     "--eval", "--draw-boxes"]) == 0
    (name,) = [n for n in os.listdir(tmp_path) if n.endswith(".index.json")]
    with open(tmp_path / name, encoding="utf-8") as f:
        det = json.load(f)["eval"]["detection"]
    assert viewer.viewer_data(tmp_path)["errors"] == []  # every outcome list matches its boxes
    f1 = [im["f1"] for im in det["images"]]
    errors = [im["fp"] + im["fn"] for im in det["images"]]
    worst = min((i for i in range(len(f1)) if f1[i] is not None), key=lambda i: (f1[i], -errors[i], i))
    with _open(browser, f"file://{tmp_path}/index.html") as pg:
        values = pg.eval_on_selector_all("#eval-stats .ev-stat .v", "l => l.map(e => e.textContent)")
        assert values == [f"{v:.3f}" if v >= 0 else "\u2013" for v in det["stats"]]
        assert _sort(pg, "f1")[0] == worst
        for i in range(pg.locator("#box-controls .layer-toggle").count()):  # (burned in too: may start off)
            _check(pg, f"#box-controls fieldset[data-layer='{i}'] .layer-toggle", True)
        n_boxes = sum(len(im["pred"]["o50"]) + len(im["gt"]["o50"]) for im in det["images"])
        assert sum(_boxes_drawn(pg, i) for i in range(len(f1))) == n_boxes
        _check(pg, "#eval-controls input[data-outcome='fp']", False)
        fp = sum(o == "fp" for im in det["images"] for o in im["pred"]["o50"])
        assert fp and sum(_boxes_drawn(pg, i) for i in range(len(f1))) == n_boxes - fp
