"""The ``gpu-media`` command: ``dump`` of an .npz and the bundled ``demo``.

Pixels are checked against docs/SPEC.md 2 / docs/SPEC.md 4 as written in ``spec_reference``; the
.npz inputs are built here in the format documented by ``gpu_media.cli.NPZ_HELP``.
"""

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from importlib import metadata, resources

import numpy as np
import pytest
from PIL import Image

import gpu_media as gm
from gpu_media import cli, viewer
from media_helpers import decode_image, hwc, read_rel
from spec_reference import draw_reference, normalize_image

LABELS = {0: "background", 1: "car", 2: "road"}


# --------------------------------------------------------------------------- helpers


def make_npz(path, **entries):
    np.savez(path, **entries)
    return str(path)


def run_cli(capsys, *argv):
    """``cli.main`` in-process: (exit status, stderr).

    stdout is not returned: the summary goes to the ``sys.stdout`` of import time (see
    test_summary_goes_to_current_stdout); summaries are checked through ``run_dump(stream=)``
    and a subprocess instead.
    """
    rc = cli.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def load_index(out_dir, key, step):
    path = os.path.join(str(out_dir), f"{key}_{step}.index.json")
    assert os.path.isfile(path), os.listdir(str(out_dir))
    with open(path, "rb") as f:
        return json.loads(f.read())


def read(out_dir, rel) -> bytes:
    return read_rel(out_dir, rel)


def checked_file(out_dir, entry) -> bytes:
    """The bytes of an index entry's file, after checking its sha256, size and name."""
    data = read(out_dir, entry["path"])
    sha = hashlib.sha256(data).hexdigest()
    assert entry["sha256"] == sha
    assert entry["size"] == len(data)
    assert sha[:20] in os.path.basename(entry["path"])
    return data


def all_files(out_dir):
    return sorted(os.path.relpath(os.path.join(d, f), str(out_dir))
                  for d, _, fs in os.walk(str(out_dir)) for f in fs)


def _float_batch(n=3, h=10, w=14, seed=0):
    rng = np.random.default_rng(seed)
    imgs = np.empty((n, h, w, 3), dtype=np.float32)
    imgs[0] = rng.random((h, w, 3))  # [0, 1]
    imgs[1] = rng.random((h, w, 3)) * 2 - 1  # [-1, 1]
    imgs[2] = rng.random((h, w, 3)) * 400 - 60  # clip
    return imgs


def _boxes_for_image(npz, key, i):
    sel = np.flatnonzero(npz[f"boxes__{key}__image_index"] == i)
    xyxy = npz[f"boxes__{key}__xyxy"][sel].astype(np.float64)
    cid = npz[f"boxes__{key}__class_id"][sel]
    return [(float(a), float(b), float(c), float(d), int(k)) for (a, b, c, d), k in zip(xyxy, cid)]


# --------------------------------------------------------------------------- dump


