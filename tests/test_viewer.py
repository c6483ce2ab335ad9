"""The static viewer (``gpu_media.viewer``): the page's data and what it draws in headless Chromium.

The page is opened as ``file://`` and served over HTTP by :func:`gpu_media.viewer.serve`.

Browser tests need Debian's ``chromium`` and the ``playwright`` package (no
``playwright install``: the system browser is used). Without them they fail, telling
how to install; they skip only when ``GPU_MEDIA_BROWSER_OPTIONAL=1`` (CI sets it when
its ``apt-get install chromium`` failed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest

import gpu_media
from gpu_media import viewer
from gpu_media.dump import index_name

PAL = [tuple(c) for c in gpu_media.PALETTE]
W, H, N = 64, 48, 30
BASE = (100, 110, 120)  # every synthetic image is this colour
XSS_CAPTION = "<script>window.__xss=1</script><b>bold</b>"
XSS_CLASS = "<img src=x onerror=window.__xss=2>"
CLASSES = {0: "background", 1: "cat", 2: "dog", 3: XSS_CLASS}


# ---------------------------------------------------------------- the dump

def _masks():
    gt = np.zeros((N, H, W), np.uint8)
    gt[:, :24, :32] = 1  # top-left quadrant: class 1
    gt[:, 24:, 32:] = 2  # bottom-right quadrant: class 2
    pred = np.zeros((N, H, W), np.uint8)
    pred[:, :24, 32:] = 3  # top-right quadrant: class 3
    for i in range(N):
        pred[i, 24:, : 8 + 4 * (i % 3)] = 1  # bottom-left strip of varying width: class 1
    return gt, pred


def _boxes():
    out = []
    for i in range(N):
        if i == 5:
            out.append(None)  # an image without boxes
            continue
        out.append({
            "ground_truth": {"box_data": [  # pixels, minX/maxX form, no scores
                {"position": {"minX": 4, "maxX": 28, "minY": 4, "maxY": 20}, "domain": "pixel", "class_id": 1,
                 "box_caption": "gt cat" if i else XSS_CAPTION},
            ], "class_labels": CLASSES},
            "prediction": {"box_data": [
                # fractions of the image, middle/width/height form: x 40..56, y 30..42 pixels
                {"position": {"middle": [0.75, 0.75], "width": 0.25, "height": 0.25}, "class_id": 2,
                 "box_caption": "dog 0.80", "scores": {"score": 0.8, "iou": 0.5}},
                # pixels, middle form: x 40..56, y 6..18
                {"position": {"middle": [48, 12], "width": 16, "height": 12}, "domain": "pixel", "class_id": 3,
                 "box_caption": "bird 0.30", "scores": {"score": 0.3, "iou": 0.9}},
            ], "class_labels": CLASSES},
        })
    return out


@pytest.fixture(scope="session")
def dump_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("viewer-dump")
    images = np.broadcast_to(np.array(BASE, np.uint8), (N, H, W, 3)).copy()
    gt, pred = _masks()
    captions = [XSS_CAPTION] + [f"sample {i} \u2028 line" if i == 1 else f"sample {i}" for i in range(1, N)]
    gpu_media.write_dump(out, images, key="val", step=3, captions=captions, classes=CLASSES,
                         masks={"ground_truth": {"mask_data": gt}, "prediction": {"mask_data": pred}},
                         boxes=_boxes(), device="cpu")
    small = np.broadcast_to(np.array((200, 30, 30), np.uint8), (2, 20, 40, 3)).copy()
    gpu_media.write_dump(out, small, key="val", step=10, masks={"ground_truth": {"mask_data": gt[:2, :20, :40]}},
                         device="cpu")
    viewer.write_viewer(out)
    return out


@pytest.fixture(scope="session")
def index(dump_dir):
    with open(os.path.join(dump_dir, "val_3.index.json"), encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------- no browser

def _embedded(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="gpu-media-data">(.*?)</script>', html, re.DOTALL)
    return json.loads(m.group(1))


def test_page_embeds_the_dumps_safely(dump_dir, index):
    with open(os.path.join(dump_dir, "index.html"), encoding="utf-8") as f:
        html = f.read()
    assert _embedded(html)["dumps"] is None  # a dump folder's page loads its dumps from viewer/
    data = viewer.page_data(dump_dir)
    assert data == {**viewer.viewer_data(dump_dir), "errors": data["errors"]}
    assert sorted(data["errors"]) == sorted(viewer.viewer_data(dump_dir)["errors"])
    # the page embedding the same data itself (a dump at a URL) holds the same
    assert _embedded(viewer.render_html(viewer.viewer_data(dump_dir))) == viewer.viewer_data(dump_dir)
    assert [(d["key"], d["step"], d["count"]) for d in data["dumps"]] == [("val", 3, N), ("val", 10, 2)]
    d = data["dumps"][0]
    assert d["images"][0]["caption"] == XSS_CAPTION
    assert d["images"][0]["path"] == index["images"][0]["path"]
    assert d["images"][0]["masks"] == {k: v["path"] for k, v in index["images"][0]["masks"].items()}
    assert d["images"][0]["report"] == index["mask_report"][0]
    assert d["images"][5]["boxes"] == {}
    with open(os.path.join(dump_dir, index["images"][1]["boxes"]["prediction"]["path"]), encoding="utf-8") as f:
        assert d["images"][1]["boxes"]["prediction"] == json.load(f)["box_data"]
    assert d["mask_labels"]["prediction"]["3"] == XSS_CLASS
    # the data never closes a script element, nor holds a raw line/paragraph separator
    vdir = os.path.join(dump_dir, viewer.VIEWER_DIR)
    blocks = [open(os.path.join(vdir, n), encoding="ascii").read() for n in sorted(os.listdir(vdir))]
    assert sorted(os.listdir(vdir)) == ["dumps-a.js", "dumps-b.js", "val_10.dump.js", "val_3.dump.js"]
    blocks.append(re.search(r'id="gpu-media-data">(.*?)</script>', html, re.DOTALL).group(1))
    for block in blocks:
        assert not set(block) & {"<", ">", "&", "\u2028", "\u2029"}
    # no network anywhere: no URL with a scheme, CSP allows only the page's own scripts (by hash) and the
    # folder's data files
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html)
    assert "default-src 'none'" in html and "script-src 'sha256-" in html and "'self' file:;" in html
    assert not [n for n in os.listdir(dump_dir) if n.endswith(".tmp")]


def test_script_json_escapes():
    s = viewer.script_json({"a": "</script><!-- & \u2028\u2029 é", "n": [1.5]})
    assert not set(s) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(s) == {"a": "</script><!-- & \u2028\u2029 é", "n": [1.5]}


def test_viewer_data_is_defensive(tmp_path):
    gpu_media.write_dump(tmp_path, np.zeros((2, 4, 4, 3), np.uint8), key="k", device="cpu",
                         boxes=[{"b": {"box_data": [{"position": {"minX": 0, "maxX": 1, "minY": 0, "maxY": 1},
                                                     "class_id": 0, "scores": {"s": 0.5}}]}}, None])
    idx = json.loads((tmp_path / "k_0.index.json").read_text())
    box_file = tmp_path / idx["images"][0]["boxes"]["b"]["path"]
    box_file.write_text(box_file.read_text().replace("0.5", "NaN"))
    idx["images"][1]["path"] = "../../etc/passwd"
    (tmp_path / "k_0.index.json").write_text(json.dumps(idx))
    (tmp_path / "broken.index.json").write_text("{not json")
    data = viewer.viewer_data(tmp_path)
    (d,) = data["dumps"]
    assert d["images"][0]["boxes"]["b"][0]["scores"] == {"s": None}
    assert d["images"][1]["path"] is None
    assert any("broken.index.json" in e for e in data["errors"])
    viewer.script_json(data)  # allow_nan=False: would raise on a NaN left in


def test_empty_folder_gets_a_page(tmp_path):
    path = viewer.write_viewer(tmp_path)
    assert _embedded(open(path, encoding="utf-8").read())["dumps"] is None
    assert viewer.page_data(tmp_path) == {**viewer.viewer_data(tmp_path), "dumps": []}
    with pytest.raises(NotADirectoryError):
        viewer.write_viewer(tmp_path / "missing")


@pytest.fixture(scope="session")
def http_root(dump_dir):
    server = viewer.serve(dump_dir)
    assert server.server_address[0] == "127.0.0.1"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_serve(http_root, dump_dir):
    with urllib.request.urlopen(http_root + "/index.html", timeout=10) as r:
        assert r.status == 200
        assert r.read() == open(os.path.join(dump_dir, "index.html"), "rb").read()


def test_view_writes_the_page_prints_the_url_and_stops_on_ctrl_c(tmp_path, monkeypatch):
    real = viewer.serve

    def interrupted_serve(*args, **kwargs):
        server = real(*args, **kwargs)

        def ctrl_c():
            raise KeyboardInterrupt

        server.serve_forever = ctrl_c
        return server

    monkeypatch.setattr(viewer, "serve", interrupted_serve)
    out = io.StringIO()
    assert viewer.view(tmp_path, stream=out) == 0
    assert re.match(r"http://127\.0\.0\.1:\d+/index\.html\n", out.getvalue())
    assert (tmp_path / "index.html").is_file()
    # a page there already: its list is made from the folder first, with the dumps written without the viewer
    gpu_media.write_dump(tmp_path, np.zeros((1, 4, 4, 3), np.uint8), key="k", device="cpu", viewer=False)
    assert viewer.page_data(tmp_path)["dumps"] == []
    assert viewer.view(tmp_path, stream=io.StringIO()) == 0
    assert [d["key"] for d in viewer.page_data(tmp_path)["dumps"]] == ["k"]
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)


# ---------------------------------------------------------------- the browser

# (the ``browser`` fixture, shared with tests/test_viewer_eval.py, is in tests/conftest.py: one Chromium)


@contextlib.contextmanager
def _open(browser, url):
    """A fresh page at ``url``; on leaving, no page error, console error or non-local request may have happened."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    pg = ctx.new_page()
    problems = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
          if m.type in ("error", "warning") and "willReadFrequently" not in m.text else None)  # (our getImageData)
    pg.on("request", lambda r: None if r.url.startswith(("file:", "http://127.0.0.1", "data:", "blob:"))
          else problems.append(f"network request: {r.url}"))
    pg.goto(url)
    pg.wait_for_function("window.gpuMediaViewer !== undefined")
    try:
        yield pg
    finally:
        ctx.close()
    assert problems == []


