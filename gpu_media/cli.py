"""The ``gpu-media`` command: ``dump`` an .npz batch or a COCO folder to wandb's layout, run the
``demo``, or ``view`` a dump in the browser."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib import resources

import numpy as np

from .dump import index_path, write_dump
from .errors import DeviceError, MediaError

NPZ_HELP = """INPUT is an .npz, or with --coco a folder of images (see below). An .npz holds:
  images                 (N,H,W,C) or (N,H,W); (N,C,H,W) with a 'layout' entry "NCHW"
  layout                 optional string, one of NHWC NCHW NHW
  masks__<key>           optional (N,H,W) integer class ids, one entry per mask key
  boxes__<key>__xyxy     optional (M,4) pixel boxes x0,y0,x1,y1 (x1, y1 exclusive)
  boxes__<key>__image_index (M,)  batch index of each box
  boxes__<key>__class_id    (M,)  class id of each box
  boxes__<key>__score       (M,)  optional score of each box
  class_labels           optional JSON string {"<id>": "<name>", ...}
  captions               optional (N,) strings

COCO: gpu-media dump IMAGES_DIR OUT_DIR --coco instances.json [--predictions results.json]
  Ground truth from a COCO instances file, predictions from a COCO results file:
  box keys and mask keys "ground_truth" and "predictions" (masks need the coco
  extra: pip install 'gpu-media[coco]'). Where instances overlap in a mask, ground
  truth is painted largest first (smaller instances stay visible) and predictions
  lowest score first (the most confident wins).
"""


def load_npz(path: str) -> dict:
    """Read the CLI's .npz input into write_dump's keyword arguments (no pickles)."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read as .npz ({exc})") from None
    with z:
        names = set(z.files)
        if "images" not in names:
            raise MediaError(f"{path}: no 'images' entry (entries: {sorted(names)})")
        out = {"images": z["images"]}
        if "layout" in names:
            out["layout"] = str(z["layout"])
        masks, boxes = {}, {}
        for name in sorted(names):
            parts = name.split("__")
            if parts[0] == "masks" and len(parts) == 2:
                masks[parts[1]] = {"mask_data": z[name]}
            elif parts[0] == "boxes" and len(parts) == 3:
                field = {"xyxy": "xyxy", "image_index": "image_index", "class_id": "class_id", "score": "score"}.get(parts[2])
                if field is None:
                    raise MediaError(f"{path}: unknown box entry {name!r} (xyxy, image_index, class_id or score)")
                spec = boxes.setdefault(parts[1], {"domain": "pixel"})
                if field == "score":
                    spec["scores"] = {"score": z[name]}
                else:
                    spec[field] = z[name]
            elif name not in ("images", "layout", "class_labels", "captions"):
                raise MediaError(f"{path}: unknown entry {name!r}")
        for key, spec in boxes.items():
            if "xyxy" not in spec:
                raise MediaError(f"{path}: box key {key!r} has no boxes__{key}__xyxy entry")
        if masks:
            out["masks"] = masks
        if boxes:
            out["boxes"] = boxes
        if "class_labels" in names:
            try:
                out["classes"] = {int(k): str(v) for k, v in json.loads(str(z["class_labels"])).items()}
            except (ValueError, AttributeError) as exc:
                raise MediaError(f"{path}: class_labels must be a JSON object {{id: name}} ({exc})") from None
        if "captions" in names:
            out["captions"] = [str(c) for c in z["captions"].reshape(-1)]
    return out


def _print_locations(summary: dict, out_dir, stream) -> None:
    print(f"index: {summary['index']}", file=stream)
    print(f"viewer: {os.path.join(summary['out_dir'], 'index.html')}  (or: gpu-media view {out_dir})", file=stream)


def run_dump(input_path, out_dir, *, key, step, file_type, quality, draw_boxes, device, compression_level=None,
             stream=None) -> dict:
    """Load, validate and write one dump; print and return a summary."""
    stream = sys.stdout if stream is None else stream
    kwargs = load_npz(input_path)
    t0 = time.perf_counter()
    dicts = write_dump(out_dir, kwargs.pop("images"), key=key, step=step, file_type=file_type, quality=quality,
                       compression_level=compression_level, draw_boxes=draw_boxes, device=device, progress=True,
                       **kwargs)
    seconds = time.perf_counter() - t0
    n_masks = sum(len(d.get("masks", {})) for d in dicts)
    n_boxes = sum(len(spec["xyxy"]) for spec in kwargs.get("boxes", {}).values())
    summary = {"out_dir": os.path.abspath(out_dir), "index": os.path.abspath(index_path(out_dir, key, step)),
               "images": len(dicts), "masks": n_masks, "mask_keys": sorted(kwargs.get("masks", {})),
               "boxes": n_boxes, "box_keys": sorted(kwargs.get("boxes", {})), "seconds": round(seconds, 3)}
    print(f"wrote {summary['images']} images, {n_masks} masks ({', '.join(summary['mask_keys']) or 'none'}) and "
          f"{n_boxes} boxes ({', '.join(summary['box_keys']) or 'none'}) to {summary['out_dir']} "
          f"in {seconds:.2f} s", file=stream)
    _print_locations(summary, out_dir, stream)
    return summary