def test_dump_summary_index_and_pixels(device, tmp_path, capsys):
    n, h, w = 3, 10, 14
    images = _float_batch(n, h, w)
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 3, size=(n, h, w)).astype(np.uint8)
    gt = np.zeros((n, h, w), dtype=np.int32)
    gt[:, :, w // 2:] = 2
    xyxy = np.array([[1, 1, 8, 6], [0, 0, 14, 10], [2.5, 3, 9, 7.5], [4, 2, 6, 9]], dtype=np.float32)
    img_idx = np.array([0, 2, 2, 0])
    cls_id = np.array([1, 2, 1, 2])
    score = np.array([0.5, 0.75, 0.125, 1.0], dtype=np.float32)
    captions = np.array(["zero", "one", "two"])
    inp = make_npz(tmp_path / "in.npz", images=images, masks__pred=pred, masks__gt=gt,
                   boxes__det__xyxy=xyxy, boxes__det__image_index=img_idx, boxes__det__class_id=cls_id,
                   boxes__det__score=score, class_labels=np.array(json.dumps({str(k): v for k, v in LABELS.items()})),
                   captions=captions)
    out = tmp_path / "out"
    rc, err = run_cli(capsys, "dump", inp, out, "--key", "val", "--step", 5, "--device", device)
    assert rc == 0, err

    # the summary: counts of images, masks (one per image and key) and boxes; the same dump again
    # through run_dump (what main calls) into another folder gives the same index
    buf = io.StringIO()
    out2 = tmp_path / "out2"
    summary = cli.run_dump(inp, str(out2), key="val", step=5, file_type="png", quality=75, draw_boxes=False,
                           device=device, stream=buf)
    lines = buf.getvalue().strip().splitlines()
    assert lines[0].startswith(f"wrote 3 images, 6 masks (gt, pred) and 4 boxes (det) to {os.path.abspath(out2)} in ")
    assert lines[1] == f"index: {os.path.abspath(out2 / 'val_5.index.json')}"
    assert (summary["images"], summary["masks"], summary["boxes"]) == (3, 6, 4)
    assert (summary["mask_keys"], summary["box_keys"]) == (["gt", "pred"], ["det"])
    assert read(out2, "val_5.index.json") == read(out, "val_5.index.json")

    index = load_index(out, "val", 5)
    assert index["count"] == 3 and index["key"] == "val" and index["step"] == 5
    assert index["boxes_drawn"] is False
    assert index["mask_class_labels"]["pred"] == {str(k): v for k, v in LABELS.items()}
    assert index["mask_class_labels"]["gt"] == {str(k): v for k, v in LABELS.items()}  # from class_labels
    assert [d.get("caption") for d in index["images"]] == ["zero", "one", "two"]
    sep = index["separated"]
    assert sep["_type"] == "images/separated" and sep["count"] == 3
    assert sep["filenames"] == [d["path"] for d in index["images"]]
    assert sep["captions"] == ["zero", "one", "two"]

    for i, entry in enumerate(index["images"]):
        assert entry["_type"] == "image-file"
        assert (entry["format"], entry["width"], entry["height"]) == ("png", w, h)
        assert entry["path"].startswith("media/images/val_5_") and entry["path"].endswith(".png")
        got = decode_image(checked_file(out, entry))
        np.testing.assert_array_equal(got, normalize_image(images[i]))  # docs/SPEC.md 2, no boxes drawn
        assert set(entry["masks"]) == {"pred", "gt"}
        for key, want in (("pred", pred[i]), ("gt", gt[i])):
            m = entry["masks"][key]
            assert m["_type"] == "mask"
            assert m["path"].startswith("media/images/mask/") and m["path"].endswith(".mask.png")
            data = checked_file(out, m)
            with Image.open(io.BytesIO(data)) as im:
                assert im.mode == "L"
            np.testing.assert_array_equal(decode_image(data), want.astype(np.uint8))
        rows = np.flatnonzero(img_idx == i)
        if len(rows) == 0:
            assert not entry.get("boxes")
            continue
        b = entry["boxes"]["det"]
        assert b["_type"] == "boxes2D"
        assert b["path"].startswith("media/metadata/boxes2D/") and b["path"].endswith(".boxes2D.json")
        doc = json.loads(checked_file(out, b))
        assert len(doc["box_data"]) == len(rows)
        for box, j in zip(doc["box_data"], rows):
            x0, y0, x1, y1 = (float(v) for v in xyxy[j])
            assert box["position"] == pytest.approx({"minX": x0, "maxX": x1, "minY": y0, "maxY": y1})
            assert box["domain"] == "pixel"
            assert box["class_id"] == cls_id[j]
            assert box["scores"] == pytest.approx({"score": float(score[j])})
        assert {int(k): v for k, v in doc["class_labels"].items()} == LABELS
    assert not index["images"][1].get("boxes")


@pytest.mark.parametrize("layout,shape", [("NCHW", (2, 3, 7, 9)), ("NCHW", (2, 4, 7, 9)), ("NHW", (2, 7, 9)),
                                          (None, (2, 7, 9, 3))])
def test_dump_layouts(device, tmp_path, capsys, layout, shape):
    rng = np.random.default_rng(3)
    images = (rng.random(shape) * 2 - 1).astype(np.float64)  # [-1, 1] -> trunc((x + 1) * 127.5)
    images[1] *= 0.5
    images[1] += 0.5  # image 1 in [0, 1]: ranges are per image
    entries = {"images": images}
    if layout is not None:
        entries["layout"] = np.array(layout)
    inp = make_npz(tmp_path / "in.npz", **entries)
    out = tmp_path / "out"
    rc, err = run_cli(capsys, "dump", inp, out, "--device", device)
    assert rc == 0, err
    index = load_index(out, "images", 0)
    assert index["count"] == 2
    for i, entry in enumerate(index["images"]):
        img = images[i]
        if layout == "NCHW":
            img = img.transpose(1, 2, 0)
        elif layout == "NHW":
            img = img[:, :, None]
        want = normalize_image(img)
        assert (entry["width"], entry["height"]) == (9, 7)
        data = checked_file(out, entry)
        with Image.open(io.BytesIO(data)) as im:
            assert im.mode == {1: "L", 3: "RGB", 4: "RGBA"}[want.shape[2]]
        np.testing.assert_array_equal(hwc(decode_image(data)), want)


@pytest.mark.parametrize("fmt", ["jpg", "jpeg"])
def test_dump_jpeg(device, tmp_path, capsys, fmt):
    h, w = 24, 40
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 6, yy * 10, (xx + yy) * 4], axis=-1).astype(np.uint8)
    images = np.stack([base, base[:, ::-1]])
    inp = make_npz(tmp_path / "in.npz", images=images)
    out = tmp_path / "out"
    rc, err = run_cli(capsys, "dump", inp, out, "--format", fmt, "--device", device)
    assert rc == 0, err
    index = load_index(out, "images", 0)
    for i, entry in enumerate(index["images"]):
        assert entry["format"] == fmt
        assert entry["path"].endswith("." + fmt)
        data = checked_file(out, entry)
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (w, h))
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, format="JPEG", quality=75)  # docs/SPEC.md 5: default quality 75
        ref = decode_image(buf.getvalue()).astype(np.float64)
        assert np.abs(decode_image(data).astype(np.float64) - ref).mean() <= 2.0
    assert not [f for f in all_files(out) if f.endswith(".png")]