@pytest.fixture(params=["file", "http"])
def page(request, browser, dump_dir):
    url = (f"file://{dump_dir}/index.html" if request.param == "file"
           else request.getfixturevalue("http_root") + "/index.html")
    with _open(browser, url) as pg:
        yield pg


def _settle(pg):
    pg.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _set(pg, selector, value):
    """Set a range / select / text input and fire the events a user's change fires."""
    pg.eval_on_selector(selector, """(e, v) => { e.value = v; e.dispatchEvent(new Event('input', {bubbles: true}));
                                       e.dispatchEvent(new Event('change', {bubbles: true})); }""", str(value))
    _settle(pg)


def _check(pg, selector, on):
    loc = pg.locator(selector)
    if loc.is_checked() != on:
        loc.click()
    _settle(pg)


def _layer(kind, i):
    return f"#{kind}-controls fieldset[data-layer='{i}']"


def _cells(pg):
    return pg.locator("#grid figure.cell")


def _images_loaded(pg, index=None):
    """Wait for the page's images (those of cell ``index`` only, when given) to have loaded."""
    # (lazy images load when near the viewport and displayed: not those of a mask layer switched off)
    sel = "#grid img" if index is None else f"#grid figure.cell[data-index='{index}'] img"
    if index is not None:
        pg.locator(f"#grid figure.cell[data-index='{index}']").scroll_into_view_if_needed()
    pg.wait_for_function("""sel => Array.from(document.querySelectorAll(sel))
                              .filter(i => getComputedStyle(i).display !== 'none')
                              .every(i => i.complete && i.naturalWidth > 0)""", arg=sel, timeout=10000)