def run_coco(images_dir, out_dir, *, instances, predictions, score_threshold, skip_bad, key, step, file_type,
             quality, draw_boxes, device, compression_level=None, batch_size=64, stream=None) -> dict:
    """Check and dump a COCO folder (gpu_media.coco); print and return a summary."""
    import warnings

    from .coco import CocoWarning, write_coco_dump

    stream = sys.stdout if stream is None else stream
    if not os.path.isdir(images_dir):
        raise MediaError(f"{images_dir!r} is not a folder of images (with --coco, INPUT is the images folder)")
    reader = None
    if device == "gpu":
        from . import dali_reader
        from .backend import resolve_device

        resolve_device("gpu")  # DeviceError without CuPy and a GPU, before DALI is asked for one
        reader = dali_reader.reader_or_none()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CocoWarning)
        ds, dicts = write_coco_dump(out_dir, images_dir, instances, predictions, key=key, step=step,
                                    score_threshold=score_threshold, skip_bad=skip_bad, batch_size=batch_size,
                                    device=device, reader=reader, file_type=file_type, quality=quality,
                                    compression_level=compression_level, draw_boxes=draw_boxes, progress=True)
    seconds = time.perf_counter() - t0
    for w in caught:
        if issubclass(w.category, CocoWarning):
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
    _print_locations(summary, out_dir, stream)
    return summary


def demo_input() -> str:
    """Path of the bundled demo batch (real photographs, see gpu_media/demo/SOURCES.md)."""
    return str(resources.files("gpu_media.demo").joinpath("demo.npz"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="gpu-media", description="Batches of images to wandb-compatible media files.")
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
        a.add_argument("--format", dest="file_type", choices=["png", "jpg", "jpeg", "bmp"], default="png")
        a.add_argument("--quality", type=int, default=75, help="JPEG quality 1..100 (default 75)")
        a.add_argument("--compression-level", type=int, default=None,
                       help="PNG zlib level 0..9 (default: fast level 1 + RLE; 6 = wandb's bytes)")
        a.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    d.add_argument("--draw-boxes", action="store_true", help="burn box outlines into the images")
    d.add_argument("--coco", metavar="INSTANCES_JSON", help="COCO instances file: INPUT is the images folder")
    d.add_argument("--predictions", metavar="RESULTS_JSON", help="COCO results file (needs --coco)")
    d.add_argument("--score-threshold", type=float, default=None, metavar="T",
                   help="keep predictions with score >= T (needs --predictions)")
    d.add_argument("--skip-bad", action="store_true",
                   help="leave out bad images and annotations with a warning and a count, instead of stopping")
    d.add_argument("--batch-size", type=int, default=64, help="COCO images decoded and written at once (default 64)")
    v = sub.add_parser("view", help="serve a dump folder's viewer (index.html) on 127.0.0.1 and print its URL")
    v.add_argument("out_dir")
    v.add_argument("--port", type=int, default=0, help="port (default 0: any free one)")
    v.add_argument("--rebuild", action="store_true", help="rewrite index.html from the *.index.json files first")
    e.add_argument("--no-draw-boxes", dest="draw_boxes", action="store_false", help="keep the photographs unmarked")
    args = p.parse_args(argv)
    try:
        if args.command == "view":
            from .viewer import view

            try:
                return view(args.out_dir, port=args.port, rewrite=args.rebuild)
            except NotADirectoryError as exc:
                print(f"gpu-media: error: {exc}", file=sys.stderr)
                return 2
        if args.command == "dump" and args.coco:
            if args.batch_size < 1:
                p.error("--batch-size must be at least 1")
            run_coco(args.input, args.out_dir, instances=args.coco, predictions=args.predictions,
                     score_threshold=args.score_threshold, skip_bad=args.skip_bad, key=args.key or "coco",
                     step=args.step, file_type=args.file_type, quality=args.quality, draw_boxes=args.draw_boxes,
                     device=args.device, compression_level=args.compression_level, batch_size=args.batch_size)
            return 0
        if args.command == "dump":
            for flag in ("predictions", "score_threshold"):
                if getattr(args, flag) is not None:
                    p.error(f"--{flag.replace('_', '-')} needs --coco")
            source, key = args.input, args.key or "images"
        else:
            source, key = demo_input(), args.key or "demo"
        run_dump(source, args.out_dir, key=key, step=args.step, file_type=args.file_type, quality=args.quality,
                 draw_boxes=args.draw_boxes, device=args.device, compression_level=args.compression_level)
    except (MediaError, DeviceError) as exc:
        print(f"gpu-media: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
