"""``gpu_media.to_wandb`` logged through a real wandb 0.31 run in offline mode.

Every test checks what wandb actually recorded: the files in the offline run's
``files/`` folder and the history / config records in its ``run-*.wandb`` log.
Expected pixels come from docs/SPEC.md 2 (``spec_reference``) or from plain ``wandb.Image``
on the same uint8 pixels, never from gpu_media's own output.
"""

import contextlib
import glob
import hashlib
import io
import json
import os
import signal
import struct
import sys
import time

import numpy as np
import pytest

wandb = pytest.importorskip("wandb")

from PIL import Image  # noqa: E402

import gpu_media as gm  # noqa: E402
from gpu_media import wandb_compat  # noqa: E402
from media_helpers import decode_image, host, hwc, read_rel  # noqa: E402
from spec_reference import normalize_image  # noqa: E402

RUN_TIMEOUT_S = 90  # a wandb test that takes longer than this is hung, not slow


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _offline_wandb(tmp_path, monkeypatch):
    """Offline, silent wandb that writes only under tmp_path; a watchdog against hangs."""
    home = tmp_path / "wandb-home"
    home.mkdir()
    env = {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_INIT_TIMEOUT": "60",
        "WANDB_DIR": str(tmp_path),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_DATA_DIR": str(home / "data"),
        "WANDB_ARTIFACT_DIR": str(home / "artifacts"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    def _hung(signum, frame):
        raise TimeoutError(f"wandb test ran past {RUN_TIMEOUT_S} s (hung on the wandb service?)")

    if not hasattr(signal, "SIGALRM"):  # no watchdog where there is no SIGALRM
        yield
        return
    old = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(RUN_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def offline_run(tmp_path):
    settings = wandb.Settings(
        mode="offline",
        silent=True,
        console="off",
        disable_git=True,
        disable_code=True,
        save_code=False,
        x_disable_stats=True,
        x_disable_meta=True,
        x_disable_machine_info=True,
        x_disable_viewer=True,
        x_save_requirements=False,
        init_timeout=60,
    )
    run = wandb.init(mode="offline", dir=str(tmp_path), project="gpu-media-tests", settings=settings)
    try:
        yield run
    finally:
        run.finish()
        # the wandb-core service may still hold the run's records in its buffers after
        # finish(); shutting it down flushes them (the next wandb.init starts a new one)
        wandb.teardown()


def run_dir(tmp_path) -> str:
    dirs = glob.glob(os.path.join(str(tmp_path), "wandb", "offline-run-*"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def _log_records(path):
    """The records of a wandb ``.wandb`` file (LevelDB log format, 32 KiB blocks)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b":W&B", data[:7]
    i, buf, out = 7, b"", []
    while i + 7 <= len(data):
        left = 32768 - i % 32768
        if left < 7:
            i += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[i:i + 7])
        i += 7
        if (kind == 0 and length == 0) or i + length > len(data):
            break  # padding, or a record still being written
        chunk = data[i:i + length]
        i += length
        if kind == 1:  # full
            out.append(chunk)
        elif kind == 2:  # first
            buf = chunk
        elif kind == 3:  # middle
            buf += chunk
        elif kind == 4:  # last
            out.append(buf + chunk)
            buf = b""
    return out


def recorded(tmp_path):
    """(history rows as nested dicts, the last ``_wandb`` config) of the offline run."""
    from wandb.proto import wandb_internal_pb2 as pb

    files = glob.glob(os.path.join(run_dir(tmp_path), "run-*.wandb"))
    assert len(files) == 1, files
    deadline = time.monotonic() + 15
    while True:  # the run's log is complete once its "exit" record is on disk
        records = []
        for raw in _log_records(files[0]):
            rec = pb.Record()
            rec.ParseFromString(raw)
            records.append(rec)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        assert time.monotonic() < deadline, f"{files[0]}: no exit record after finish()"
        time.sleep(0.1)
    rows, wandb_config = [], {}
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            row = {}
            for item in rec.history.item:
                path = list(item.nested_key) or [item.key]
                d = row
                for p in path[:-1]:
                    d = d.setdefault(p, {})
                d[path[-1]] = json.loads(item.value_json)
            rows.append(row)
        elif kind == "config":
            for item in rec.config.update:
                path = list(item.nested_key) or [item.key]
                if path == ["_wandb"]:
                    wandb_config = json.loads(item.value_json)
    return rows, wandb_config


def logged(rows, key):
    found = [r[key] for r in rows if key in r]
    assert len(found) == 1, f"{key!r} logged {len(found)} times"
    return found[0]


def files_dir(tmp_path) -> str:
    return os.path.join(run_dir(tmp_path), "files")


def read(tmp_path, rel) -> bytes:
    return read_rel(files_dir(tmp_path), rel)


def media_files(tmp_path):
    root = os.path.join(files_dir(tmp_path), "media")
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def _batch(n=3, h=12, w=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    pred = rng.integers(0, 3, size=(n, h, w)).astype(np.uint8)
    gt = np.zeros((n, h, w), dtype=np.int64)
    gt[:, h // 2:, :] = 7
    return images, pred, gt


LABELS = {0: "background", 1: "car", 2: "road"}


# --------------------------------------------------------------------------- tests


def test_log_batch_with_masks_boxes_captions(device, tmp_path):
    images, pred, gt = _batch()
    images_f = images.astype(np.float32) / 255.0  # [0,1] floats: docs/SPEC.md 2's first row
    xyxy = np.array([[1, 2, 10, 11], [0.5, 0, 16, 6.5], [3, 3, 4, 4], [2, 1, 14, 9]], dtype=np.float64)
    box_img = np.array([0, 0, 2, 2])
    box_cls = np.array([1, 2, 2, 1])
    score = np.array([0.9, 0.25, 0.5, 1.0])
    masks = {"pred": {"mask_data": pred, "class_labels": LABELS}, "gt": {"mask_data": gt}}
    boxes = {"det": {"xyxy": xyxy, "image_index": box_img, "class_id": box_cls, "scores": {"score": score},
                     "class_labels": LABELS}}
    captions = ["first", "second", "third"]
    expected = host(gm.normalize(images_f, device=device))
    assert expected.shape == (3, 12, 16, 3)

    with offline_run(tmp_path) as run:
        imgs = gm.to_wandb(images_f, masks=masks, boxes=boxes, captions=captions, device=device)
        assert isinstance(imgs, list) and len(imgs) == 3
        assert all(isinstance(im, wandb.Image) for im in imgs)
        run.log({"val": imgs}, step=3)
    rows, cfg = recorded(tmp_path)
    val = logged(rows, "val")

    assert val["_type"] == "images/separated"
    assert (val["count"], val["width"], val["height"], val["format"]) == (3, 16, 12, "png")
    assert val["captions"] == captions

    # images: present, lossless, exactly docs/SPEC.md 2 pixels, content-addressed by their sha256
    assert len(val["filenames"]) == 3
    for i, rel in enumerate(val["filenames"]):
        assert rel.startswith("media/images/") and rel.endswith(".png")
        data = read(tmp_path, rel)
        sha = hashlib.sha256(data).hexdigest()
        assert sha[:20] in os.path.basename(rel)
        assert imgs[i]._sha256 == sha
        assert imgs[i]._size == len(data)
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (16, 12))
        np.testing.assert_array_equal(decode_image(data), expected[i])
        np.testing.assert_array_equal(decode_image(data), normalize_image(images_f[i]))

    # masks: one file per image and key, 8-bit grayscale, pixel = class id
    assert len(val["all_masks"]) == 3
    for i, per in enumerate(val["all_masks"]):
        assert set(per) == {"pred", "gt"}
        for key, want in (("pred", pred[i]), ("gt", gt[i])):
            entry = per[key]
            assert entry["_type"] == "mask"
            assert entry["path"].startswith("media/images/mask/")
            data = read(tmp_path, entry["path"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert len(data) == entry["size"]
            with Image.open(io.BytesIO(data)) as im:
                assert (im.format, im.mode) == ("PNG", "L")
            np.testing.assert_array_equal(decode_image(data), want.astype(np.uint8))

    # boxes: only images 0 and 2 have boxes; their boxes2D JSON holds them in order
    boxes_logged = val["all_boxes"]
    assert len(boxes_logged) == 3
    assert not boxes_logged[1]
    for i in (0, 2):
        entry = boxes_logged[i]["det"]
        assert entry["_type"] == "boxes2D"
        assert entry["path"].startswith("media/metadata/boxes2D/") and entry["path"].endswith(".boxes2D.json")
        data = read(tmp_path, entry["path"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["size"]
        doc = json.loads(data)
        rows_i = np.flatnonzero(box_img == i)
        assert len(doc["box_data"]) == len(rows_i)
        for box, j in zip(doc["box_data"], rows_i):
            x0, y0, x1, y1 = xyxy[j]
            assert box["position"] == pytest.approx({"minX": x0, "maxX": x1, "minY": y0, "maxY": y1})
            assert box["domain"] == "pixel"
            assert box["class_id"] == box_cls[j]
            assert box["scores"] == pytest.approx({"score": score[j]})
        assert {int(k): v for k, v in doc["class_labels"].items()} == LABELS

    # class labels reach wandb: the run's config singletons, and each wandb.Image's classes
    mask_labels = cfg["mask/class_labels"]
    assert mask_labels["val_wandb_delimeter_pred"]["value"] == {str(k): v for k, v in LABELS.items()}
    # no labels given: wandb's default {c: "class_<c>"} for the values present
    assert mask_labels["val_wandb_delimeter_gt"]["value"] == {"0": "class_0", "7": "class_7"}
    box_labels = cfg["bounding_box/class_labels"]
    assert box_labels["val_wandb_delimeter_det"]["value"] == {str(k): v for k, v in LABELS.items()}
    for im in imgs:
        # wandb merges every key's labels into one Classes (later keys overwrite names): check the ids
        assert {c["id"] for c in im._classes._class_set} == {0, 1, 2, 7}
        assert im._masks["pred"]._val["class_labels"] == LABELS


@pytest.mark.parametrize("channels", [3, 1, 4])
def test_same_bytes_as_plain_wandb_image(device, tmp_path, channels):
    rng = np.random.default_rng(channels)
    shape = (4, 10, 13) if channels == 1 else (4, 10, 13, channels)
    batch = rng.integers(0, 256, size=shape, dtype=np.uint8)
    masks = rng.integers(0, 5, size=(4, 10, 13)).astype(np.uint8)
    with offline_run(tmp_path) as run:
        # compression_level=6 is Pillow's default, what wandb.Image writes
        ours = gm.to_wandb(batch, masks={"m": {"mask_data": masks}}, compression_level=6, device=device)
        run.log({"ours": ours}, step=0)
        # wandb 0.31 does not normalize: uint8 in, the same pixels out
        plain = [wandb.Image(batch[i], masks={"m": {"mask_data": masks[i]}}) for i in range(4)]
        run.log({"plain": plain}, step=1)
    rows, _ = recorded(tmp_path)
    a, b = logged(rows, "ours"), logged(rows, "plain")
    assert (a["count"], a["width"], a["height"], a["format"]) == (b["count"], b["width"], b["height"], b["format"])
    for i, (ra, rb) in enumerate(zip(a["filenames"], b["filenames"])):
        da, db = read(tmp_path, ra), read(tmp_path, rb)
        np.testing.assert_array_equal(hwc(decode_image(da)), hwc(decode_image(db)))
        np.testing.assert_array_equal(hwc(decode_image(da)), hwc(batch[i]))
        if device == "cpu":
            # at level 6 the CPU backend encodes as wandb does (Pillow's PNG defaults): same bytes, sha256
            # and so the same content-addressed name. docs/SPEC.md 5 promises GPU PNGs only the pixels.
            assert da == db
            assert os.path.basename(ra).split("_", 1)[1] == os.path.basename(rb).split("_", 1)[1]
        ma, mb = a["all_masks"][i]["m"], b["all_masks"][i]["m"]
        np.testing.assert_array_equal(decode_image(read(tmp_path, ma["path"])),
                                      decode_image(read(tmp_path, mb["path"])))
        np.testing.assert_array_equal(decode_image(read(tmp_path, ma["path"])), masks[i])
        if device == "cpu":
            assert (ma["sha256"], ma["size"]) == (mb["sha256"], mb["size"])


def test_mask_files_named_like_wandb(device, tmp_path):
    # wandb names mask files <key>_<step>_<sha[:20]>.mask.png (docs/SPEC.md 6, reference README); a mask
    # handed over by path gets only os.path.splitext's ".png" unless its extension is set
    images, pred, _ = _batch(n=2)
    with offline_run(tmp_path) as run:
        run.log({"ours": gm.to_wandb(images, masks={"pred": {"mask_data": pred}}, device=device)}, step=0)
        run.log({"plain": [wandb.Image(images[i], masks={"pred": {"mask_data": pred[i]}}) for i in range(2)]}, step=1)
    rows, _ = recorded(tmp_path)
    plain_paths = [m["pred"]["path"] for m in logged(rows, "plain")["all_masks"]]
    assert all(p.endswith(".mask.png") for p in plain_paths)  # what wandb itself writes
    for m in logged(rows, "ours")["all_masks"]:
        assert m["pred"]["path"].startswith("media/images/mask/")
        assert m["pred"]["path"].endswith(".mask.png"), m["pred"]["path"]


def test_path_masks_logged_as_wandb_logs_them(device, tmp_path):
    # {"path": file}: the file's bytes and last extension, no labels (docs/SPEC.md 3), as wandb's own ImageMask
    images, pred, _ = _batch(n=2)
    paths = []
    for i, ext in enumerate((".mask.png", ".bmp")):
        paths.append(str(tmp_path / f"m{i}{ext}"))
        Image.fromarray(pred[i]).save(paths[-1], **({"compress_level": 9} if ext.endswith("png") else {}))
    with offline_run(tmp_path) as run:
        run.log({"ours": gm.to_wandb(images, masks={"gt": {"path": paths}}, device=device)}, step=0)
        run.log({"plain": [wandb.Image(images[i], masks={"gt": {"path": paths[i]}}) for i in range(2)]}, step=1)
    rows, cfg = recorded(tmp_path)
    a, b = logged(rows, "ours")["all_masks"], logged(rows, "plain")["all_masks"]
    for i in range(2):
        ours, plain = a[i]["gt"], b[i]["gt"]
        assert ours["path"].startswith("media/images/mask/ours_")
        assert plain["path"].startswith("media/images/mask/plain_")
        assert ours["path"].split("_")[-1] == plain["path"].split("_")[-1]  # <sha256[:20]><last extension>
        assert {k: v for k, v in ours.items() if k != "path"} == {k: v for k, v in plain.items() if k != "path"}
        with open(paths[i], "rb") as f:
            assert read(tmp_path, ours["path"]) == f.read()
    assert a[1]["gt"]["path"].endswith(".bmp")
    assert "mask/class_labels" not in cfg  # wandb keeps no labels for a path mask


def test_boxes_list_form_same_json_as_wandb(device, tmp_path):
    images, _, _ = _batch(n=2)
    per_image = [
        {"p": {"box_data": [
            {"position": {"minX": 0.1, "maxX": 0.5, "minY": 0.125, "maxY": 0.625}, "class_id": 1,
             "box_caption": "car 0.93", "scores": {"score": 0.93}},
            {"position": {"middle": [8, 6], "width": 6, "height": 4}, "domain": "pixel", "class_id": 2,
             "box_caption": "road"},
        ], "class_labels": LABELS}},
        {"p": {"box_data": [
            {"position": {"minX": 2, "maxX": 9, "minY": 1, "maxY": 5}, "domain": "pixel", "class_id": 0},
        ], "class_labels": LABELS}},
    ]
    with offline_run(tmp_path) as run:
        run.log({"ours": gm.to_wandb(images, boxes=per_image, device=device)}, step=0)
        run.log({"plain": [wandb.Image(images[i], boxes=per_image[i]) for i in range(2)]}, step=1)
    rows, cfg = recorded(tmp_path)
    a, b = logged(rows, "ours")["all_boxes"], logged(rows, "plain")["all_boxes"]
    for i in range(2):
        doc_a = json.loads(read(tmp_path, a[i]["p"]["path"]))
        doc_b = json.loads(read(tmp_path, b[i]["p"]["path"]))
        assert doc_a["box_data"] == doc_b["box_data"]
        assert doc_a["box_data"] == per_image[i]["p"]["box_data"]
        assert doc_a["class_labels"] == doc_b["class_labels"] == {str(k): v for k, v in LABELS.items()}
    box_labels = cfg["bounding_box/class_labels"]
    assert box_labels["ours_wandb_delimeter_p"]["value"] == box_labels["plain_wandb_delimeter_p"]["value"]


def test_float_input_normalized_per_spec(device, tmp_path):
    rng = np.random.default_rng(7)
    h, w = 9, 11
    batch = np.stack([
        rng.random((h, w, 3)).astype(np.float32),  # [0, 1] -> trunc(x * 255)
        (rng.random((h, w, 3)) * 2 - 1).astype(np.float32),  # [-1, 1] -> trunc((x + 1) * 127.5)
        (rng.random((h, w, 3)) * 400 - 50).astype(np.float32),  # else -> trunc(clip(x, 0, 255))
    ])
    batch[0, 0, 0, 0], batch[0, -1, -1, 2] = 0.0, 1.0
    batch[1, 0, 0, 1] = -1.0
    with offline_run(tmp_path) as run:
        run.log({"f": gm.to_wandb(batch, device=device)}, step=0)
    val = logged(recorded(tmp_path)[0], "f")
    assert val["count"] == 3
    for i, rel in enumerate(val["filenames"]):
        got = decode_image(read(tmp_path, rel))
        want = normalize_image(batch[i])
        np.testing.assert_array_equal(got, want)
    # the three rows really differ from wandb 0.31's clip-only handling
    assert normalize_image(batch[0]).max() > 200
    assert normalize_image(batch[1]).min() == 0 and normalize_image(batch[1]).max() > 200


def test_jpeg_file_type(device, tmp_path):
    h, w = 32, 48
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 5, yy * 7, (xx + yy) * 3], axis=-1).astype(np.uint8)
    batch = np.stack([base, base[::-1].copy()])
    with offline_run(tmp_path) as run:
        run.log({"j": gm.to_wandb(batch, file_type="jpg", device=device)}, step=0)
    val = logged(recorded(tmp_path)[0], "j")
    assert val["format"] == "jpg"
    assert len(val["filenames"]) == 2
    for i, rel in enumerate(val["filenames"]):
        assert rel.startswith("media/images/") and rel.endswith(".jpg")
        data = read(tmp_path, rel)
        assert data[:3] == b"\xff\xd8\xff"
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (w, h))
        # docs/SPEC.md 5: quality 75 by default; within MAD 2.0 of Pillow's (libjpeg's) encoding of the pixels
        buf = io.BytesIO()
        Image.fromarray(batch[i]).save(buf, format="JPEG", quality=75)
        ref = decode_image(buf.getvalue()).astype(np.float64)
        assert np.abs(decode_image(data).astype(np.float64) - ref).mean() <= 2.0


def _bad(kind, images, pred):
    if kind == "mask300":
        m = pred.astype(np.uint16)
        m[1, 2, 3] = 300
        return {"masks": {"pred": {"mask_data": m, "class_labels": LABELS}}}, gm.MaskError, ["image 1", "'pred'", "300"]
    if kind == "mask_shape":
        return {"masks": {"pred": {"mask_data": pred[:, :-1]}}}, gm.MaskError, ["image 0", "'pred'"]
    if kind == "box_nan":
        xyxy = np.array([[0, 0, 4, 4], [1, 1, np.nan, 5]], dtype=np.float64)
        return ({"boxes": {"det": {"xyxy": xyxy, "image_index": np.array([0, 2]), "class_id": np.array([1, 1])}}},
                gm.BoxError, ["image 2", "'det'", "box 1"])
    if kind == "captions":
        return {"captions": ["a", "b"]}, gm.MediaError, ["2", "3"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["mask300", "mask_shape", "box_nan", "captions"])
def test_bad_input_raises_before_logging(device, tmp_path, kind):
    images, pred, _ = _batch(n=3)
    kwargs, exc, words = _bad(kind, images, pred)
    # to_wandb's files awaiting wandb, in this process's folder only (other test runs may share /tmp)
    pending = os.path.join(wandb_compat._tmp_dir(), "*")
    before = set(glob.glob(pending))
    with offline_run(tmp_path) as run:
        with pytest.raises(exc) as info:
            run.log({"val": gm.to_wandb(images, device=device, **kwargs)}, step=0)
        run.log({"ok": 1.0}, step=0)
    for word in words:
        assert word in str(info.value)
    assert set(glob.glob(pending)) == before  # nothing was encoded either
    rows, cfg = recorded(tmp_path)
    assert not any("val" in r for r in rows)
    assert any(r.get("ok") == 1.0 for r in rows)  # the run itself worked
    assert media_files(tmp_path) == []
    assert "mask/class_labels" not in cfg and "bounding_box/class_labels" not in cfg


def test_import_error_without_wandb(device, monkeypatch):
    images, _, _ = _batch(n=1)
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError) as info:
        gm.to_wandb(images, device=device)
    msg = str(info.value)
    assert "pip install" in msg and "wandb" in msg


# --------------------------------------------------------------------------- the fast constructor
# to_wandb builds each wandb.Image without decoding the file it just encoded (wandb's constructor
# from a path decodes the whole image only to learn its size, and run.log decodes it again).
# It relies on wandb's copy constructor and private fields, checked once per process against the
# installed wandb (wandb_compat._fast_prototype); these tests hold both the fast path and the fallback.


def _logged_like_plain(tmp_path, batch, **kwargs):
    """The run's JSON of to_wandb's images and of plain wandb.Image, with the key out of the file names."""
    captions = [f"c{i}" for i in range(len(batch))]
    with offline_run(tmp_path) as run:
        ours = gm.to_wandb(batch, captions=captions, compression_level=6, device="cpu", **kwargs)
        run.log({"k": ours}, step=0)
        plain = [wandb.Image(a, caption=c, file_type=kwargs.get("file_type")) for a, c in zip(batch, captions)]
        run.log({"k": plain}, step=1)
    rows, _ = recorded(tmp_path)
    a, b = (r["k"] for r in rows if "k" in r)
    return ours, a, b


def _count_decodes(monkeypatch):
    from PIL import ImageFile

    calls = []
    load = ImageFile.ImageFile.load

    def counted(self):
        calls.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    return calls


def test_fast_path_is_used_with_the_installed_wandb():
    # fails when a new wandb builds its images differently: to_wandb then still works (the plain
    # constructor, see test_falls_back_to_the_plain_constructor) but has lost its speed
    assert wandb_compat._fast_prototype(wandb) is not None
    assert wandb_compat._check_fast(wandb) is not None


@pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning")  # wandb's __eq__
@pytest.mark.parametrize("file_type", ["png", "jpg", "bmp"])
def test_fast_images_equal_the_plain_constructors(device, tmp_path, file_type):
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, size=(3, 7, 9, 3), dtype=np.uint8)
    captions = ["a", None, "c"]
    ours = gm.to_wandb(batch, captions=captions, file_type=file_type, device=device)
    for i, img in enumerate(ours):
        assert type(img) is wandb.Image
        plain = wandb.Image(img._path, caption=captions[i])  # wandb's own constructor on the same file
        plain._is_tmp = True  # to_wandb hands wandb files to move, not copy
        assert {k: v for k, v in vars(img).items() if k != "_image"} == \
               {k: v for k, v in vars(plain).items() if k != "_image"}
        assert img == plain  # wandb's __eq__: caption, size, classes and every pixel
        with open(img._path, "rb") as f:
            data = f.read()
        assert img._sha256 == hashlib.sha256(data).hexdigest() and img._size == len(data)
        # the kept PIL image decodes lazily to the file's pixels
        assert (img.image.size, img.image.mode) == ((9, 7), "RGB")
        np.testing.assert_array_equal(np.asarray(img.image), decode_image(data))
        if file_type != "jpg":
            np.testing.assert_array_equal(np.asarray(img.image), batch[i])


def test_nothing_decoded_by_to_wandb_or_run_log(device, tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    batch = rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    calls = _count_decodes(monkeypatch)
    with offline_run(tmp_path) as run:
        ours = gm.to_wandb(batch, masks={"m": {"mask_data": batch[..., 0] % 3}}, device=device)
        run.log({"k": ours}, step=0)
        assert calls == []  # wandb's constructor from a path would decode each image once, run.log again
        wandb.Image(ours[0]._path)  # the counter counts: the plain constructor decodes
        assert calls == [(8, 8)]
    assert logged(recorded(tmp_path)[0], "k")["count"] == 4


@pytest.mark.parametrize("file_type", ["png", "jpg"])
def test_logged_run_equals_plain_wandb_images(tmp_path, file_type):
    rng = np.random.default_rng(5)
    batch = rng.integers(0, 256, size=(3, 10, 12, 3), dtype=np.uint8)
    ours, a, b = _logged_like_plain(tmp_path, batch, file_type=file_type)
    if file_type == "png":  # level 6 on the CPU: wandb's very bytes, so the very same JSON
        assert a == b
    else:  # JPEG: same entry apart from the content hashes in the names
        strip = [os.path.basename(p).split("_", 2)[2] for p in a["filenames"]]
        assert {k: v for k, v in a.items() if k != "filenames"} == {k: v for k, v in b.items() if k != "filenames"}
        assert all(len(s) == 20 + len(".jpg") for s in strip)
    for img, rel in zip(ours, a["filenames"]):  # moved into the run, under the name wandb gives it
        assert img._path == os.path.join(files_dir(tmp_path), rel) and not img._is_tmp
        assert os.path.basename(rel) == f"k_0_{img._sha256[:20]}.{file_type}"


def test_falls_back_to_the_plain_constructor(tmp_path, monkeypatch):
    # a wandb whose constructor from a path records something more: the check sees it and
    # to_wandb builds its images with wandb's own constructor, which records it too
    init = wandb.Image._initialize_from_path

    def newer(self, path):
        init(self, path)
        self._newer_field = os.path.basename(path)

    monkeypatch.setattr(wandb.Image, "_initialize_from_path", newer)
    monkeypatch.setattr(wandb_compat, "_FAST", {})
    assert wandb_compat._fast_prototype(wandb) is None
    calls = _count_decodes(monkeypatch)
    rng = np.random.default_rng(6)
    batch = rng.integers(0, 256, size=(2, 6, 5, 3), dtype=np.uint8)
    ours, a, b = _logged_like_plain(tmp_path, batch)
    assert all(hasattr(img, "_newer_field") for img in ours)
    assert len(calls) >= 2  # the plain constructor decodes
    assert a == b


def test_falls_back_when_the_copy_constructor_fails(monkeypatch):
    def broken(self, other):
        raise AttributeError("_a_field_wandb_renamed")

    monkeypatch.setattr(wandb.Image, "_initialize_from_wbimage", broken)
    monkeypatch.setattr(wandb_compat, "_FAST", {})
    assert wandb_compat._fast_prototype(wandb) is None
    (img,) = gm.to_wandb(np.full((1, 4, 4, 3), 9, np.uint8), captions=["x"], device="cpu")
    assert (img._caption, img._width, img._height, img._is_tmp) == ("x", 4, 4, True)
    np.testing.assert_array_equal(np.asarray(img.image), np.full((4, 4, 3), 9, np.uint8))