def _stage_pixels(pg, index=0):
    from PIL import Image

    stage = pg.locator(f"#grid figure.cell[data-index='{index}'] .stage")
    stage.scroll_into_view_if_needed()
    _settle(pg)
    box = stage.bounding_box()  # may sit at a fractional offset: sample away from edges
    clip = {"x": round(box["x"]), "y": round(box["y"]), "width": round(box["width"]), "height": round(box["height"])}
    shot = pg.screenshot(clip=clip)
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)


def _blend(color, alpha, base=BASE):
    return tuple(alpha * c + (1 - alpha) * b for c, b in zip(color, base, strict=True))


def _assert_color(px, expected, tol=2):
    assert np.abs(px - np.array(expected)).max() <= tol, f"pixel {tuple(px)} != expected {expected}"


def test_images_load_and_paging(page):
    cells = _cells(page)
    assert cells.count() == N  # default page size 48 holds all 30
    _set(page, "#thumb-select", 96)
    _set(page, "#page-size-select", 12)
    assert cells.count() == 12
    _check(page, f"{_layer('mask', 1)} .layer-toggle", True)  # off by default (test_default_view_is_readable)
    _images_loaded(page)
    sizes = page.eval_on_selector_all("#grid img", "l => l.map(i => [i.className, i.naturalWidth, i.naturalHeight])")
    assert len(sizes) == 12 * 3 and all(s[1:] == [W, H] for s in sizes)  # image + two masks per cell
    assert "images 1\u201312 of 30" in page.locator("#pager-top").inner_text()
    page.locator("#pager-top button", has_text="next").click()
    assert cells.count() == 12 and cells.first.get_attribute("data-index") == "12"
    page.keyboard.press("ArrowRight")
    assert cells.count() == 6 and cells.first.get_attribute("data-index") == "24"
    assert page.locator("#pager-top button", has_text="next").is_disabled()
    page.keyboard.press("ArrowLeft")
    assert cells.first.get_attribute("data-index") == "12"
    _set(page, "#page-size-select", 500)
    assert cells.count() == N
    _set(page, "#caption-filter", "sample 2")  # sample 2, 20..29
    assert cells.count() == 11
    _set(page, "#caption-filter", "")
    # the other step of the same key
    assert page.eval_on_selector_all("#step-select option", "l => l.map(o => o.textContent)") == [
        "3 (30 images)", "10 (2 images)"]
    _set(page, "#step-select", page.eval_on_selector_all("#step-select option", "l => l.map(o => o.value)")[1])
    assert cells.count() == 2
    _images_loaded(page)


def test_user_strings_are_text(page):
    cap = page.locator("#grid figure.cell[data-index='0'] figcaption")
    assert cap.inner_text() == XSS_CAPTION
    assert cap.locator("b, script").count() == 0
    assert page.locator("#grid figure.cell[data-index='1'] figcaption").text_content() == "sample 1 \u2028 line"
    assert page.evaluate("typeof window.__xss") == "undefined"
    names = page.eval_on_selector_all(f"{_layer('mask', 1)} .cname", "l => l.map(e => e.textContent)")
    assert names == ["background", "cat", "dog", XSS_CLASS]
    assert page.locator("#side img, #summary-table img").count() == 0
    keys = page.eval_on_selector_all("#side legend .key", "l => l.map(e => e.textContent)")
    assert keys == ["ground_truth", "prediction", "ground_truth", "prediction"]
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_mask_layers_colour_the_classes(page):
    for i in (0, 1):  # boxes out of the way
        _check(page, f"{_layer('box', i)} .layer-toggle", False)
    _check(page, f"{_layer('mask', 1)} .layer-toggle", False)  # prediction off: ground truth alone
    _set(page, f"{_layer('mask', 0)} input.opacity", 1)
    _images_loaded(page, 0)
    px = _stage_pixels(page)
    assert px.shape[:2] == (192, 256)  # 64x48 shown at 256 px
    tl, tr, bl, br = px[48, 64], px[48, 192], px[144, 64], px[144, 192]
    _assert_color(tl, PAL[1])  # class 1
    _assert_color(br, PAL[2])  # class 2
    _assert_color(tr, BASE)  # class 0 "background": hidden by default
    _assert_color(bl, BASE)
    # class edges stay crisp (nearest neighbour): where class 2 meets class 0 at x = 32 * 4, no
    # smoothed grey value in between shows as class 1's colour
    band = px[144, 120:137]
    assert all(np.abs(p - BASE).max() <= 3 or np.abs(p - PAL[2]).max() <= 3 for p in band), band.tolist()

    _set(page, f"{_layer('mask', 0)} input.opacity", 0.5)
    _assert_color(_stage_pixels(page)[48, 64], _blend(PAL[1], 0.5))
    _set(page, f"{_layer('mask', 0)} input.opacity", 0.25)
    _assert_color(_stage_pixels(page)[48, 64], _blend(PAL[1], 0.25))
    _set(page, f"{_layer('mask', 0)} input.opacity", 1)

    _check(page, f"{_layer('mask', 0)} .layer-toggle", False)
    _assert_color(_stage_pixels(page)[48, 64], BASE)
    _check(page, f"{_layer('mask', 0)} .layer-toggle", True)
    _assert_color(_stage_pixels(page)[48, 64], PAL[1])

    _check(page, f"{_layer('mask', 0)} input[data-class-id='1']", False)  # hide class 1 only
    px = _stage_pixels(page)
    _assert_color(px[48, 64], BASE)
    _assert_color(px[144, 192], PAL[2])
    _check(page, f"{_layer('mask', 0)} input[data-class-id='0']", True)  # show the background class
    px = _stage_pixels(page)
    _assert_color(px[48, 192], PAL[0])
    _assert_color(px[48, 64], BASE)
    _check(page, f"{_layer('mask', 0)} input[data-class-id='1']", True)

    _check(page, f"{_layer('mask', 1)} .layer-toggle", True)  # prediction stacked on top
    _set(page, f"{_layer('mask', 1)} input.opacity", 1)
    _images_loaded(page, 0)
    px = _stage_pixels(page)
    _assert_color(px[48, 192], PAL[3])  # prediction's class 3 over ground truth's background
    _assert_color(px[48, 64], PAL[1])  # prediction's background hidden: ground truth's class 1 shows
    _assert_color(px[144, 4], PAL[1])  # prediction's class 1 strip
    # the legend's swatches are the classes' colours
    sw = page.eval_on_selector_all(f"{_layer('mask', 1)} .swatch",
                                   "l => l.map(e => getComputedStyle(e).backgroundColor)")
    assert sw == [f"rgb({c[0]}, {c[1]}, {c[2]})" for c in PAL[:4]]


