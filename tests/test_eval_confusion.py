"""gpu_media.eval.confusion_matrix against sklearn.metrics.confusion_matrix, on both backends."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpu_media as gm
from gpu_media.backend import get_backend
from gpu_media.eval import confusion_matrix
from gpu_media.eval.confusion import scores

pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")

sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed (the test extra)")


def on_device(a, device):
    if device == "gpu":
        import cupy

        return cupy.asarray(a)
    return a


def sk(gt, pred, c):
    return sklearn_metrics.confusion_matrix(np.ravel(gt), np.ravel(pred), labels=list(range(c))).astype(np.int64)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("c", [1, 2, 7, 256])
def test_equals_sklearn(device, dtype, c):
    rng = np.random.default_rng(c)
    gt = rng.integers(0, c, (5, 17, 23)).astype(dtype)
    pred = rng.integers(0, c, (5, 17, 23)).astype(dtype)
    pred[:, :4] = gt[:, :4]  # some agreement
    r = confusion_matrix(on_device(gt, device), on_device(pred, device), c, device=device)
    assert r.matrix.dtype == np.int64 and r.matrix.shape == (c, c)
    np.testing.assert_array_equal(r.matrix, sk(gt, pred, c))
    for i in range(len(gt)):
        np.testing.assert_array_equal(r.per_image[i], sk(gt[i], pred[i], c))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31))
def test_random_batches_equal_sklearn_and_the_scores(c, n, h, w, seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, c, (n, h, w)).astype(np.uint8)
    pred = np.where(rng.random((n, h, w)) < 0.5, gt, rng.integers(0, c, (n, h, w))).astype(np.uint8)
    r = confusion_matrix(gt, pred, c, device="cpu")
    m = sk(gt, pred, c)
    np.testing.assert_array_equal(r.matrix, m)
    # IoU per class from sklearn's jaccard_score over the flattened masks (classes present in either)
    present = [k for k in range(c) if (gt == k).any() or (pred == k).any()]
    jac = sklearn_metrics.jaccard_score(gt.ravel(), pred.ravel(), labels=present, average=None)
    assert [r.iou[k] for k in present] == pytest.approx(list(jac), rel=1e-12)
    assert all(r.iou[k] is None for k in range(c) if k not in present)
    assert r.miou == pytest.approx(float(np.mean(jac)), rel=1e-12)
    assert r.pixel_accuracy == pytest.approx(sklearn_metrics.accuracy_score(gt.ravel(), pred.ravel()), rel=1e-12)
    for i in range(n):
        pi = [k for k in range(c) if (gt[i] == k).any() or (pred[i] == k).any()]
        ji = sklearn_metrics.jaccard_score(gt[i].ravel(), pred[i].ravel(), labels=pi, average=None)
        assert r.image_miou[i] == pytest.approx(float(np.mean(ji)), rel=1e-12)


def test_lists_of_different_sizes(device):
    rng = np.random.default_rng(1)
    gt = [rng.integers(0, 4, (5, 6)).astype(np.uint8), rng.integers(0, 4, (3, 9)).astype(np.uint8)]
    pred = [rng.integers(0, 4, (5, 6)).astype(np.uint8), rng.integers(0, 4, (3, 9)).astype(np.uint8)]
    r = confusion_matrix([on_device(a, device) for a in gt], [on_device(a, device) for a in pred], 4, device=device)
    want = sk(np.concatenate([a.ravel() for a in gt]), np.concatenate([a.ravel() for a in pred]), 4)
    np.testing.assert_array_equal(r.matrix, want)
    assert r.per_image.shape == (2, 4, 4)


def test_backends_agree_bit_for_bit(device):
    """The backend's own ``confusion``: (N, C, C) per image, equal to the CPU's."""
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 21, (3, 64, 80)).astype(np.uint8)
    pred = rng.integers(0, 21, (3, 64, 80)).astype(np.uint8)
    b = get_backend(device)
    got = b.to_host(b.confusion(b.xp.asarray(gt), b.xp.asarray(pred), 21))
    np.testing.assert_array_equal(got, get_backend("cpu").confusion(gt, pred, 21))
    assert got.shape == (3, 21, 21)


@pytest.mark.parametrize("gt,pred,c,message", [
    (np.array([[[0, 3]]]), np.array([[[0, 1]]]), 3, r"image 0, ground truth: class ids must be in \[0, 3\)"),
    (np.array([[[0, 1]], [[0, 1]]]), np.array([[[0, 1]], [[0, -1]]]), 3,
     r"image 1, prediction: class ids must be in \[0, 3\) \(num_classes=3\), found -1"),
    (np.array([[[0, 0.5]]]), np.array([[[0, 1]]]), 3, r"image 0, ground truth: class ids must be integers"),
    (np.zeros((1, 2, 2)), np.zeros((1, 2, 3)), 3, r"image 0, mask key 'prediction': mask shape \(2, 3\) does not"),
    (np.zeros((1, 2, 2)), np.zeros((1, 2, 2), np.complex64), 3, "mask dtype complex64 is not supported"),
    (np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), 257, "num_classes must be an integer from 1 to 256"),
])
def test_bad_masks_are_named(gt, pred, c, message):
    with pytest.raises(gm.MediaError, match=message):
        confusion_matrix(gt, pred, c)


def test_scores_of_empty_and_labels():
    assert scores(np.zeros((2, 2), np.int64)) == ([None, None], None, None)
    r = confusion_matrix(np.zeros((1, 2, 2), np.uint8), np.zeros((1, 2, 2), np.uint8), 2,
                         class_labels={0: "bg", 1: "cat"})
    j = r.to_json()
    assert j["labels"] == {"0": "bg", "1": "cat"} and j["iou"] == [1.0, None] and j["miou"] == 1.0


def test_bool_masks_need_two_classes(device):
    gt = np.array([[[True, False]]])
    r = confusion_matrix(on_device(gt, device), on_device(~gt, device), 2, device=device)
    assert r.matrix.tolist() == [[0, 1], [1, 0]]
    with pytest.raises(gm.MaskError, match=r"class ids must be in \[0, 1\) \(num_classes=1\), found 1"):
        confusion_matrix(on_device(gt, device), on_device(gt, device), 1, device=device)
