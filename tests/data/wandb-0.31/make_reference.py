"""Recreate the files in this folder with wandb itself (offline: no account, no network).

    pip install "wandb==0.31.0" numpy pillow
    python tests/data/wandb-0.31/make_reference.py OUT_DIR        # write the six files into OUT_DIR
    python tests/data/wandb-0.31/make_reference.py --check        # compare with the stored files, byte for byte

The scenario (see README.md here): one 96x64 RGB uint8 image, a red-ish rectangle on black,
logged as key ``val_images`` at step 3 with a mask set ``predictions`` (classes 0 background,
1 car, 2 road) and a box set ``predictions`` (one box in fractions with a score, one in pixels
as middle/width/height); then the same image twice as a list under key ``batch`` at step 4 with
a mask set ``gt``. The list items are bound with ``id_=<index>`` (the index-named files of
``seq_to_json.json``); wandb 0.31's own ``run.log`` binds them without an id, which gives
content-addressed names instead. The JSON files are the dicts wandb returns, written with the
layout below (indent 1; in ``seq_to_json.json`` lists on one line, mask entries one a line).

Only the test suite reads these files (``tests/conftest.py``: ``reference_dir``); nothing here
runs during the tests.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["image.png", "mask.png", "boxes2D.json", "image_to_json.json", "seq_to_json.json"]
LABELS = {0: "background", 1: "car", 2: "road"}
BOXES = [
    {"position": {"minX": 0.1, "maxX": 0.5, "minY": 0.125, "maxY": 0.625},
     "class_id": 1, "box_caption": "car 0.93", "scores": {"score": 0.93}},
    {"position": {"middle": [75, 52], "width": 30, "height": 15}, "domain": "pixel",
     "class_id": 2, "box_caption": "road"},
]


def inputs():
    """The (64,96,3) uint8 image and (64,96) uint8 mask the reference was made from."""
    img = np.zeros((64, 96, 3), np.uint8)
    img[8:40, 10:50] = (200, 30, 30)
    mask = np.zeros((64, 96), np.uint8)
    mask[8:40, 10:50] = 1  # car, under the first box
    mask[45:60, 60:90] = 2  # road, under the second box
    return img, mask


def seq_json_text(d):
    """``seq_to_json.json``'s layout: one top-level key a line, lists inline, masks one a line."""
    lines = []
    for k, v in d.items():
        if k == "all_masks":
            inner = ",\n".join("  " + json.dumps(m) for m in v)
            lines.append(f' "{k}": [\n{inner}\n ]')
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def make(out_dir):
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    if wandb.__version__ != "0.31.0":
        print(f"warning: wandb {wandb.__version__}, the stored files are from 0.31.0", file=sys.stderr)
    img, mask = inputs()
    with tempfile.TemporaryDirectory() as tmp:
        run = wandb.init(mode="offline", dir=tmp, project="gpu-media-reference")
        try:
            one = wandb.Image(
                img, caption="sample 0",
                masks={"predictions": {"mask_data": mask, "class_labels": LABELS}},
                boxes={"predictions": {"box_data": [dict(b) for b in BOXES], "class_labels": LABELS}},
            )
            one.bind_to_run(run, "val_images", 3)
            single = one.to_json(run)
            seq = [wandb.Image(img, caption=f"s{i}", masks={"gt": {"mask_data": mask, "class_labels": LABELS}})
                   for i in range(2)]
            for i, im in enumerate(seq):
                im.bind_to_run(run, "batch", 4, id_=i)
            separated = wandb.Image.seq_to_json(seq, run, "batch", 4)
            files = run.dir
            os.makedirs(out_dir, exist_ok=True)
            shutil.copyfile(os.path.join(files, single["path"]), os.path.join(out_dir, "image.png"))
            shutil.copyfile(os.path.join(files, single["masks"]["predictions"]["path"]),
                            os.path.join(out_dir, "mask.png"))
            shutil.copyfile(os.path.join(files, single["boxes"]["predictions"]["path"]),
                            os.path.join(out_dir, "boxes2D.json"))
        finally:
            run.finish()
    with open(os.path.join(out_dir, "image_to_json.json"), "w") as f:
        f.write(json.dumps(single, indent=1) + "\n")
    with open(os.path.join(out_dir, "seq_to_json.json"), "w") as f:
        f.write(seq_json_text(separated))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", help="where to write the files")
    ap.add_argument("--check", action="store_true", help="make them in a temporary folder and compare with this one")
    args = ap.parse_args(argv)
    if not args.check:
        if not args.out_dir:
            ap.error("give OUT_DIR or --check")
        make(args.out_dir)
        return 0
    with tempfile.TemporaryDirectory() as out:
        make(out)
        differ = [n for n in NAMES if read(os.path.join(out, n)) != read(os.path.join(HERE, n))]
    print("identical: " + ", ".join(n for n in NAMES if n not in differ))
    if differ:
        print("differ: " + ", ".join(differ))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
