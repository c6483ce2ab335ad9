"""``gpu-media dump ... --eval`` (COCO and .npz) and the COCO dataset's evaluation API."""

import contextlib
import io
import json
import os

import numpy as np
import pytest

from gpu_media import cli
from gpu_media.eval import evaluate_boxes, evaluate_coco
from gpu_media.formats.coco import demo_coco, detection_section, evaluate_dataset, load_coco

pytest.importorskip("pycocotools", reason="the coco extra (pycocotools) is not installed")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

DEMO = demo_coco()


def pycocotools_summary(iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(DEMO.instances)
        E = COCOeval(gt, gt.loadRes(DEMO.predictions), iou_type)
        E.evaluate()
        E.accumulate()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        E.summarize()
    return out.getvalue()


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as exc:  # argparse's p.error
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_coco_eval_prints_pycocotools_summary(tmp_path, iou_type):
    """The 12 lines as pycocotools prints them; --score-threshold hides boxes but every prediction is evaluated."""
    want = pycocotools_summary(iou_type)
    for extra in ([], ["--score-threshold", "0.6"]):
        out_dir = tmp_path / f"out{len(extra)}"
        rc, out, err = run(["dump", DEMO.images_dir, str(out_dir), "--coco", DEMO.instances, "--predictions",
                            DEMO.predictions, "--eval", "--eval-iou-type", iou_type, "--format", "jpg", *extra])
        assert rc == 0, err
        assert want in out
        assert os.path.exists(out_dir / "coco_0.index.json")


def test_eval_flag_errors(tmp_path):
    for argv, message in [
        (["--eval"], "--eval with --coco needs --predictions"),
        (["--eval-gt", "a"], "--eval-gt/--eval-pred need --eval"),
    ]:
        rc, _, err = run(["dump", DEMO.images_dir, str(tmp_path / "o"), "--coco", DEMO.instances, *argv])
        assert rc == 2 and message in err
    rc, _, err = run(["dump", "x.npz", str(tmp_path / "o"), "--eval"])
    assert rc == 2 and "--eval on an .npz needs --eval-gt KEY and --eval-pred KEY" in err
    assert not (tmp_path / "o").exists()


def test_evaluate_dataset_is_the_files_evaluation():
    ds = load_coco(DEMO.images_dir, DEMO.instances, DEMO.predictions, score_threshold=0.6)
    for iou_type in ("bbox", "segm"):
        a = evaluate_dataset(ds, iou_type)
        b = evaluate_coco(DEMO.instances, DEMO.predictions, iou_type)
        assert a.stats == b.stats and a.images == b.images and a.classes == b.classes
    section = detection_section(ds, a)
    for im, entry, full in zip(ds.images, section["images"], a.images):
        assert len(entry["pred"]["o50"]) == len(im.pred) < len(im.pred_all) or len(im.pred) == len(im.pred_all)
        shown = [full.pred[k].to_json() for k in im.pred_index]
        assert entry["pred"] == {col: [m[col] for m in shown] for col in ("o50", "iou50", "o75", "iou75")}
        assert entry["tp"] == full.tp  # counts over every prediction
    json.dumps(section, allow_nan=False)


def npz_batch(tmp_path):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    gt_mask = rng.integers(0, 4, (3, 40, 50)).astype(np.uint8)
    pred_mask = np.where(rng.random((3, 40, 50)) < 0.7, gt_mask, 1).astype(np.uint8)
    path = tmp_path / "batch.npz"
    np.savez(path, images=images, masks__gt=gt_mask, masks__pred=pred_mask,
             boxes__gt__xyxy=np.array([[0, 0, 10, 10], [5, 5, 30, 30], [1, 1, 9, 9]], np.float64),
             boxes__gt__image_index=np.array([0, 0, 2]), boxes__gt__class_id=np.array([1, 2, 1]),
             boxes__pred__xyxy=np.array([[0, 1, 10, 10], [20, 20, 30, 30], [1, 1, 9, 9]], np.float64),
             boxes__pred__image_index=np.array([0, 1, 2]), boxes__pred__class_id=np.array([1, 2, 1]),
             boxes__pred__score=np.array([0.9, 0.8, 0.7]),
             class_labels=json.dumps({"0": "bg", "1": "cat", "2": "dog", "3": "car"}))
    return path, images, gt_mask, pred_mask


def test_npz_eval_boxes_and_masks(tmp_path):
    from gpu_media.eval import confusion_matrix

    path, _, gt_mask, pred_mask = npz_batch(tmp_path)
    rc, out, err = run(["dump", str(path), str(tmp_path / "out"), "--eval", "--eval-gt", "gt", "--eval-pred", "pred"])
    assert rc == 0, err
    kw = cli.load_npz(str(path))
    det = evaluate_boxes(kw["boxes"]["gt"], kw["boxes"]["pred"], [(40, 50)] * 3, class_labels=kw["classes"])
    assert det.summary() in out
    assert [(im.tp, im.fp, im.fn) for im in det.images] == [(1, 0, 1), (0, 1, 0), (1, 0, 0)]
    seg = confusion_matrix(gt_mask, pred_mask, 4)
    assert f"mIoU = {seg.miou:0.3f}" in out
    assert os.path.exists(tmp_path / "out" / "images_0.index.json")


def test_npz_eval_unknown_keys_fail_before_writing(tmp_path):
    path, *_ = npz_batch(tmp_path)
    rc, _, err = run(["dump", str(path), str(tmp_path / "out"), "--eval", "--eval-gt", "gt", "--eval-pred", "nope"])
    assert rc == 2 and "not two box keys (gt, pred) nor two mask keys (gt, pred)" in err
    assert not (tmp_path / "out").exists()
