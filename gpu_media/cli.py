"""The ``gpu-media`` command.

``dump`` an .npz batch or a COCO folder to wandb's layout, run the ``demo``, or
``view`` a dump in the browser.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from importlib import resources
from typing import Any, Sequence, TextIO

import numpy as np

from . import __version__
from .codecs import FILE_TYPES
from .dump import DumpOptions, check_key_step, index_path, write_batches
from .errors import DeviceError, MediaError, ViewerWarning
from .formats import coco as _coco
from .formats import npz as _npz
from .formats import shards as _shards
from .formats.npz import load_npz  # noqa: F401  (``gpu_media.cli.load_npz``, as before the move)
from .storage import check_local_folder as check_out_dir  # the CLI's name for it (tests, users)

#: How to install an extra from the checkout (the package is not on PyPI).
RAY_EXTRA = 'pip install ".[ray]"'

#: ``gpu-media dump --help``: the inputs, each documented by its reader in ``gpu_media.formats``.
NPZ_HELP = (
    "INPUT is an .npz, a folder of .npz shards, or with --coco a folder of images (see below). An .npz holds:\n"
    + _npz.NPZ_HELP + "\n" + _shards.SHARDS_HELP + "\n" + _coco.COCO_HELP
)


def _error_line(exc: BaseException) -> str:
    """The one line ``gpu-media: error: ...`` for an expected failure (bad input, the disk, the device)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return "gpu-media: error: " + " ".join(text.split("\n"))


class _Parser(argparse.ArgumentParser):
    """argparse with a bad command line as one ``gpu-media: error: ...`` line (exit 2), not the usage block."""

    def error(self, message: str):
        """Print ``gpu-media: error: <message> (see '<prog> --help')`` on stderr and exit with status 2."""
        text = " ".join(message.split())
        self.exit(2, f"gpu-media: error: {text} (see '{self.prog} --help')\n")


def _print_locations(summary: dict, out_dir: str | os.PathLike, stream: TextIO) -> None:
    print(f"index: {summary['index']}", file=stream)
    print(f"viewer: {os.path.join(summary['out_dir'], 'index.html')}  (or: gpu-media view {out_dir})", file=stream)


def run_dump(input_path: str | os.PathLike, out_dir: str | os.PathLike, *, key: str, step: int | str,
             file_type: str, quality: int, draw_boxes: bool, device: str, compression_level: int | None = None,
             overwrite: bool = False, durable: bool = True, stream: TextIO | None = None,
             layout: str | None = None, eval_gt: str | None = None, eval_pred: str | None = None,
             eval_engine: str = "auto") -> dict[str, Any]:
    """Load, validate and write one dump of an .npz, or of a folder of .npz shards; print and return a summary.

    ``layout`` (``--layout``) wins over the input's ``layout`` entry (docs/SPEC.md 1: an explicit layout wins).
    With ``eval_gt`` and ``eval_pred`` (``--eval --eval-gt KEY --eval-pred KEY``, an
    .npz only): the two box keys are evaluated as COCO detections and / or the two
    mask keys as semantic segmentation (:func:`npz_evaluation`), before anything is
    written; the summary gets ``"eval"``.
    """
    stream = sys.stdout if stream is None else stream
    if eval_gt is not None and os.path.isdir(input_path):
        raise MediaError("--eval reads one .npz (or --coco), not a folder of shards")
    if os.path.isdir(input_path):
        shards = _shards.npz_shards(input_path)
        kwargs = {"layout": layout or _shards.shard_layout(shards), "classes": _shards.shard_classes(shards)}
        parts: Any = _shards.shard_parts(shards)
        total = None
    else:
        kwargs = load_npz(input_path)
        if layout is not None:
            kwargs["layout"] = layout
        parts = [{name: kwargs.get(name) for name in ("images", "masks", "boxes", "captions")}]
        total = len(kwargs["images"])
    check_key_step(key, step)
    check_out_dir(out_dir)
    evaluation = section = None
    if eval_gt is not None:
        evaluation = npz_evaluation(kwargs, eval_gt, eval_pred, device=device, engine=eval_engine)
        section = npz_eval_section(evaluation)
        if draw_boxes and "detection" in evaluation:
            parts = [{**parts[0], "boxes": outcome_boxes(kwargs["boxes"], evaluation)}]
    options = DumpOptions(file_type=file_type, quality=quality, compression_level=compression_level,
                          draw_boxes=draw_boxes, device=device, progress=True, layout=kwargs.get("layout"),
                          classes=kwargs.get("classes"), overwrite=overwrite, durable=durable)
    seen = {"boxes": 0, "box_keys": set(), "mask_keys": set()}

    def counted(parts):
        for part in parts:
            seen["boxes"] += sum(len(spec["xyxy"]) for spec in (part.get("boxes") or {}).values())
            seen["box_keys"] |= set(part.get("boxes") or {})
            seen["mask_keys"] |= set(part.get("masks") or {})
            yield part

    t0 = time.perf_counter()
    dicts = write_batches(out_dir, counted(parts), options, key=key, step=step, total=total, evaluation=section)
    seconds = time.perf_counter() - t0
    n_masks = sum(len(d.get("masks", {})) for d in dicts)
    n_boxes = seen["boxes"]
    summary = {"out_dir": os.path.abspath(out_dir), "index": os.path.abspath(index_path(out_dir, key, step)),
               "images": len(dicts), "masks": n_masks, "mask_keys": sorted(seen["mask_keys"]),
               "boxes": n_boxes, "box_keys": sorted(seen["box_keys"]), "seconds": round(seconds, 3)}
    print(f"wrote {summary['images']} images, {n_masks} masks ({', '.join(summary['mask_keys']) or 'none'}) and "
          f"{n_boxes} boxes ({', '.join(summary['box_keys']) or 'none'}) to {summary['out_dir']} "
          f"in {seconds:.2f} s", file=stream)
    if evaluation is not None:
        summary["eval"] = _print_evaluation(evaluation, stream)
    _print_locations(summary, out_dir, stream)
    return summary