@pytest.mark.parametrize("channels", [3, 1])
def test_dump_draw_boxes(device, tmp_path, capsys, channels):
    n, h, w = 2, 20, 24
    rng = np.random.default_rng(5)
    shape = (n, h, w, 3) if channels == 3 else (n, h, w)
    images = rng.integers(0, 256, size=shape, dtype=np.uint8)
    # two keys, given as "zeta" before "alpha": the CLI reads entries sorted, so "alpha" is drawn
    # first and "zeta" wins where they overlap (docs/SPEC.md 4 step 5); fractional coordinates round half to even
    entries = {
        "images": images,
        "boxes__zeta__xyxy": np.array([[2, 2, 12, 10], [5.5, 4.5, 20.5, 17.5], [0, 0, 24, 20]], np.float32),
        "boxes__zeta__image_index": np.array([0, 0, 1]),
        "boxes__zeta__class_id": np.array([3, 21, 7]),
        "boxes__alpha__xyxy": np.array([[1, 1, 11, 11], [6, 3, 18, 15], [2.5, 2.5, 9.5, 9.5]], np.float32),
        "boxes__alpha__image_index": np.array([0, 1, 1]),
        "boxes__alpha__class_id": np.array([0, 4, 12]),
    }
    inp = make_npz(tmp_path / "in.npz", **entries)
    out = tmp_path / "out"
    rc, err = run_cli(capsys, "dump", inp, out, "--draw-boxes", "--device", device)
    assert rc == 0, err
    index = load_index(out, "images", 0)
    assert index["boxes_drawn"] is True
    z = np.load(inp)
    for i, entry in enumerate(index["images"]):
        base = normalize_image(hwc(images[i]))
        boxes = _boxes_for_image(z, "alpha", i) + _boxes_for_image(z, "zeta", i)
        want = draw_reference(base, boxes, 2, None)
        data = checked_file(out, entry)
        with Image.open(io.BytesIO(data)) as im:
            assert im.mode == "RGB"  # "L" becomes "RGB" when boxes are drawn
        got = decode_image(data)
        np.testing.assert_array_equal(got, want)
        assert (got != np.repeat(base, 3, axis=2) if channels == 1 else got != base).any()


def _bad_entries(kind, n=3, h=6, w=8):
    images = np.random.default_rng(9).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    if kind == "mask300":
        m = np.zeros((n, h, w), np.uint16)
        m[2, 1, 1] = 300
        return {"images": images, "masks__seg": m}, ["image 2", "'seg'", "300"], gm.MaskError
    if kind == "mask_shape":
        return {"images": images, "masks__seg": np.zeros((n, h, w + 1), np.uint8)}, ["image 0", "'seg'"], gm.MaskError
    if kind == "box_nan":
        return ({"images": images, "boxes__det__xyxy": np.array([[0, 0, 2, 2], [1, np.nan, 3, 4]], np.float32),
                 "boxes__det__image_index": np.array([0, 1]), "boxes__det__class_id": np.array([1, 1])},
                ["image 1", "'det'", "box 1"], gm.BoxError)
    if kind == "box_min_gt_max":
        return ({"images": images, "boxes__det__xyxy": np.array([[5, 0, 2, 2]], np.float32),
                 "boxes__det__image_index": np.array([0]), "boxes__det__class_id": np.array([1])},
                ["image 0", "'det'", "box 0"], gm.BoxError)
    if kind == "captions":
        return {"images": images, "captions": np.array(["a", "b"])}, ["2", "3", "caption"], gm.MediaError
    if kind == "no_images":
        return {"imgs": images}, ["'images'"], gm.MediaError
    if kind == "unknown_entry":
        return {"images": images, "extra": np.zeros(3)}, ["'extra'"], gm.MediaError
    if kind == "unknown_box_field":
        return ({"images": images, "boxes__det__xyxy": np.zeros((1, 4), np.float32),
                 "boxes__det__image_index": np.array([0]), "boxes__det__colour": np.array([1])},
                ["'boxes__det__colour'"], gm.MediaError)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["mask300", "mask_shape", "box_nan", "box_min_gt_max", "captions", "no_images",
                                  "unknown_entry", "unknown_box_field"])
