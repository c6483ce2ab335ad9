"""Dumps match wandb 0.31 where SPEC does not say otherwise (docs/SPEC.md 3, 4, 6.2; issue 9.2).

Each case is checked twice: against the output of wandb 0.31 recorded in
``tests/data/wandb-0.31-cases/`` (always), and against the installed ``wandb``
itself, which builds the very same cases (``make_cases.build``; skipped where the
``wandb`` extra is not installed). The cases: keys to paths, a box set without
``class_labels``, a box without ``class_id``, masks given as ``{"path": file}``,
PNG and BMP images over 65500 pixels.
"""

import importlib.util
import json
import os
import re

import numpy as np
import pytest

import gpu_media as gm
from gpu_media.dump import index_path

CASES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "wandb-0.31-cases")
_spec = importlib.util.spec_from_file_location("make_cases", os.path.join(CASES_DIR, "make_cases.py"))
make_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_cases)
INPUTS = make_cases.inputs()
SHA = re.compile(r"_[0-9a-f]{20}(?=\.)")


@pytest.fixture(scope="module")
def recorded():
    with open(os.path.join(CASES_DIR, "cases.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    wandb = pytest.importorskip("wandb")
    tmp = tmp_path_factory.mktemp("wandb-cases")
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DIR": str(tmp),
           "WANDB_CACHE_DIR": str(tmp / "cache"), "WANDB_CONFIG_DIR": str(tmp / "config"),
           "WANDB_DATA_DIR": str(tmp / "data"), "WANDB_ARTIFACT_DIR": str(tmp / "artifacts")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        try:
            # JSON round trip: the recorded cases went through it too (int dict keys become str)
            return json.loads(json.dumps(make_cases.build(CASES_DIR, str(tmp))))
        finally:
            wandb.teardown()


@pytest.fixture(params=["recorded", "wandb"])
def cases(request):
    """The wandb 0.31 record, or what the installed wandb writes for the same cases."""
    return request.getfixturevalue("recorded" if request.param == "recorded" else "live")


def _no_sha(obj):
    """An image JSON without what PNG bytes decide (sha256, size, the hash in names)."""
    if isinstance(obj, dict):
        return {k: _no_sha(v) for k, v in obj.items() if k not in ("sha256", "size")}
    return SHA.sub("_<sha>", obj) if isinstance(obj, str) else obj


def _same_json(got, want, device):
    """CPU at compression_level=6 writes wandb's PNG bytes: the whole JSON is equal.

    The GPU backend promises the pixels only (docs/SPEC.md 5), so there images and masks are
    compared by name without the hash.
    """
    if device == "cpu":
        assert got == want
    else:
        assert _no_sha(got) == _no_sha(want)
        for k, b in (want.get("boxes") or {}).items():  # boxes2D JSON is the same bytes on every backend
            assert got["boxes"][k] == b


def _sorted_type(t):
    """A wandb type JSON with its sets (written as lists in any order) sorted."""
    if isinstance(t, dict):
        return {k: _sorted_type(v) for k, v in t.items()}
    if isinstance(t, list):
        return sorted((_sorted_type(v) for v in t), key=json.dumps)
    return t


def test_keys_become_wandb_paths(device, tmp_path, cases):
    px, mask, boxes, labels = INPUTS["pixels"], INPUTS["mask"], INPUTS["boxes"], INPUTS["labels"]
    out = tmp_path / "dump"  # every key into one folder: none overwrites another
    for case in cases["keys"]:
        (got,) = gm.write_dump(out, px[None], key=case["key"], step=case["step"], compression_level=6, device=device,
                               masks={"m": {"mask_data": mask[None]}},
                               boxes=[{"b": {"box_data": boxes, "class_labels": labels}}])
        _same_json(got, case["json"], device)
        for rel, text in case["boxes2D_files"].items():
            assert (out / rel).read_text(encoding="utf-8") == text
        index = json.loads(open(index_path(out, case["key"], case["step"]), encoding="utf-8").read())
        assert index["key"] == case["key"] and index["images"] == [got]
    for case in cases["keys"]:  # still there, unchanged, after all the other keys were written
        index = json.loads(open(index_path(out, case["key"], case["step"]), encoding="utf-8").read())
        for entry in [index["images"][0], index["images"][0]["masks"]["m"], index["images"][0]["boxes"]["b"]]:
            assert (out / entry["path"]).stat().st_size == entry["size"]
    assert len(list(out.glob("*.index.json"))) == len(cases["keys"])


def test_box_set_without_labels_writes_only_box_data(device, tmp_path, cases):
    case = cases["boxes_without_labels"]
    (got,) = gm.write_dump(tmp_path, INPUTS["pixels"][None], key="nolabels", compression_level=6, device=device,
                           boxes=[{"b": {"box_data": INPUTS["boxes"]}}])
    _same_json(got, case["json"], device)
    ((rel, text),) = case["boxes2D_files"].items()
    assert list(json.loads(text)) == ["box_data"]
    assert (tmp_path / got["boxes"]["b"]["path"]).read_text(encoding="utf-8") == text
    # the index (what the viewer reads) still names the classes, with wandb's default names
    index = json.loads(open(index_path(tmp_path, "nolabels"), encoding="utf-8").read())
    assert index["box_class_labels"] == {"b": {"1": "class_1", "3": "class_3"}}
    from gpu_media import viewer

    (d,) = viewer.viewer_data(tmp_path)["dumps"]
    assert d["box_labels"] == {"b": {"1": "class_1", "3": "class_3"}}
    assert d["images"][0]["boxes"]["b"] == json.loads(text)["box_data"]


def test_box_without_class_id_is_a_box_error(device, tmp_path, cases):
    assert cases["box_without_class_id"] == {"error": "KeyError", "args": ["class_id"]}  # what wandb does
    box = {"position": INPUTS["boxes"][0]["position"], "domain": "pixel"}
    for boxes in ([{"b": {"box_data": [box]}}],
                  {"b": {"xyxy": [[1, 1, 3, 4]], "image_index": [0]}}):
        with pytest.raises(gm.BoxError, match=r"^image 0, box key 'b', box 0: A box needs a class_id") as info:
            gm.write_dump(tmp_path / "o", INPUTS["pixels"][None], key="k", boxes=boxes, device=device)
        assert (info.value.index, info.value.key) == (0, "b")
    assert not (tmp_path / "o").exists()


def test_path_masks_copied_as_wandb_copies_them(device, tmp_path, cases):
    case = cases["path_masks"]
    masks = {name.split(".")[0]: {"path": os.path.join(CASES_DIR, name)} for name in make_cases.MASK_FILES}
    (got,) = gm.write_dump(tmp_path, INPUTS["pixels"][None], key="pm", compression_level=6, device=device, masks=masks)
    _same_json(got, case["json"], device)
    for k, name in zip(masks, make_cases.MASK_FILES):  # never decoded and re-encoded: the file's own bytes
        with open(os.path.join(CASES_DIR, name), "rb") as f:
            assert (tmp_path / got["masks"][k]["path"]).read_bytes() == f.read()
        assert got["masks"][k] == case["json"]["masks"][k]  # sha, size and name: the same on every backend
    # validated and counted as any mask
    index = json.loads(open(index_path(tmp_path, "pm"), encoding="utf-8").read())
    counts = np.unique(INPUTS["mask"], return_counts=True)
    assert index["mask_report"][0]["gt"] == {str(c): int(n) for c, n in zip(*counts)}
    assert index["mask_report"][0]["seg"] == {str(2 * c): int(n) for c, n in zip(*counts)}


def test_to_wandb_type_equals_wandbs(device, tmp_path, cases):
    pytest.importorskip("wandb")
    from wandb.sdk.data_types._dtypes import TypeRegistry

    px, mask, boxes, labels = INPUTS["pixels"], INPUTS["mask"], INPUTS["boxes"], INPUTS["labels"]
    masks = {name.split(".")[0]: {"path": os.path.join(CASES_DIR, name)} for name in make_cases.MASK_FILES}
    made = {
        "keys": gm.to_wandb(px[None], masks={"m": {"mask_data": mask[None]}},
                            boxes=[{"b": {"box_data": boxes, "class_labels": labels}}], device=device),
        "boxes_without_labels": gm.to_wandb(px[None], boxes=[{"b": {"box_data": boxes}}], device=device),
        "path_masks": gm.to_wandb(px[None], masks=masks, device=device),
    }
    for name, (img,) in made.items():
        want = cases[name][0]["type"] if name == "keys" else cases[name]["type"]
        assert _sorted_type(TypeRegistry.type_of(img).to_json()) == _sorted_type(want), name
    (pm,) = made["path_masks"]  # wandb's own path form: the file's extension, no labels
    assert {k: m._extension for k, m in pm._masks.items()} == {"gt": None, "seg": None}
    assert {k: os.path.splitext(m._path)[1] for k, m in pm._masks.items()} == {"gt": ".png", "seg": ".bmp"}
    assert not any(hasattr(m, "_val") for m in pm._masks.values())


@pytest.mark.parametrize("shape_name", ["wide", "tall"])
@pytest.mark.parametrize("file_type", ["png", "bmp"])
def test_png_and_bmp_over_65500_pixels(device, tmp_path, cases, shape_name, file_type):
    if shape_name == "wide":
        x = np.zeros((2, 65501, 3), np.uint8)  # as make_cases.py
        x[0, ::7] = 200
    else:
        x = np.zeros((65501, 2, 3), np.uint8)
        x[::5, 1] = 9
    want = cases[shape_name][file_type]
    (got,) = gm.write_dump(tmp_path, x[None], key=shape_name, file_type=file_type, compression_level=6,
                           device=device)
    _same_json(got, want, device)
    from PIL import Image

    with Image.open(tmp_path / got["path"]) as im:
        np.testing.assert_array_equal(np.asarray(im).reshape(x.shape), x)


def test_jpeg_keeps_the_65500_limit(device, tmp_path):
    x = np.zeros((1, 65501, 3), np.uint8)
    with pytest.raises(gm.ImageError, match=r"^image 0: .*65501 exceeds JPEG's maximum dimension 65500") as info:
        gm.write_dump(tmp_path / "o", x[None], key="k", file_type="jpg", device=device)
    assert info.value.index == 0
    assert not (tmp_path / "o").exists()
    with pytest.raises(gm.ImageError, match=r"^image 1: .*exceeds JPEG's maximum dimension 65500"):
        gm.encode([np.zeros((2, 2, 3), np.uint8), np.zeros((65501, 1, 1), np.uint8)], file_type="jpeg",
                  device=device)
    ok = np.zeros((1, 65500, 3), np.uint8)
    assert gm.encode(ok, file_type="jpg", device=device)[0][:3] == b"\xff\xd8\xff"
