"""Recorded check: the CLI's demo and COCO demo dumps stay byte-identical (tests/data/golden_dumps.json).

The record was made before the package was restructured (issue 10), so any change of
bytes in any file of a dump -- images, masks, boxes2D JSON, the index, index.html --
fails here. Regenerate only for an intended output change:
``python tests/test_golden_dumps.py --regenerate``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib import resources

import pytest

from gpu_media import cli
from gpu_media.fileio import LOCK_NAME

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "golden_dumps.json")
COCO = str(resources.files("gpu_media.demo").joinpath("coco"))
CASES = {
    "demo": ["demo", "{out}", "--device", "cpu"],
    "demojpg": ["demo", "{out}", "--format", "jpg", "--device", "cpu"],
    "coco": ["dump", os.path.join(COCO, "images"), "{out}", "--coco", os.path.join(COCO, "instances.json"),
             "--predictions", os.path.join(COCO, "results.json"), "--device", "cpu"],
}


def tree_digest(root: str) -> dict:
    """{relative path: sha256} of every file under ``root`` but the folder's lock file (local state)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f == LOCK_NAME and dirpath == root:
                continue
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root).replace(os.sep, "/")] = hashlib.sha256(fh.read()).hexdigest()
    return dict(sorted(out.items()))


def make(name: str, out: str) -> dict:
    """Run the CLI case ``name`` into ``out``; return its digest."""
    assert cli.main([a.format(out=out) for a in CASES[name]]) == 0
    return tree_digest(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dump_is_byte_identical_to_the_record(tmp_path, name):
    with open(GOLDEN) as f:
        golden = json.load(f)[name]
    got = make(name, str(tmp_path / name))
    assert sorted(got) == sorted(golden), "the dump's file names changed"
    changed = [p for p in golden if got[p] != golden[p]]
    assert not changed, f"files whose bytes changed: {changed}"


if __name__ == "__main__" and "--regenerate" in sys.argv:
    import tempfile

    with open(GOLDEN) as f:
        record = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            record[case] = make(case, os.path.join(tmp, case))
    with open(GOLDEN, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