def test_dump_bad_input_exits_2_and_writes_nothing(device, tmp_path, capsys, kind):
    entries, words, exc = _bad_entries(kind)
    inp = make_npz(tmp_path / "in.npz", **entries)
    out = tmp_path / "out"
    rc, err = run_cli(capsys, "dump", inp, out, "--device", device)
    assert rc == 2
    assert err.startswith("gpu-media: error: ")
    for word in words:
        assert word in err
    assert not out.exists()  # validated in full before the out dir is even created
    # the message is the library's own: the same call through the API raises it
    kwargs = cli.load_npz(inp) if kind not in ("no_images", "unknown_entry", "unknown_box_field") else None
    if kwargs is not None:
        with pytest.raises(exc) as info:
            gm.write_dump(tmp_path / "api", kwargs.pop("images"), key="images", device=device, **kwargs)
        assert err.strip() == f"gpu-media: error: {info.value}"
        assert not (tmp_path / "api").exists()


def test_dump_unreadable_input_exits_2(device, tmp_path, capsys):
    bad = tmp_path / "not.npz"
    bad.write_bytes(b"this is not a zip file")
    out = tmp_path / "out"
    rc, err = run_cli(capsys, "dump", bad, out, "--device", device)
    assert rc == 2
    assert err.startswith("gpu-media: error: ") and str(bad) in err
    assert not out.exists()


