"""Evaluated dumps: the index's ``eval`` section (docs/SPEC.md 6.6) and outlines coloured by outcome."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from gpu_media import cli
from gpu_media.eval import OUTCOME_COLORS, confusion_matrix
from gpu_media.formats.coco import demo_coco, detection_section, evaluate_dataset, load_coco, write_coco_dump
from media_helpers import decode_image, read_rel

pytest.importorskip("pycocotools", reason="the coco extra (pycocotools) is not installed")

DEMO = demo_coco()


def index_of(out, name="coco_0.index.json"):
    with open(os.path.join(str(out), name), "rb") as f:
        return json.load(f)


def boxes_file(out, entry, key):
    return json.loads(read_rel(out, entry["boxes"][key]["path"]))


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_coco_index_eval_section(tmp_path, iou_type):
    out = tmp_path / "out"
    ds, dicts = write_coco_dump(out, DEMO.images_dir, DEMO.instances, DEMO.predictions, evaluate=iou_type,
                                score_threshold=0.5, file_type="png")
    index = index_of(out)
    section = index["eval"]
    ref = load_coco(DEMO.images_dir, DEMO.instances, DEMO.predictions, score_threshold=0.5)
    assert section["detection"] == json.loads(json.dumps(detection_section(ref, evaluate_dataset(ref, iou_type))))
    det = section["detection"]
    assert det["iou_type"] == iou_type and (det["gt_key"], det["pred_key"]) == ("ground_truth", "predictions")
    assert len(det["images"]) == index["count"] == len(dicts)
    for entry, im in zip(index["images"], det["images"]):  # one mark per box of each boxes2D file, in its order
        for col in ("o50", "iou50", "o75", "iou75"):  # columns aligned with the boxes
            assert len(im["pred"][col]) == len(boxes_file(out, entry, "predictions")["box_data"])
            assert len(im["gt"][col]) == len(boxes_file(out, entry, "ground_truth")["box_data"])
    assert len(det["stats"]) == 12 and len(det["pr_curves"]["recall"]) == 101
    # segmentation: the confusion of the two mask files the dump wrote, counted here with np.bincount
    seg = section["segmentation"]
    c = seg["num_classes"]
    total = np.zeros((c, c), np.int64)
    for entry, im in zip(index["images"], seg["images"]):
        g = decode_image(read_rel(out, entry["masks"]["ground_truth"]["path"])).astype(np.int64)
        p = decode_image(read_rel(out, entry["masks"]["predictions"]["path"])).astype(np.int64)
        m = np.bincount((g * c + p).ravel(), minlength=c * c).reshape(c, c)
        total += m
        assert im["pixel_accuracy"] == np.trace(m) / m.sum()
    assert seg["confusion_matrix"] == total.tolist()
    assert seg["labels"]["0"] == "background"


def test_no_eval_no_section_and_the_same_files(tmp_path):
    """Evaluation adds the index section only: the media and boxes2D files are the dump's without it."""
    plain = tmp_path / "plain"
    ev = tmp_path / "ev"
    write_coco_dump(plain, DEMO.images_dir, DEMO.instances, DEMO.predictions)
    write_coco_dump(ev, DEMO.images_dir, DEMO.instances, DEMO.predictions, evaluate="bbox")
    a, b = index_of(plain), index_of(ev)
    assert "eval" not in a and "eval" in b
    assert a["images"] == b["images"]


