"""Regenerate ``cases.json`` (and the two mask files) from wandb 0.31 itself.

    python tests/data/wandb-0.31-cases/make_cases.py      # needs wandb==0.31.x (offline, no account)

:func:`build` is also what ``tests/test_wandb_cases.py`` runs against the installed
wandb, so the recorded file and the live check are the same cases. Each case logs
the fixed inputs of :func:`inputs` as ``wandb.Image`` objects bound to an offline run
(``bind_to_run`` + ``to_json``, what ``run.log`` does for one image) and records what
wandb wrote: the image JSON (paths, sha256, sizes), the text of the boxes2D files, the
wandb type of the image (``TypeRegistry.type_of(...).to_json()``) and the errors wandb
raises.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

#: (key, step) pairs of the key-to-path case: sub-folders, leading "/", "." and ".." components,
#: empty components, a trailing "/", spaces and ":", non-ASCII, a str step.
KEYS = [("val/pred", 0), ("/abs/x", 0), ("a/./b", 0), ("a/../b", 0), ("..", 0), (".", 0), ("a//b", 0),
        ("x/", 0), ("a b:c", 0), ("\u00fc/\u00f1", 0), ("a_b", 0), ("s", "epoch-1"), ("deep/er/key", 12)]
MASK_FILES = ("gt.mask.png", "seg.bmp")  # path-form masks: the last extension names the copy


def inputs() -> dict:
    """The pixels, mask and boxes every case logs (plain Python / NumPy, deterministic)."""
    px = (np.arange(6 * 8 * 3, dtype=np.int64).reshape(6, 8, 3) * 5 % 256).astype(np.uint8)
    mask = (np.arange(48).reshape(6, 8) % 3).astype(np.uint8)
    boxes = [
        {"position": {"minX": 1, "maxX": 3, "minY": 1, "maxY": 4}, "domain": "pixel", "class_id": 1},
        {"position": {"middle": [0.5, 0.5], "width": 0.25, "height": 0.5}, "class_id": 3,
         "box_caption": "drei \u00e9", "scores": {"score": 0.75}},
    ]
    return {"pixels": px, "mask": mask, "boxes": boxes, "labels": {1: "car", 3: "tree"}}


def write_mask_files(folder: str) -> None:
    """The two path-form mask files (PNG at zlib level 9, so never what a re-encode gives; an 8-bit BMP)."""
    from PIL import Image

    m = inputs()["mask"]
    Image.fromarray(m, mode="L").save(os.path.join(folder, "gt.mask.png"), compress_level=9)
    Image.fromarray((m * 2).astype(np.uint8), mode="L").save(os.path.join(folder, "seg.bmp"))


def _offline_run(run_dir: str):
    import wandb

    settings = wandb.Settings(mode="offline", silent=True, console="off", disable_git=True, disable_code=True,
                              save_code=False, x_disable_stats=True, x_disable_meta=True,
                              x_disable_machine_info=True, x_disable_viewer=True, x_save_requirements=False,
                              init_timeout=60)
    return wandb.init(mode="offline", dir=run_dir, project="gpu-media-cases", settings=settings)


def _type(img) -> dict:
    from wandb.sdk.data_types._dtypes import TypeRegistry

    return TypeRegistry.type_of(img).to_json()


def build(mask_dir: str, run_dir: str) -> dict:
    """Every case, as wandb (the installed version) writes it; ``mask_dir`` holds :data:`MASK_FILES`."""
    import wandb

    x = inputs()
    px, mask, boxes, labels = x["pixels"], x["mask"], x["boxes"], x["labels"]
    out: dict = {"wandb_version": wandb.__version__}
    run = _offline_run(run_dir)
    try:
        def bound(img, key, step):
            img.bind_to_run(run, key, step)
            doc = img.to_json(run)
            files = {}
            for entry in (doc.get("boxes") or {}).values():
                with open(os.path.join(run.dir, entry["path"]), encoding="utf-8") as f:
                    files[entry["path"]] = f.read()
            return {"json": doc, "boxes2D_files": files, "type": _type(img)}

        # keys to paths: image, mask_data (no labels) and boxes (with labels) under each key
        out["keys"] = []
        for key, step in KEYS:
            img = wandb.Image(px, masks={"m": {"mask_data": mask}},
                              boxes={"b": {"box_data": boxes, "class_labels": labels}})
            out["keys"].append({"key": key, "step": step, **bound(img, key, step)})
        # a box set without class_labels: its boxes2D file holds only box_data
        out["boxes_without_labels"] = bound(wandb.Image(px, boxes={"b": {"box_data": boxes}}), "nolabels", 0)
        # a box without class_id
        try:
            wandb.Image(px, boxes={"b": {"box_data": [{"position": boxes[0]["position"], "domain": "pixel"}]}})
            out["box_without_class_id"] = {"error": None}
        except Exception as exc:  # noqa: BLE001 - recorded as wandb raises it
            out["box_without_class_id"] = {"error": type(exc).__name__, "args": [str(a) for a in exc.args]}
        # masks given as {"path": file}: copied unchanged, named with the file's last extension
        pm = {k.split(".")[0]: {"path": os.path.join(mask_dir, k)} for k in MASK_FILES}
        out["path_masks"] = bound(wandb.Image(px, masks=pm), "pm", 0)
        # PNG and BMP wider than 65500 pixels
        wide = np.zeros((2, 65501, 3), np.uint8)  # (H, W, C) without a size-1 axis, which wandb squeezes
        wide[0, ::7] = 200
        out["wide"] = {ft: bound(wandb.Image(wide, file_type=ft), "wide", 0)["json"] for ft in ("png", "bmp")}
        tall = np.zeros((65501, 2, 3), np.uint8)
        tall[::5, 1] = 9
        out["tall"] = {ft: bound(wandb.Image(tall, file_type=ft), "tall", 0)["json"] for ft in ("png", "bmp")}
    finally:
        run.finish()
    return out


def main() -> int:
    write_mask_files(HERE)
    for k, v in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}.items():
        os.environ.setdefault(k, v)
    with tempfile.TemporaryDirectory() as tmp:
        cases = build(HERE, tmp)
    with open(os.path.join(HERE, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {os.path.join(HERE, 'cases.json')} from wandb {cases['wandb_version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