_CANVAS_PIXEL = """([i, x, y]) => {
  const c = document.querySelector(`#grid figure.cell[data-index='${i}'] canvas.boxes`);
  return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data);
}"""


def test_box_layers(page):
    _check(page, f"{_layer('box', 0)} .layer-toggle", True)  # ground truth: off by default, its mask is shown
    page.wait_for_function("document.querySelector(\"#grid figure.cell[data-index='0'] canvas.boxes\").dataset.drawn")
    cw, ch = page.eval_on_selector("#grid figure.cell[data-index='0'] canvas.boxes", "c => [c.width, c.height]")
    assert (cw, ch) == (256, 192)
    s = cw / W

    def px(x, y, i=0):  # image pixel coordinates -> RGBA of the canvas
        return page.evaluate(_CANVAS_PIXEL, [i, int(x * s) + 1, int(y * s)])

    def shows(rgba, cls):
        return rgba[3] == 255 and np.abs(np.array(rgba[:3]) - PAL[cls]).max() <= 1

    gt_edge, dog_edge, bird_edge = (4, 12), (40, 36), (40, 14)  # left edges, below the captions
    assert shows(px(*gt_edge), 1) and shows(px(*dog_edge), 2) and shows(px(*bird_edge), 3)
    assert px(16, 14)[3] == 0  # inside the ground-truth box: nothing drawn
    assert page.eval_on_selector("#grid figure.cell[data-index='5']", "f => f.querySelector('canvas')") is None

    thr = f"{_layer('box', 1)} input.threshold"
    _set(page, thr, 0.5)  # bird (0.3) goes, dog (0.8) stays
    assert not shows(px(*bird_edge), 3) and shows(px(*dog_edge), 2) and shows(px(*gt_edge), 1)
    _set(page, thr, 0.85)  # both predictions go; ground truth has no scores and stays
    assert not shows(px(*dog_edge), 2) and shows(px(*gt_edge), 1)
    # another score name: iou (dog 0.5, bird 0.9)
    _set(page, f"{_layer('box', 1)} select.score-name", "iou")
    _set(page, thr, 0.7)
    assert shows(px(*bird_edge), 3) and not shows(px(*dog_edge), 2)
    _set(page, thr, 0)
    assert shows(px(*bird_edge), 3) and shows(px(*dog_edge), 2)

    _check(page, f"{_layer('box', 1)} input[data-class-id='2']", False)  # filter out class 2
    assert not shows(px(*dog_edge), 2) and shows(px(*bird_edge), 3)
    _check(page, f"{_layer('box', 1)} input[data-class-id='2']", True)
    assert shows(px(*dog_edge), 2)
    _check(page, f"{_layer('box', 0)} .layer-toggle", False)  # ground-truth boxes off
    assert not shows(px(*gt_edge), 1) and shows(px(*dog_edge), 2)

    # on screen: the outline shows over the image (masks off)
    for i in (0, 1):
        _check(page, f"{_layer('mask', i)} .layer-toggle", False)
    _images_loaded(page, 0)
    shot = _stage_pixels(page)
    _assert_color(shot[int(dog_edge[1] * s), int(dog_edge[0] * s) + 1], PAL[2])
    _assert_color(shot[int(gt_edge[1] * s), int(gt_edge[0] * s) + 1], BASE)


def test_summary_table(page, dump_dir, index):
    rows = page.eval_on_selector_all("#summary-table tbody tr", """l => l.map(r => [r.dataset.classId || 'total',
        Array.from(r.querySelectorAll('td[data-value]')).map(td => Number(td.dataset.value))])""")
    heads = page.eval_on_selector_all("#summary-table thead tr:nth-child(2) th",
                                      "l => l.map(e => [e.dataset.kind, e.textContent])")
    assert heads == [["mask", "ground_truth"], ["mask", "prediction"],
                     ["boxes", "ground_truth"], ["boxes", "prediction"]]
    pixels = {k: {} for k in ("ground_truth", "prediction")}
    for rep in index["mask_report"]:
        for k, counts in rep.items():
            for c, n in counts.items():
                pixels[k][int(c)] = pixels[k].get(int(c), 0) + n
    boxes = {k: {} for k in ("ground_truth", "prediction")}
    for im in index["images"]:
        for k, ref in im.get("boxes", {}).items():
            with open(os.path.join(dump_dir, ref["path"]), encoding="utf-8") as f:
                for b in json.load(f)["box_data"]:
                    boxes[k][b["class_id"]] = boxes[k].get(b["class_id"], 0) + 1
    expected = [[str(c), [pixels["ground_truth"].get(c, 0), pixels["prediction"].get(c, 0),
                          boxes["ground_truth"].get(c, 0), boxes["prediction"].get(c, 0)]] for c in range(4)]
    expected.append(["total", [N * W * H, N * W * H, sum(boxes["ground_truth"].values()),
                               sum(boxes["prediction"].values())]])
    assert rows == expected
    assert rows[1][1][2] == N - 1 and rows[2][1][3] == N - 1  # one box per image, image 5 has none


