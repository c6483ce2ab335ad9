"""Evaluation: COCO detection metrics with per-box outcomes, and mask confusion matrices.

* :func:`evaluate_coco`: COCOeval's statistics (pycocotools, or faster-coco-eval
  where installed), every prediction marked TP / FP and every ground-truth
  instance matched / FN at IoU 0.50 and 0.75 (:mod:`gpu_media.eval.coco`).
* :func:`evaluate_boxes`: the same for two batched box specs of one batch
  (an .npz's box keys), without COCO files.
* :func:`confusion_matrix`: per-image and summed confusion matrices of two
  class-id masks, computed by the backend, with per-class IoU, mIoU and pixel
  accuracy (:mod:`gpu_media.eval.confusion`).

Both return frozen dataclasses with ``to_json()``, the index's ``eval`` section
(docs/SPEC.md). pycocotools / faster-coco-eval are imported when called.
"""

from __future__ import annotations

from .coco import (
    ENGINES,
    OUTCOME_COLORS,
    STATS_NAMES,
    ClassEvaluation,
    CocoEvaluation,
    ImageEvaluation,
    Mark,
    evaluate_boxes,
    evaluate_coco,
    outcome_colors,
    summary_lines,
)
from .confusion import ConfusionResult, confusion_matrix

__all__ = ["ConfusionResult", "confusion_matrix", "ENGINES", "STATS_NAMES", "ClassEvaluation", "CocoEvaluation",
           "ImageEvaluation", "Mark", "evaluate_boxes", "evaluate_coco", "summary_lines",
           "OUTCOME_COLORS", "outcome_colors"]