def one_image_dataset(tmp_path):
    """One 64x64 image: GT A (matched by a TP), GT B (missed: FN), a crowd GT, an FP far from everything."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((64, 64, 3), 40, np.uint8)).save(folder / "a.png")
    gt = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 20], "area": 400, "iscrowd": 0},
          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [40, 4, 20, 20], "area": 400, "iscrowd": 0},
          {"id": 3, "image_id": 1, "category_id": 2, "bbox": [4, 40, 20, 20], "area": 400, "iscrowd": 1}]
    pred = [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [40, 40, 20, 20], "score": 0.8},
            {"image_id": 1, "category_id": 2, "bbox": [5, 41, 18, 18], "score": 0.7}]
    inst = tmp_path / "instances.json"
    inst.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": 64, "width": 64}],
                                "annotations": gt, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    res = tmp_path / "results.json"
    res.write_text(json.dumps(pred))
    return str(folder), str(inst), str(res)


def test_outlines_by_outcome(tmp_path, device):
    folder, inst, res = one_image_dataset(tmp_path)
    out = tmp_path / "out"
    write_coco_dump(out, folder, inst, res, evaluate="bbox", draw_boxes=True, device=device, thickness=1)
    index = index_of(out)
    im = index["eval"]["detection"]["images"][0]
    assert im["pred"]["o50"] == ["tp", "fp", "ignored"]
    assert im["gt"]["o50"] == ["matched", "fn", "ignored"]
    px = decode_image(read_rel(out, index["images"][0]["path"]))
    # outline corners (x0, y0) of each box, drawn ground truth first, then predictions (docs/SPEC.md 4)
    assert tuple(px[4, 40]) == OUTCOME_COLORS["fn"]  # GT B, missed
    assert tuple(px[40, 4]) == OUTCOME_COLORS["ignored"]  # the crowd
    assert tuple(px[5, 5]) == OUTCOME_COLORS["tp"]
    assert tuple(px[40, 40]) == OUTCOME_COLORS["fp"]
    assert tuple(px[41, 5]) == OUTCOME_COLORS["ignored"]  # matched to the crowd
    assert tuple(px[4, 4]) == OUTCOME_COLORS["matched"]  # GT A's corner, not under the TP's outline
    if device == "gpu":  # identical pixels on both backends
        cpu = tmp_path / "cpu"
        write_coco_dump(cpu, folder, inst, res, evaluate="bbox", draw_boxes=True, device="cpu", thickness=1)
        np.testing.assert_array_equal(px, decode_image(read_rel(cpu, index_of(cpu)["images"][0]["path"])))


def test_npz_eval_section_and_colours(tmp_path, device):
    rng = np.random.default_rng(2)
    gt_mask = rng.integers(0, 3, (2, 32, 32)).astype(np.uint8)
    pred_mask = np.where(rng.random((2, 32, 32)) < 0.6, gt_mask, 0).astype(np.uint8)
    path = tmp_path / "b.npz"
    np.savez(path, images=np.zeros((2, 32, 32, 3), np.uint8), masks__gt=gt_mask, masks__pred=pred_mask,
             boxes__gt__xyxy=np.array([[2.0, 2, 12, 12], [20, 20, 30, 30]]), boxes__gt__image_index=np.array([0, 1]),
             boxes__gt__class_id=np.array([1, 1]),
             boxes__pred__xyxy=np.array([[16.0, 16, 26, 26], [2, 2, 12, 12]]),
             boxes__pred__image_index=np.array([0, 0]), boxes__pred__class_id=np.array([1, 1]),
             boxes__pred__score=np.array([0.5, 0.9]))
    out = tmp_path / "out"
    assert cli.main(["dump", str(path), str(out), "--eval", "--eval-gt", "gt", "--eval-pred", "pred", "--draw-boxes",
                     "--device", device]) == 0
    index = index_of(out, "images_0.index.json")
    det, seg = index["eval"]["detection"], index["eval"]["segmentation"]
    assert det["images"][0]["pred"]["o50"] == ["fp", "tp"]  # the boxes2D order: spec rows
    assert det["images"][1]["gt"]["o50"] == ["fn"]
    assert seg["confusion_matrix"] == confusion_matrix(gt_mask, pred_mask, 3).matrix.tolist()
    px = decode_image(read_rel(out, index["images"][0]["path"]))
    assert tuple(px[16, 16]) == OUTCOME_COLORS["fp"] and tuple(px[2, 2]) == OUTCOME_COLORS["tp"]
    px1 = decode_image(read_rel(out, index["images"][1]["path"]))
    assert tuple(px1[20, 20]) == OUTCOME_COLORS["fn"]


def test_box_colors_column_is_checked():
    import gpu_media as gm

    boxes = {"b": {"xyxy": np.array([[0, 0, 2, 2]]), "image_index": np.array([0]), "class_id": np.array([1]),
                   "colors": np.array([[0, 0, 300]])}}
    with pytest.raises(gm.BoxError, match=r"colors must be \(M, 3\) = \(1, 3\) integers in \[0, 255\]"):
        gm.draw_boxes(np.zeros((1, 4, 4, 3), np.uint8), boxes)
    boxes["b"]["colors"] = np.array([[1, 2, 3]])
    out = gm.draw_boxes(np.zeros((1, 4, 4, 3), np.uint8), boxes, thickness=1)
    assert out[0, 0, 0].tolist() == [1, 2, 3]