def test_every_grey_value_maps_to_its_class(browser, tmp_path):
    """The SVG filter's discrete tables: mask value c (c / 255 in the filter) picks entry c, for all 256."""
    mask = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    gpu_media.write_dump(tmp_path, np.full((1, 16, 16, 3), 50, np.uint8), key="all", device="cpu",
                         masks={"m": {"mask_data": mask, "class_labels": {c: f"c{c}" for c in range(256)}}})
    viewer.write_viewer(tmp_path)
    with _open(browser, f"file://{tmp_path}/index.html") as pg:
        _set(pg, f"{_layer('mask', 0)} input.opacity", 1)
        _images_loaded(pg, 0)
        px = _stage_pixels(pg)
        assert px.shape[:2] == (256, 256)
        got = px[8::16, 8::16].reshape(256, 3)  # the centre of each 16x16 screen square
        want = np.array([PAL[c % len(PAL)] for c in range(256)])
        assert np.abs(got - want).max() <= 1, np.nonzero(np.abs(got - want).max(axis=1) > 1)[0].tolist()
        pg.evaluate("""() => document.querySelectorAll("#mask-controls input[data-class-id]")
                           .forEach(cb => { if (Number(cb.dataset.classId) % 3 === 0) cb.click(); })""")
        got = _stage_pixels(pg)[8::16, 8::16].reshape(256, 3)
        want = np.array([(50, 50, 50) if c % 3 == 0 else PAL[c % len(PAL)] for c in range(256)])
        assert np.abs(got - want).max() <= 1, np.nonzero(np.abs(got - want).max(axis=1) > 1)[0].tolist()


# ---------------------------------------------------------------- the server stays inside the dump

def _raw(port: int, target: str, host: str | None = "127.0.0.1:{port}", method: str = "GET") -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte on a socket: ``(status, body)``."""
    import socket

    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append("Host: " + host.format(port=port))
    lines += ["Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall("\r\n".join(lines).encode("latin-1"))
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    assert data.startswith(b"HTTP/1."), data[:200]
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
def confined(tmp_path):
    """A served dump with symlinks out of it, a hidden temporary file and a secret beside it."""
    root = tmp_path / "dump"
    gpu_media.write_dump(root, np.full((2, 8, 8, 3), 7, np.uint8), key="k", device="cpu")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd.txt").write_text("SECRET")
    (secret / "x.png").write_bytes(b"SECRET-PNG")
    (root / "leak.txt").symlink_to(secret / "passwd.txt")
    (root / "leakdir").symlink_to(secret)
    media = root / "media" / "images"
    (media / "x.png").symlink_to(secret / "x.png")
    (media / "inside.png").symlink_to(next(media.glob("k_*.png")))  # real path inside: served
    (root / ".index.html.123.deadbeef.tmp").write_text("partial")
    (root / "notes.tmp").write_text("partial")
    (root / "fifo").mkdir()  # a folder without index.html
    server = viewer.serve(root)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield root, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_serve_follows_no_symlink_out_of_the_dump(confined):
    root, port = confined
    first = next((root / "media" / "images").glob("k_*.png")).name
    assert _raw(port, "/media/images/" + first) == (200, (root / "media" / "images" / first).read_bytes())
    assert _raw(port, "/media/images/inside.png")[0] == 200
    for target in ("/leak.txt", "/leakdir/passwd.txt", "/leakdir/x.png", "/media/images/x.png", "/leakdir/",
                   "/fifo/", "/fifo"):
        status, body = _raw(port, target)
        assert status == 404, target
        assert b"SECRET" not in body


def test_serve_hides_dotfiles_and_temporary_files(confined):
    root, port = confined
    assert (root / ".gpu-media.lock").exists()
    for target in ("/.gpu-media.lock", "/.index.html.123.deadbeef.tmp", "/notes.tmp", "/%2egpu-media.lock",
                   "/media/../k_0.index.json", "/media/%2e%2e/k_0.index.json"):
        assert _raw(port, target)[0] == 404, target
    assert _raw(port, "/k_0.index.json")[0] == 200


def test_serve_answers_undecodable_paths_with_400(confined, capfd):
    _, port = confined
    for target in ("/index.html%00.png", "/%00", "/index.html%ff", "/%c3%28.png"):
        assert _raw(port, target)[0] == 400, target
    assert _raw(port, "/index.html", method="HEAD")[0] == 200  # the server still answers
    assert "Traceback" not in capfd.readouterr().err


def test_serve_checks_the_host_header(confined):
    """DNS rebinding: a page on attacker.example resolving to 127.0.0.1 sends its own name as Host."""
    _, port = confined
    for host in ("127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"):
        assert _raw(port, "/", host=host)[0] == 200, host
    for host in ("attacker.example", "attacker.example:{port}", "127.0.0.1", "127.0.0.1:1", "localhost.:{port}",
                 "127.0.0.1:{port}.attacker.example", ""):
        status, body = _raw(port, "/index.html", host=host)
        assert status == 421, host
        assert b"gpu-media" not in body
    assert _raw(port, "/", host=None)[0] == 400


def test_default_view_is_readable(page):
    """The first mask key on at low opacity, the others off; boxes on unless their key's mask is shown."""
    assert "ground_truth" in page.locator(_layer("mask", 0)).inner_text()
    assert "ground_truth" in page.locator(_layer("box", 0)).inner_text()
    assert page.locator(f"{_layer('mask', 0)} .layer-toggle").is_checked()
    assert not page.locator(f"{_layer('mask', 1)} .layer-toggle").is_checked()
    assert float(page.locator(f"{_layer('mask', 0)} input.opacity").input_value()) == 0.35
    assert not page.locator(f"{_layer('box', 0)} .layer-toggle").is_checked()  # ground_truth: its mask is shown
    assert page.locator(f"{_layer('box', 1)} .layer-toggle").is_checked()  # prediction: not burned in, no mask on


def test_burned_in_boxes_start_off(browser, tmp_path):
    images = np.broadcast_to(np.array(BASE, np.uint8), (2, H, W, 3)).copy()
    gpu_media.write_dump(tmp_path, images, key="k", boxes=_boxes()[:2], draw_boxes=True, device="cpu")
    with _open(browser, f"file://{tmp_path}/index.html") as pg:
        for i in (0, 1):
            assert not pg.locator(f"{_layer('box', i)} .layer-toggle").is_checked()