def test_dump_help_documents_npz_format(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["dump", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for entry in ("images", "layout", "masks__<key>", "boxes__<key>__xyxy", "class_labels", "captions"):
        assert entry in out


# --------------------------------------------------------------------------- demo


def _demo_npz():
    path = resources.files("gpu_media.demo").joinpath("demo.npz")
    with np.load(str(path), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_demo_pixels_masks_and_summary(device, tmp_path, capsys):
    z = _demo_npz()
    images = z["images"]
    n = images.shape[0]
    box_keys = sorted(k.split("__")[1] for k in z if k.startswith("boxes__") and k.endswith("__xyxy"))
    mask_keys = sorted(k.split("__")[1] for k in z if k.startswith("masks__"))
    assert box_keys and mask_keys
    out = tmp_path / "demo-out"
    rc, err = run_cli(capsys, "demo", out, "--device", device)
    assert rc == 0, err
    index = load_index(out, "demo", 0)
    assert index["count"] == n and index["boxes_drawn"] is True
    labels = {str(k): v for k, v in json.loads(str(z["class_labels"])).items()}
    captions = [str(c) for c in z["captions"]]
    assert [d["caption"] for d in index["images"]] == captions
    for key in mask_keys:
        assert index["mask_class_labels"][key] == labels

    # every mask: 8-bit grayscale PNG whose pixels are the npz's class ids
    for i, entry in enumerate(index["images"]):
        assert set(entry["masks"]) == set(mask_keys)
        for key in mask_keys:
            np.testing.assert_array_equal(decode_image(checked_file(out, entry["masks"][key])), z[f"masks__{key}"][i])

    # docs/SPEC.md 2 + docs/SPEC.md 4 pixels for the two images with the fewest boxes (the reference is per pixel)
    per_image = [sum(int((z[f"boxes__{k}__image_index"] == i).sum()) for k in box_keys) for i in range(n)]
    for i in sorted(range(n), key=lambda i: per_image[i])[:2]:
        boxes = [b for k in box_keys for b in _boxes_for_image(z, k, i)]  # keys in sorted order, as the CLI reads
        assert boxes
        want = draw_reference(normalize_image(hwc(images[i])), boxes, 2, None)
        got = decode_image(checked_file(out, index["images"][i]))
        np.testing.assert_array_equal(got, want)


def test_demo_no_draw_boxes_keeps_photographs(device, tmp_path, capsys):
    z = _demo_npz()
    out = tmp_path / "plain"
    rc, err = run_cli(capsys, "demo", out, "--no-draw-boxes", "--key", "photos", "--step", 2, "--device", device)
    assert rc == 0, err
    index = load_index(out, "photos", 2)
    assert index["boxes_drawn"] is False
    for i in (0, len(index["images"]) - 1):
        got = decode_image(checked_file(out, index["images"][i]))
        np.testing.assert_array_equal(hwc(got), normalize_image(hwc(z["images"][i])))


def test_demo_twice_gives_identical_index(device, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli(capsys, "demo", a, "--device", device)[0] == 0
    first = read(a, "demo_0.index.json")
    files_first = all_files(a)
    assert run_cli(capsys, "demo", a, "--device", device, "--overwrite")[0] == 0  # again, into the same folder
    assert read(a, "demo_0.index.json") == first
    assert all_files(a) == files_first  # content-addressed: no new or temporary files
    assert run_cli(capsys, "demo", b, "--device", device)[0] == 0  # and into a fresh one
    assert read(b, "demo_0.index.json") == first
    assert all_files(b) == files_first


# --------------------------------------------------------------------------- entry point


def test_summary_goes_to_current_stdout(device, tmp_path):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["demo", str(tmp_path / "o"), "--device", device])
    assert rc == 0
    n = len(_demo_npz()["images"])
    assert buf.getvalue().startswith(f"wrote {n} images, ")


def test_console_script_entry_point():
    eps = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "gpu-media"]
    assert len(eps) == 1
    assert eps[0].value == "gpu_media.cli:main"
    assert eps[0].load() is cli.main


def _env():
    env = dict(os.environ)
    env.pop("GPU_MEDIA_DEVICE", None)
    return env


def test_cli_subprocess(device, tmp_path):
    out = tmp_path / "sub"
    proc = subprocess.run([sys.executable, "-m", "gpu_media.cli", "demo", str(out), "--device", device],
                          capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr
    z = _demo_npz()
    n = len(z["images"])
    box_keys = sorted(k.split("__")[1] for k in z if k.startswith("boxes__") and k.endswith("__xyxy"))
    mask_keys = sorted(k.split("__")[1] for k in z if k.startswith("masks__"))
    n_boxes = sum(len(z[f"boxes__{k}__xyxy"]) for k in box_keys)
    assert proc.stdout.startswith(f"wrote {n} images, {n * len(mask_keys)} masks ({', '.join(mask_keys)}) and "
                                  f"{n_boxes} boxes ({', '.join(box_keys)}) to {os.path.abspath(out)} in ")
    assert f"index: {os.path.abspath(out / 'demo_0.index.json')}" in proc.stdout
    assert load_index(out, "demo", 0)["count"] == n

    # the installed console script, when it sits beside this interpreter
    script = os.path.join(os.path.dirname(sys.executable), "gpu-media")
    if os.path.isfile(script):
        bad = make_npz(tmp_path / "bad.npz", images=np.zeros((2, 4, 4, 3), np.uint8), captions=np.array(["x"]))
        proc = subprocess.run([script, "dump", bad, str(tmp_path / "never"), "--device", device],
                              capture_output=True, text=True, timeout=300, env=_env())
        assert proc.returncode == 2
        assert proc.stderr.startswith("gpu-media: error: ") and "captions" in proc.stderr
        assert not (tmp_path / "never").exists()


def test_view_command_serves_the_dump(tmp_path):
    """``gpu-media view OUT_DIR``: prints a 127.0.0.1 URL that serves the dump's page and files."""
    import urllib.request

    out = tmp_path / "d"
    assert cli.main(["demo", str(out), "--device", "cpu"]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "gpu_media.cli", "view", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/index.html"), url
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.read().decode() == viewer.static_page()
        base = url.rsplit("/", 1)[0]
        for name in viewer.LIST_FILES:  # the page's list of dumps (two copies)
            with urllib.request.urlopen(f"{base}/viewer/{name}", timeout=10) as r:
                assert viewer.parse_data_js(r.read())["files"] == ["demo_0.index.json"]
        with urllib.request.urlopen(base + "/" + viewer.data_file("demo_0.index.json"), timeout=10) as r:
            assert viewer.parse_data_js(r.read())["dump"]["count"] == 8
        entry = load_index(out, "demo", 0)["images"][0]
        with urllib.request.urlopen(url.rsplit("/", 1)[0] + "/" + entry["path"], timeout=10) as r:
            assert r.read() == read(out, entry["path"])
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    rc = subprocess.run([sys.executable, "-m", "gpu_media.cli", "view", str(tmp_path / "missing")],
                        capture_output=True, text=True, timeout=30)
    assert rc.returncode == 2 and "error" in rc.stderr