def _image_sizes(images: Any, layout: str | None) -> list:
    """(H, W) of each image of an .npz batch (NHWC, NCHW or NHW)."""
    shape = tuple(int(v) for v in np.shape(images))
    if layout == "NCHW":
        return [shape[2:4]] * shape[0]
    return [shape[1:3]] * shape[0]


def npz_evaluation(kwargs: dict[str, Any], gt_key: str, pred_key: str | None, *, device: str = "auto",
                   engine: str = "auto") -> dict[str, Any]:
    """``--eval`` of an .npz: its box keys ``gt_key``/``pred_key`` and / or its mask keys of those names.

    Args:
        kwargs: :func:`gpu_media.formats.npz.load_npz`'s result.
        gt_key: the ground truth's key (a box key, a mask key, or both).
        pred_key: the predictions' key (the same kinds as ``gt_key``).
        device: where the mask confusion matrix is computed ("auto", "cpu", "gpu").
        engine: as for :func:`gpu_media.eval.evaluate_coco`.

    Returns:
        ``{"detection": CocoEvaluation, "segmentation": ConfusionResult}`` (either
        may be absent), plus ``"keys": (gt_key, pred_key)``.

    Raises:
        gpu_media.MediaError: ``pred_key`` missing, keys that are neither two box keys
            nor two mask keys of the file, predictions without scores; as
            :func:`gpu_media.eval.evaluate_boxes` and
            :func:`gpu_media.eval.confusion_matrix`.
    """
    from .eval import confusion_matrix, evaluate_boxes

    if not pred_key:
        raise MediaError("--eval on an .npz needs --eval-gt KEY and --eval-pred KEY")
    boxes, masks = kwargs.get("boxes") or {}, kwargs.get("masks") or {}
    out: dict[str, Any] = {"keys": (gt_key, pred_key)}
    sizes = _image_sizes(kwargs["images"], kwargs.get("layout"))
    labels = kwargs.get("classes")
    if gt_key in boxes and pred_key in boxes:
        out["detection"] = evaluate_boxes(boxes[gt_key], boxes[pred_key], sizes, class_labels=labels, engine=engine)
    if gt_key in masks and pred_key in masks:
        g, p = np.asarray(masks[gt_key]["mask_data"]), np.asarray(masks[pred_key]["mask_data"])
        top = max([int(g.max()) if g.size else 0, int(p.max()) if p.size else 0, *(labels or {}).keys()])
        num_classes = min(max(top + 1, 1), 256)
        out["segmentation"] = confusion_matrix(g, p, num_classes, device=device, class_labels=labels)
    if len(out) == 1:
        raise MediaError(f"--eval-gt {gt_key!r} --eval-pred {pred_key!r}: not two box keys "
                         f"({', '.join(sorted(boxes)) or 'none'}) nor two mask keys "
                         f"({', '.join(sorted(masks)) or 'none'}) of the .npz")
    return out