def test_page_is_rebuilt_from_changed_indexes_too(tmp_path):
    """The viewer reuses indexes it read before only while their file is unchanged (issue 19)."""
    import numpy as np

    import gpu_media as gm
    from gpu_media.viewer import viewer_data

    x = np.zeros((1, 4, 4, 3), np.uint8)
    gm.write_dump(tmp_path, x, key="k", step=0)
    gm.write_dump(tmp_path, x, key="k", step=1)
    assert [d["count"] for d in viewer_data(tmp_path)["dumps"]] == [1, 1]
    gm.write_dump(tmp_path, np.zeros((3, 4, 4, 3), np.uint8), key="k", step=1, overwrite=True)  # replaced
    assert [d["count"] for d in viewer_data(tmp_path)["dumps"]] == [1, 3]
    os.remove(tmp_path / "k_0.index.json")
    assert [d["step"] for d in viewer_data(tmp_path)["dumps"]] == [1]


# ---------------------------------------------------------------- the folder's data files (issue 19)

AWKWARD_KEYS = [("val/pred", 3), ("c d", "final"), ("100%", 2), (".hidden", 1), ("ü/é", 0), ("a_b", "x_y"),
                ("val/pred", 10)]


def _awkward_folder(root, keys=AWKWARD_KEYS):
    for i, (key, step) in enumerate(keys):
        gpu_media.write_dump(root, np.full((2, 6, 8, 3), 40 * i, np.uint8), key=key, step=step, device="cpu",
                             durable=False, captions=[f"{key}@{step}", None])


