"""A folder of .npz shards as one dump (``gpu-media dump SHARDS_DIR OUT``), and parts merged as one batch."""

import os

import numpy as np
import pytest

import gpu_media as gm
from dataset_helpers import split_npz, tree
from gpu_media import cli
from gpu_media.dump import write_dump_batches
from gpu_media.formats import shards as gm_shards

DEMO_NPZ = os.path.join(os.path.dirname(gm.__file__), "demo", "demo.npz")


def test_shards_folder_equals_the_single_npz(tmp_path, capsys):
    shards = split_npz(DEMO_NPZ, tmp_path / "shards", [0, 3, 4, 8])
    assert cli.main(["dump", DEMO_NPZ, str(tmp_path / "one")]) == 0
    assert cli.main(["dump", shards, str(tmp_path / "sharded")]) == 0
    assert tree(tmp_path / "sharded") == tree(tmp_path / "one")


def test_shards_must_agree(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    img = np.zeros((1, 4, 4, 3), np.uint8)
    np.savez(folder / "a.npz", images=img, class_labels='{"1": "car"}')
    np.savez(folder / "b.npz", images=img, class_labels='{"1": "bus"}')
    with pytest.raises(gm.MediaError, match="class_labels differ"):
        gm_shards.shard_classes(gm_shards.npz_shards(folder))
    np.savez(folder / "b.npz", images=img.transpose(0, 3, 1, 2), layout="NCHW", class_labels='{"1": "car"}')
    with pytest.raises(gm.MediaError, match="layout 'NCHW' differs"):
        gm_shards.shard_layout(gm_shards.npz_shards(folder))
    with pytest.raises(gm.MediaError, match="no .npz shards"):
        gm_shards.npz_shards(tmp_path)


def test_shard_rows_split_one_shard_per_image():
    kwargs = {"images": np.arange(2 * 3 * 4 * 2).reshape(2, 3, 4, 2).astype(np.uint8), "layout": "NCHW",
              "captions": ["a", "b"], "masks": {"m": {"mask_data": np.zeros((2, 4, 2))}},
              "boxes": {"b": {"xyxy": np.array([[0, 0, 1, 1], [1, 1, 2, 2], [0, 0, 2, 2.0]]),
                              "image_index": np.array([1, 0, 1]), "class_id": np.array([5, 6, 7]),
                              "scores": {"score": np.array([0.1, 0.2, 0.3])}}}}
    rows = gm_shards.shard_rows(kwargs)
    assert [r["image"].shape for r in rows] == [(4, 2, 3), (4, 2, 3)]
    np.testing.assert_array_equal(rows[1]["image"], kwargs["images"][1].transpose(1, 2, 0))
    assert [r["caption"] for r in rows] == ["a", "b"]
    assert rows[0]["boxes__b__class_id"].tolist() == [6] and rows[1]["boxes__b__class_id"].tolist() == [5, 7]
    assert rows[1]["boxes__b__score"].tolist() == [0.1, 0.3]


def test_parts_merge_their_labels_as_one_batch_would(tmp_path):
    """Default (wandb ``class_<c>``) labels differ between parts; the index lists them as for one batch."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    masks = np.stack([np.full((6, 5), c, np.uint8) for c in (3, 1, 2, 0)])
    xyxy = np.array([[0, 0, 2, 2.0]] * 4)
    boxes = {"b": {"xyxy": xyxy, "image_index": np.arange(4), "class_id": np.array([9, 4, 7, 1])}}
    gm.write_dump(tmp_path / "one", images, key="k", masks={"m": {"mask_data": masks}}, boxes=boxes)
    parts = [{"images": images[lo:hi], "masks": {"m": {"mask_data": masks[lo:hi]}},
              "boxes": {"b": {"xyxy": xyxy[lo:hi], "image_index": np.arange(hi - lo),
                              "class_id": boxes["b"]["class_id"][lo:hi]}}} for lo, hi in ((0, 1), (1, 3), (3, 4))]
    write_dump_batches(tmp_path / "parts", parts, key="k")
    assert tree(tmp_path / "parts") == tree(tmp_path / "one")