def npz_eval_section(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The index's ``eval`` section (docs/SPEC.md 6.6) of :func:`npz_evaluation`'s result.

    Args:
        evaluation: :func:`npz_evaluation`'s result.

    Returns:
        ``{"detection": ..., "segmentation": ...}`` (those evaluated).
    """
    gt_key, pred_key = evaluation["keys"]
    out: dict[str, Any] = {}
    if "detection" in evaluation:
        det = evaluation["detection"].to_json()
        out["detection"] = {"iou_type": det.pop("iou_type"), "gt_key": gt_key, "pred_key": pred_key,
                            "engine": evaluation["detection"].engine, **det}
    if "segmentation" in evaluation:
        out["segmentation"] = {"gt_key": gt_key, "pred_key": pred_key, **evaluation["segmentation"].to_json()}
    return out


def outcome_boxes(boxes: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
    """The .npz's box specs with ``colors`` by outcome (docs/SPEC.md 6.6) on the evaluated keys.

    Args:
        boxes: the batched box specs of the .npz.
        evaluation: :func:`npz_evaluation`'s result with a ``"detection"``.

    Returns:
        a copy of ``boxes``; the two evaluated keys get ``"colors"`` (M,3), one per
        box row in the spec's order (image i's marks are in the order of its rows).
    """
    from .eval import outcome_colors

    gt_key, pred_key = evaluation["keys"]
    det = evaluation["detection"]
    out = dict(boxes)
    for key, side in ((gt_key, "gt"), (pred_key, "pred")):
        spec = boxes[key]
        rows = np.asarray(spec.get("image_index", np.zeros(len(np.asarray(spec["xyxy"])))), dtype=np.int64).reshape(-1)
        seen = [0] * len(det.images)
        marks = []
        for i in rows.tolist():
            marks.append(getattr(det.images[i], side)[seen[i]])
            seen[i] += 1
        out[key] = {**spec, "colors": outcome_colors(marks)}
    return out


def _print_evaluation(evaluation: dict[str, Any], stream: TextIO) -> dict[str, Any]:
    """Print pycocotools' 12-line summary and / or the masks' mIoU; return the numbers for the summary."""
    out: dict[str, Any] = {}
    det = evaluation.get("detection")
    if det is not None:
        print(det.summary(), file=stream)
        out["stats"] = list(det.stats)
        out["engine"] = det.engine
    seg = evaluation.get("segmentation")
    if seg is not None:
        miou = "n/a" if seg.miou is None else f"{seg.miou:0.3f}"
        acc = "n/a" if seg.pixel_accuracy is None else f"{seg.pixel_accuracy:0.3f}"
        print(f" Segmentation ({seg.num_classes} classes): mIoU = {miou}, pixel accuracy = {acc}", file=stream)
        out["miou"], out["pixel_accuracy"] = seg.miou, seg.pixel_accuracy
    return out


def run_coco(images_dir: str | os.PathLike, out_dir: str | os.PathLike, *, instances: str | os.PathLike,
             predictions: str | os.PathLike | None, score_threshold: float | None, skip_bad: bool, key: str,
             step: int | str, file_type: str, quality: int, draw_boxes: bool, device: str,
             compression_level: int | None = None, batch_size: int = 64, overwrite: bool = False,
             durable: bool = True, stream: TextIO | None = None, evaluate: str | None = None,
             eval_engine: str = "auto") -> dict[str, Any]:
    """Check and dump a COCO folder (:mod:`gpu_media.formats.coco`); print and return a summary.

    ``evaluate`` ("bbox" / "segm", ``--eval``): COCOeval over every prediction, its
    12-line summary printed as pycocotools prints it, the index's ``eval`` section.
    """
    import warnings

    stream = sys.stdout if stream is None else stream
    if not os.path.isdir(images_dir):
        raise MediaError(f"{images_dir!r} is not a folder of images (with --coco, INPUT is the images folder)")
    check_key_step(key, step)
    check_out_dir(out_dir)
    options = DumpOptions(file_type=file_type, quality=quality, compression_level=compression_level,
                          draw_boxes=draw_boxes, device=device, progress=True, overwrite=overwrite, durable=durable)
    reader = None
    if device == "gpu":
        from .backend import resolve_device
        from .cuda import dali_reader

        resolve_device("gpu")  # DeviceError without CuPy and a GPU, before DALI is asked for one
        reader = dali_reader.reader_or_none()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", _coco.CocoWarning)
        ds, dicts = _coco.dump_coco(out_dir, images_dir, instances, predictions, options, key=key, step=step,
                                    score_threshold=score_threshold, skip_bad=skip_bad, batch_size=batch_size,
                                    reader=reader, evaluate=evaluate, eval_engine=eval_engine)
    seconds = time.perf_counter() - t0
    for w in caught:
        if issubclass(w.category, _coco.CocoWarning):
            print(f"gpu-media: warning: {w.message}", file=sys.stderr)
    n_gt = sum(len(im.gt) for im in ds.images)
    n_pred = sum(len(im.pred) for im in ds.images)
    summary = {"out_dir": os.path.abspath(out_dir), "index": os.path.abspath(index_path(out_dir, key, step)),
               "images": len(dicts), "ground_truth": n_gt, "predictions": n_pred, "skipped": ds.skipped,
               "reader": "dali" if reader is not None else "pillow", "seconds": round(seconds, 3)}
    print(f"wrote {len(dicts)} images, {n_gt} ground-truth and {n_pred} predicted instances "
          f"({len(ds.categories)} categories) to {summary['out_dir']} in {seconds:.2f} s", file=stream)
    if any(ds.skipped.values()):
        print("skipped (--skip-bad): " + ", ".join(f"{v} {k}" for k, v in ds.skipped.items()), file=stream)
    if ds.evaluation is not None:
        summary["eval"] = _print_evaluation({"detection": ds.evaluation}, stream)
    _print_locations(summary, out_dir, stream)
    return summary


def _start_ray(address: str | None, verbose: bool = False) -> bool:
    """Connect to the Ray cluster at ``address``, or start a local Ray (``address`` None).

    Quiet unless ``verbose``: Ray's and Ray Data's log lines (and the workers' output)
    are not shown, only errors; ``verbose`` shows them as Ray prints them. Returns
    whether this call started Ray (then the command shuts it down: :func:`_stop_ray`).
    """
    import logging

    try:
        import ray
    except ImportError:
        raise MediaError(f"--ray needs Ray: {RAY_EXTRA}") from None
    if ray.is_initialized():
        return False
    if not verbose:
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # the C++ core's lines (E ... core_worker.cc)
        os.environ.setdefault("RAY_LOG_TO_STDERR", "0")
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    atexit.register(_stop_ray)  # before init: also when the command is interrupted or fails meanwhile
    with contextlib.nullcontext() if verbose else _quiet_fd2():  # the C++ core's start-up line
        ray.init(address=address or None, log_to_driver=verbose, logging_level="INFO" if verbose else "ERROR",
                 include_dashboard=False)
    if threading.current_thread() is threading.main_thread():  # after init, which installs a handler of its own
        signal.signal(signal.SIGTERM, _terminated)  # `kill`: finally blocks and atexit run, Ray goes too
    if not verbose:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    return True


def _terminated(signum, frame):
    """SIGTERM as an exit with status 143 (128 + 15) that runs ``finally`` blocks and atexit."""
    print("gpu-media: terminated", file=sys.stderr)
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _quiet_fd2():
    """File descriptor 2 to /dev/null for the block (what native code prints there), restored after."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _stop_ray() -> None:
    """Shut down the Ray that :func:`_start_ray` started (no-op when none is running)."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


def run_ray(input_path: str | os.PathLike, out: str, *, address: str | None, key: str, step: int | str,
            coco: str | None = None, predictions: str | None = None, score_threshold: float | None = None,
            skip_bad: bool = False, workers: int | None = None, batch_size: int = 64,
            stream: TextIO | None = None, verbose: bool = False, **dump_kwargs: Any) -> dict[str, Any]:
    """``gpu-media dump ... --ray``: a COCO folder or a folder of .npz shards dumped by Ray workers.

    Args:
        input_path: with ``coco``, the images folder; else a folder of ``.npz`` shards.
        out: the dump folder or an fsspec URL (``s3://bucket/prefix``; credentials and
            endpoint from the environment, as s3fs reads them).
        address: the Ray cluster (``ray://host:10001``, ``auto``), or None for a local Ray.
        key: the log key.
        step: the step.
        coco: the COCO instances file, or None.
        predictions: the COCO results file, or None.
        score_threshold: as for ``--score-threshold``.
        skip_bad: as for ``--skip-bad``.
        workers: Ray actors (default: see :func:`gpu_media.ray.write_dump_dataset`).
        batch_size: images per block.
        stream: where the summary goes (default stdout).
        verbose: show Ray's log lines (else only errors).
        **dump_kwargs: file_type, quality, compression_level, draw_boxes, device,
            overwrite, durable.

    Returns:
        the summary printed.
    """
    import warnings

    from . import ray as gm_ray
    from .storage import is_url

    stream = sys.stdout if stream is None else stream
    check_key_step(key, step)
    if not is_url(out):
        check_out_dir(out)
    labels: dict[str, Any] = {}
    if coco is not None:
        if not os.path.isdir(input_path):
            raise MediaError(f"{input_path!r} is not a folder of images (with --coco, INPUT is the images folder)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", _coco.CocoWarning)
            data = _coco.load_coco(input_path, coco, predictions, score_threshold=score_threshold,
                                   skip_bad=skip_bad)
        for w in caught:
            if issubclass(w.category, _coco.CocoWarning):
                print(f"gpu-media: warning: {w.message}", file=sys.stderr)
        if data.has_gt_masks or data.has_pred_masks:
            _coco.pycocotools_mask()  # pycocotools, before any work
    else:
        shards = _shards.npz_shards(input_path)
        labels["classes"] = _shards.shard_classes(shards)
    started = _start_ray(address, verbose)
    try:
        if coco is not None:
            ds, labels["mask_labels"], labels["box_labels"] = gm_ray.coco_dataset(data)
        else:
            ds = gm_ray.npz_shards_dataset(shards)
        t0 = time.perf_counter()
        result = gm_ray.write_dump_dataset(ds, out, key=key, step=step, batch_size=batch_size,
                                           num_workers=workers, **labels, **dump_kwargs)
        seconds = time.perf_counter() - t0
    finally:
        if started:  # a Ray this command started goes with it, whatever happened
            _stop_ray()
    where = out if is_url(out) else os.path.abspath(out)
    summary = {"out_dir": where, "index": result.index, "images": result.count, "blocks": result.blocks,
               "written": result.written, "seconds": round(seconds, 3)}
    print(f"wrote {result.count} images in {result.blocks} blocks ({result.blocks - result.written} done before) "
          f"to {where} with Ray in {seconds:.2f} s", file=stream)
    print(f"index: {result.index}", file=stream)
    print(f"viewer: {where.rstrip('/')}/index.html", file=stream)
    return summary


def demo_input() -> str:
    """Path of the bundled demo batch (real photographs, see gpu_media/demo/SOURCES.md)."""
    return str(resources.files("gpu_media.demo").joinpath("demo.npz"))


def _check_eval_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The ``--eval`` flags' combinations (``p.error`` exits with status 2)."""
    if not args.eval and (args.eval_gt or args.eval_pred):
        p.error("--eval-gt/--eval-pred need --eval")
    if args.eval and args.coco and not args.predictions:
        p.error("--eval with --coco needs --predictions")
    if args.eval and not args.coco and not (args.eval_gt and args.eval_pred):
        p.error("--eval on an .npz needs --eval-gt KEY and --eval-pred KEY")
    if args.eval and args.ray is not None:
        p.error("--eval does not run with --ray yet")


def main(argv: Sequence[str] | None = None) -> int:
    """``gpu-media``: returns the exit status (0; 2 for a failure, as one line on stderr; 130 on Ctrl-C)."""
    p = _Parser(prog="gpu-media", description="Batches of images to wandb-compatible media files.",
                epilog="A failure prints one line 'gpu-media: error: ...' and exits with status 2. A dump that is "
                       "written and indexed but whose viewer page (index.html) could not be updated prints one "
                       "line 'gpu-media: warning: ...' and exits with status 0.")
    p.add_argument("--version", action="version", version=f"gpu-media {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="write an .npz batch as wandb media files + index",
                       description=NPZ_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("input", help=".npz input, or with --coco the folder of images (see above)")
    d.add_argument("out_dir")
    e = sub.add_parser("demo", help="dump the bundled real photographs with their masks and boxes")
    e.add_argument("out_dir")
    for a in (d, e):
        a.add_argument("--key", default=None, help="log key (dump: 'images', demo: 'demo')")
        a.add_argument("--step", type=int, default=0)
        a.add_argument("--format", dest="file_type", choices=FILE_TYPES, default="png")
        a.add_argument("--quality", type=int, default=75, help="JPEG quality 1..100 (default 75)")
        a.add_argument("--compression-level", type=int, default=None,
                       help="PNG zlib level 0..9 (default: fast level 1 + RLE; 6 = wandb's bytes)")
        a.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
        a.add_argument("--overwrite", action="store_true",
                       help="replace the dump of this key and step if OUT_DIR has one (else that is an error)")
        a.add_argument("--no-durable", dest="durable", action="store_false",
                       help="skip the fsyncs: faster, but a power cut may leave an index naming short files")
    d.add_argument("--draw-boxes", action="store_true", help="burn box outlines into the images")
    d.add_argument("--coco", metavar="INSTANCES_JSON", help="COCO instances file: INPUT is the images folder")
    d.add_argument("--predictions", metavar="RESULTS_JSON", help="COCO results file (needs --coco)")
    d.add_argument("--score-threshold", type=float, default=None, metavar="T",
                   help="keep predictions with score >= T (needs --predictions)")
    d.add_argument("--eval", action="store_true",
                   help="evaluate: with --coco --predictions COCOeval over every prediction (pycocotools' 12-line "
                        "summary; --score-threshold only hides boxes); on an .npz the keys --eval-gt/--eval-pred "
                        "(two box keys: COCO detection metrics; two mask keys: confusion matrix, mIoU). "
                        "Results go into the index's eval section and the viewer")
    d.add_argument("--eval-iou-type", choices=["bbox", "segm"], default="bbox",
                   help="with --coco --eval (default bbox)")
    d.add_argument("--eval-engine", choices=["auto", "pycocotools", "faster-coco-eval"], default="auto",
                   help="COCOeval implementation (auto: pycocotools, the reference floats; else faster-coco-eval)")
    d.add_argument("--eval-gt", metavar="KEY", default=None, help="with --eval on an .npz: the ground truth's key")
    d.add_argument("--eval-pred", metavar="KEY", default=None, help="with --eval on an .npz: the predictions' key")
    d.add_argument("--skip-bad", action="store_true",
                   help="leave out bad images and annotations with a warning and a count, instead of stopping")
    d.add_argument("--batch-size", type=int, default=64,
                   help="COCO images decoded and written at once; with --ray, images per block (default 64)")
    d.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="encode and write on a Ray cluster (ray://host:10001, auto); without ADDRESS a local Ray. "
                        "INPUT: the images folder with --coco, else a folder of .npz shards. OUT may be an fsspec "
                        "URL (s3://bucket/prefix: pip install \".[ray,s3]\")")
    d.add_argument("--workers", type=int, default=None, help="with --ray: Ray actors (default: GPUs, else CPUs - 1)")
    d.add_argument("--verbose", action="store_true", help="with --ray: show Ray's log lines (default: errors only)")
    d.add_argument("--layout", choices=["NHWC", "NCHW", "NHW"], default=None,
                   help="how the images' axes are ordered (wins over the .npz's 'layout' entry); channel-first "
                        "(N,C,H,W) data needs NCHW, since a 4-d array is read as NHWC without it")
    v = sub.add_parser("view", help="serve a dump folder's viewer (index.html) on 127.0.0.1 and print its URL")
    v.add_argument("out_dir")
    v.add_argument("--port", type=int, default=0, help="port (default 0: any free one)")
    v.add_argument("--rebuild", action="store_true", help="rewrite index.html from the *.index.json files first")
    e.add_argument("--no-draw-boxes", dest="draw_boxes", action="store_false", help="keep the photographs unmarked")
    args = p.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ViewerWarning)
        rc = _dispatch(args, d)
    for w in caught:  # the dump is complete; its viewer page is not (exit status 0, documented)
        if issubclass(w.category, ViewerWarning):
            print(f"gpu-media: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return rc


def _dispatch(args: argparse.Namespace, d: argparse.ArgumentParser) -> int:
    """Run the parsed command; the exit status (see :func:`main`)."""
    try:
        if args.command == "view":
            from .viewer import view

            return view(args.out_dir, port=args.port, rewrite=args.rebuild)
        if args.command == "dump" and not args.coco:
            for flag in ("predictions", "score_threshold"):
                if getattr(args, flag) is not None:
                    d.error(f"--{flag.replace('_', '-')} needs --coco")
        if args.command == "dump" and args.layout is not None and (args.ray is not None or args.coco):
            d.error("--layout applies to an .npz input without --ray (with --ray, give each shard a 'layout' "
                    "entry; COCO images are read as they are)")
        if args.command == "dump":
            _check_eval_flags(d, args)
        if args.command == "dump" and args.ray is not None:
            if args.batch_size < 1:
                d.error("--batch-size must be at least 1")
            run_ray(args.input, args.out_dir, address=args.ray or None, key=args.key or ("coco" if args.coco
                    else "images"), step=args.step, coco=args.coco, predictions=args.predictions,
                    score_threshold=args.score_threshold, skip_bad=args.skip_bad, workers=args.workers,
                    batch_size=args.batch_size, file_type=args.file_type, quality=args.quality,
                    draw_boxes=args.draw_boxes, device=args.device, compression_level=args.compression_level,
                    overwrite=args.overwrite, durable=args.durable, verbose=args.verbose)
            return 0
        if args.command == "dump" and "://" in args.out_dir:
            d.error("an fsspec URL as OUT_DIR needs --ray")
        if args.command == "dump" and args.coco:
            if args.batch_size < 1:
                d.error("--batch-size must be at least 1")
            run_coco(args.input, args.out_dir, instances=args.coco, predictions=args.predictions,
                     score_threshold=args.score_threshold, skip_bad=args.skip_bad, key=args.key or "coco",
                     step=args.step, file_type=args.file_type, quality=args.quality, draw_boxes=args.draw_boxes,
                     device=args.device, compression_level=args.compression_level, batch_size=args.batch_size,
                     overwrite=args.overwrite, durable=args.durable,
                     evaluate=args.eval_iou_type if args.eval else None, eval_engine=args.eval_engine)
            return 0
        if args.command == "dump":
            source, key = args.input, args.key or "images"
        else:
            source, key = demo_input(), args.key or "demo"
        evaluate = args.command == "dump" and args.eval
        run_dump(source, args.out_dir, key=key, step=args.step, file_type=args.file_type, quality=args.quality,
                 draw_boxes=args.draw_boxes, device=args.device, compression_level=args.compression_level,
                 overwrite=args.overwrite, durable=args.durable, layout=getattr(args, "layout", None),
                 eval_gt=args.eval_gt if evaluate else None, eval_pred=args.eval_pred if evaluate else None,
                 eval_engine=getattr(args, "eval_engine", "auto"))
    except (MediaError, DeviceError, OSError, ValueError) as exc:  # MediaError is a ValueError; the disk: OSError
        print(_error_line(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpu-media: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