def _stat(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def test_a_dump_writes_its_own_data_file_and_the_list_only(tmp_path):
    """The viewer work of a dump does not grow with the dumps before it: their data files and the page stay."""
    for step in range(3):
        gpu_media.write_dump(tmp_path, np.full((1, 4, 4, 3), step, np.uint8), key="k", step=step, device="cpu")
    vdir = tmp_path / viewer.VIEWER_DIR
    before = {n: _stat(vdir / n) for n in os.listdir(vdir)}
    page = _stat(tmp_path / "index.html")
    gpu_media.write_dump(tmp_path, np.full((1, 4, 4, 3), 9, np.uint8), key="k", step=3, device="cpu")
    assert sorted(os.listdir(vdir)) == ["dumps-a.js", "dumps-b.js", "k_0.dump.js", "k_1.dump.js", "k_2.dump.js",
                                        "k_3.dump.js"]
    for n in ("k_0.dump.js", "k_1.dump.js", "k_2.dump.js"):
        assert _stat(vdir / n) == before[n], f"{n} was written again"
    assert _stat(tmp_path / "index.html") == page  # the page itself is never rewritten
    # both copies of the list rewritten (one after the other), the same
    assert all(_stat(vdir / n) != before[n] for n in viewer.LIST_FILES)
    assert (vdir / viewer.LIST_FILES[0]).read_bytes() == (vdir / viewer.LIST_FILES[1]).read_bytes()
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    assert [d["step"] for d in viewer.page_data(tmp_path)["dumps"]] == [0, 1, 2, 3]


def test_data_files_follow_overwrites_kills_and_removed_indexes(tmp_path):
    _awkward_folder(tmp_path)
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    # sorted as viewer_data sorts (key, then integer steps by value, then the others)
    assert [(d["key"], d["step"]) for d in viewer.page_data(tmp_path)["dumps"]] == sorted(
        AWKWARD_KEYS, key=lambda ks: (ks[0], (0, ks[1], "") if isinstance(ks[1], int) else (1, 0, ks[1])))
    # an overwrite without the viewer: the old data file goes with the old index ...
    name = index_name("val/pred", 3)
    gpu_media.write_dump(tmp_path, np.zeros((3, 5, 5, 3), np.uint8), key="val/pred", step=3, device="cpu",
                         overwrite=True, viewer=False)
    assert not (tmp_path / viewer.data_file(name)).exists()
    # ... and the next dump with the viewer writes it from the new one
    gpu_media.write_dump(tmp_path, np.zeros((1, 5, 5, 3), np.uint8), key="other", device="cpu")
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    assert {d["key"]: d["count"] for d in viewer.page_data(tmp_path)["dumps"] if d["step"] == 3} == {"val/pred": 3}
    # an index removed by hand leaves the list at the next update; a full rebuild removes its data file
    os.unlink(tmp_path / index_name("c d", "final"))
    gpu_media.write_dump(tmp_path, np.zeros((1, 5, 5, 3), np.uint8), key="other", step=1, device="cpu")
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    assert (tmp_path / viewer.data_file(index_name("c d", "final"))).exists()
    viewer.write_viewer(tmp_path)
    assert not (tmp_path / viewer.data_file(index_name("c d", "final"))).exists()
    # an unreadable index is listed as an error, every time, until it can be read
    (tmp_path / "broken_0.index.json").write_text("{not json")
    gpu_media.write_dump(tmp_path, np.zeros((1, 5, 5, 3), np.uint8), key="other", step=2, device="cpu")
    data = viewer.page_data(tmp_path)
    assert data == viewer.viewer_data(tmp_path) and any("broken_0.index.json" in e for e in data["errors"])
    # while one copy of the list is rewritten (removed, or half-written by a process that was killed), the other
    # is whole
    vdir = tmp_path / viewer.VIEWER_DIR
    for name in viewer.LIST_FILES:
        whole = (vdir / name).read_bytes()
        (vdir / name).unlink()  # (the two may be one file's two names: a new file, not the old one cut)
        (vdir / name).write_bytes(whole[:40])
        assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
        (vdir / name).unlink()
        assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
        (vdir / name).write_bytes(whole)
    (vdir / viewer.LIST_FILES[0]).unlink()
    gpu_media.write_dump(tmp_path, np.zeros((1, 5, 5, 3), np.uint8), key="other", step=5, device="cpu")
    assert set(viewer.LIST_FILES) <= set(os.listdir(vdir))  # both there again
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    # a missing data file is an error on the page, not a failure
    os.unlink(tmp_path / viewer.data_file(index_name("other", 2)))
    assert any("--rebuild" in e for e in viewer.page_data(tmp_path)["errors"])


@contextlib.contextmanager
def _listings(monkeypatch):
    """The folders ``os.listdir`` and ``os.scandir`` list inside the block (the real functions, counted)."""
    seen: list = []
    real_listdir, real_scandir = os.listdir, os.scandir

    def listdir(path="."):
        seen.append(os.path.realpath(os.fspath(path)))
        return real_listdir(path)

    def scandir(path="."):
        seen.append(os.path.realpath(os.fspath(path)))
        return real_scandir(path)

    with monkeypatch.context() as m:
        m.setattr(os, "listdir", listdir)
        m.setattr(os, "scandir", scandir)
        yield seen


def _dump(root, step, key="k", **kw):
    gpu_media.write_dump(root, np.full((1, 4, 4, 3), step % 251, np.uint8), key=key, step=step, device="cpu",
                         durable=False, **kw)


def test_a_dump_lists_the_folder_only_when_something_else_changed_it(tmp_path, monkeypatch):
    """A training loop's dumps into one folder do not list it (its indexes) at every step (docs/SPEC.md 6.1)."""
    root, vdir = os.path.realpath(tmp_path), os.path.realpath(tmp_path / viewer.VIEWER_DIR)
    for step in range(3):
        _dump(tmp_path, step)
    for step in (9, 4, 7):  # out of order: the list stays sorted
        with _listings(monkeypatch) as seen:
            _dump(tmp_path, step)
        assert root not in seen and vdir not in seen, seen
        assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    assert [d["step"] for d in viewer.page_data(tmp_path)["dumps"]] == [0, 1, 2, 4, 7, 9]
    # what the folder's time shows: an index without the viewer, one removed and one added by hand, one broken
    _dump(tmp_path, 10, viewer=False)
    with _listings(monkeypatch) as seen:
        _dump(tmp_path, 11)
    assert root in seen
    assert [d["step"] for d in viewer.page_data(tmp_path)["dumps"]] == [0, 1, 2, 4, 7, 9, 10, 11]
    os.unlink(tmp_path / index_name("k", 1))
    _dump(tmp_path, 12)
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    (tmp_path / index_name("copied", 0)).write_bytes((tmp_path / index_name("k", 0)).read_bytes())
    _dump(tmp_path, 13)
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    assert index_name("copied", 0) in {d["file"] for d in viewer.page_data(tmp_path)["dumps"]}
    (tmp_path / "broken_0.index.json").write_text("{not json")
    _dump(tmp_path, 14)
    data = viewer.page_data(tmp_path)
    assert data == viewer.viewer_data(tmp_path) and any("broken_0.index.json" in e for e in data["errors"])
    with _listings(monkeypatch) as seen:  # and nothing else since: the list there again, errors kept
        _dump(tmp_path, 15)
    assert root not in seen
    data = viewer.page_data(tmp_path)
    assert data == viewer.viewer_data(tmp_path) and any("broken_0.index.json" in e for e in data["errors"])
    # an overwrite of a listed index, and one of the broken index that makes it readable
    gpu_media.write_dump(tmp_path, np.zeros((3, 4, 4, 3), np.uint8), key="k", step=4, device="cpu", overwrite=True)
    gpu_media.write_dump(tmp_path, np.zeros((2, 4, 4, 3), np.uint8), key="broken", step=0, device="cpu",
                         overwrite=True)
    data = viewer.page_data(tmp_path)
    assert data == viewer.viewer_data(tmp_path) and data["errors"] == []
    assert {(d["key"], d["step"]): d["count"] for d in data["dumps"]}[("k", 4)] == 3


def test_another_process_s_dumps_join_the_list_without_a_listing(tmp_path, monkeypatch):
    """Dumps of two processes into one folder: each adds its index to the list the other made."""
    root = os.path.realpath(tmp_path)
    _dump(tmp_path, 0)
    code = ("import sys, numpy as np, gpu_media\n"
            "for step in (1, 2):\n"
            "    gpu_media.write_dump(sys.argv[1], np.zeros((1, 4, 4, 3), np.uint8), key='other', step=step,\n"
            "                         device='cpu', durable=False)\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)
    with _listings(monkeypatch) as seen:
        _dump(tmp_path, 3)
    assert root not in seen, seen
    assert [(d["key"], d["step"]) for d in viewer.page_data(tmp_path)["dumps"]] == [
        ("k", 0), ("k", 3), ("other", 1), ("other", 2)]


def test_two_processes_dumping_into_one_folder_at_once_are_all_listed(tmp_path):
    """Steps of two processes interleaved in one folder: each adds its index to the list the other just wrote."""
    code = ("import sys, numpy as np, gpu_media\n"
            "key = sys.argv[2]\n"
            "for step in range(25):\n"
            "    gpu_media.write_dump(sys.argv[1], np.full((1, 4, 4, 3), step, np.uint8), key=key, step=step,\n"
            "                         device='cpu', durable=False)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), key]) for key in ("alpha", "beta")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    data = viewer.page_data(tmp_path)
    assert data == viewer.viewer_data(tmp_path)
    assert len(data["dumps"]) == 50 and data["errors"] == []


def test_an_overwrite_killed_once_its_old_data_file_is_gone_is_repaired_by_the_next_dump(tmp_path):
    """Killed between the old data file's removal and the new index: the dead process's claim says so.

    The same dump again, by a process that dumped there before: nothing changes in the folder
    itself, so the folder's time does not show it.
    """
    _dump(tmp_path, 0)
    code = ("import os, sys, numpy as np, gpu_media\n"
            "real = os.unlink\n"
            "def unlink(path, *a, **k):\n"
            "    real(path, *a, **k)\n"
            "    if os.fspath(path).endswith('k_0.dump.js'):\n"
            "        os._exit(9)\n"
            "gpu_media.write_dump(sys.argv[1], np.ones((1, 4, 4, 3), np.uint8), key='j', step=0, device='cpu', "
            "durable=False)\n"  # (its first dump into the folder, which changes the folder: a probe file)
            "os.unlink = unlink\n"
            "gpu_media.write_dump(sys.argv[1], np.zeros((1, 4, 4, 3), np.uint8), key='k', step=0, device='cpu', "
            "durable=False, overwrite=True)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=120)
    assert proc.returncode == 9
    assert not (tmp_path / viewer.data_file(index_name("k", 0))).exists()
    _dump(tmp_path, 1)
    data = viewer.page_data(tmp_path)
    assert data == viewer.viewer_data(tmp_path)
    assert [(d["key"], d["step"]) for d in data["dumps"]] == [("j", 0), ("k", 0), ("k", 1)]


def test_an_index_write_that_fails_once_its_old_data_file_is_gone_is_repaired_by_the_next_dump(tmp_path,
                                                                                               monkeypatch):
    """The disk fails on the index after the old data file went: this process's next dump lists the folder.

    The folder itself is unchanged, so its time does not show it.
    """
    from gpu_media.dump import finish

    _dump(tmp_path, 0)
    _dump(tmp_path, 1)
    real = finish.write_atomic

    def failing(path, *a, **k):
        if os.path.basename(path) == index_name("k", 0):
            raise OSError(28, "No space left on device")
        return real(path, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(finish, "write_atomic", failing)
        with pytest.raises(OSError):
            gpu_media.write_dump(tmp_path, np.zeros((1, 4, 4, 3), np.uint8), key="k", step=0, device="cpu",
                                 durable=False, overwrite=True)
    assert not (tmp_path / viewer.data_file(index_name("k", 0))).exists()
    _dump(tmp_path, 2)
    data = viewer.page_data(tmp_path)
    assert data == viewer.viewer_data(tmp_path) and [d["step"] for d in data["dumps"]] == [0, 1, 2]


def test_the_list_is_rewritten_in_place_one_copy_after_the_other(tmp_path):
    """No new file per update; copies that are one file (an older gpu-media's link) or a link are made files."""
    vdir = tmp_path / viewer.VIEWER_DIR
    _dump(tmp_path, 0)
    inodes = {n: os.stat(vdir / n).st_ino for n in viewer.LIST_FILES}
    _dump(tmp_path, 1)
    assert {n: os.stat(vdir / n).st_ino for n in viewer.LIST_FILES} == inodes
    assert (vdir / "dumps-a.js").read_bytes() == (vdir / "dumps-b.js").read_bytes()
    _dump(tmp_path, 2)
    longer = os.path.getsize(vdir / "dumps-a.js")
    # a shorter list (two indexes removed by hand, one dump added): the copies are cut to it
    os.unlink(tmp_path / index_name("k", 1))
    os.unlink(tmp_path / index_name("k", 2))
    _dump(tmp_path, 3)
    assert os.path.getsize(vdir / "dumps-a.js") < longer
    assert (vdir / "dumps-a.js").read_bytes() == (vdir / "dumps-b.js").read_bytes()
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    assert [d["step"] for d in viewer.page_data(tmp_path)["dumps"]] == [0, 3]
    # the two names one file: dumps-b.js gets a file of its own before either is written
    os.unlink(vdir / "dumps-b.js")
    os.link(vdir / "dumps-a.js", vdir / "dumps-b.js")
    _dump(tmp_path, 4)
    assert os.stat(vdir / "dumps-a.js").st_ino != os.stat(vdir / "dumps-b.js").st_ino
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    # a symbolic link is replaced, its target left as it was
    outside = tmp_path.parent / f"{tmp_path.name}-outside.js"
    outside.write_bytes(b"keep")
    os.unlink(vdir / "dumps-a.js")
    os.symlink(outside, vdir / "dumps-a.js")
    _dump(tmp_path, 5)
    assert outside.read_bytes() == b"keep" and not os.path.islink(vdir / "dumps-a.js")
    assert viewer.page_data(tmp_path) == viewer.viewer_data(tmp_path)
    assert [d["step"] for d in viewer.page_data(tmp_path)["dumps"]] == [0, 3, 4, 5]


_KILL_AT = {
    # the index is in place and the viewer not updated: the dump's claim is left (a dead process's claim)
    "update_viewer": "gpu_media.viewer.update_viewer = lambda *a, **k: os._exit(9)\n",
    # both copies of the list written, its record in the lock file not (opened write-only for it): the
    # record names the folder's time before the killed dump's index
    "list written": ("real = os.open\n"
                     "def open_(path, flags, *a, **k):\n"
                     "    if os.path.basename(path) == '.gpu-media.lock' and not flags & os.O_RDWR:\n"
                     "        os._exit(9)\n"
                     "    return real(path, flags, *a, **k)\n"
                     "os.open = open_\n"),
}


@pytest.mark.parametrize("point", list(_KILL_AT))
def test_a_dump_killed_in_its_viewer_update_is_listed_by_the_next_one(tmp_path, point):
    """``os._exit`` at an exact point of a dump's last step; the next dump (another process) repairs the list."""
    _dump(tmp_path, 0)
    code = ("import os, sys, numpy as np, gpu_media, gpu_media.viewer\n" + _KILL_AT[point] +
            "gpu_media.write_dump(sys.argv[1], np.ones((1, 4, 4, 3), np.uint8), key='killed', step=0, "
            "device='cpu', durable=False)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=120)
    assert proc.returncode == 9
    assert (tmp_path / index_name("killed", 0)).exists()
    _dump(tmp_path, 1)
    data = viewer.page_data(tmp_path)
    assert data == viewer.viewer_data(tmp_path)
    assert [(d["key"], d["step"]) for d in data["dumps"]] == [("k", 0), ("k", 1), ("killed", 0)]


@pytest.mark.parametrize("how", ["file", "http"])
def test_page_loads_every_dump_of_awkward_names(browser, tmp_path, how):
    """Keys with /, %, spaces, a leading dot and non-ASCII: the page loads each data file, from disk and served."""
    # (served, the images of a key with a leading dot are hidden files, which serve() refuses)
    keys = AWKWARD_KEYS if how == "file" else [ks for ks in AWKWARD_KEYS if not ks[0].startswith(".")]
    _awkward_folder(tmp_path, keys)
    if how == "file":
        url = f"file://{tmp_path}/index.html"
    else:
        server = viewer.serve(tmp_path)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    try:
        with _open(browser, url) as pg:
            got = pg.evaluate("() => window.gpuMediaViewer.data")
    finally:
        if how == "http":
            server.shutdown()
            server.server_close()
    assert got == viewer.viewer_data(tmp_path)
    assert len(got["dumps"]) == len(keys) and not got["errors"]
