"""``gpu_media.ray.write_dump_dataset``: a Ray Data dataset written as one dump by Ray actors.

Runs on a local Ray with 2 CPUs (as CI does). Every dump is compared file by file
(sha256 of every file, index and index.html included) with ONE single-process
``gpu_media.write_dump`` of the same rows. Skips where Ray is not installed.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dataset_helpers import make_rows, need_ray, single_process_dump, tree

need_ray()
pytestmark = pytest.mark.usefixtures("bounded")  # conftest.py: no test hangs CI

import gpu_media.ray as gmray  # noqa: E402
from gpu_media import DeviceError, MediaError  # noqa: E402


def dataset(ray, rows):
    return ray.data.from_items(rows)


@pytest.mark.parametrize("workers,batch_size", [(1, 4), (2, 3)])
def test_byte_identical_to_single_process_write_dump(ray, tmp_path, workers, batch_size):
    rows = make_rows(13)
    ref = single_process_dump(tmp_path / "ref", rows, key="val/pred", step=3)
    got = gmray.write_dump_dataset(dataset(ray, rows), str(tmp_path / "ray"), key="val/pred", step=3,
                                   batch_size=batch_size, num_workers=workers)
    assert tree(tmp_path / "ray") == tree(tmp_path / "ref")
    assert got.images == ref
    assert (got.count, got.blocks, got.written) == (13, -(-13 // batch_size), -(-13 // batch_size))
    assert not os.path.exists(tmp_path / "ray" / gmray.PARTS_DIR)  # the partial indexes are merged and removed
    # the default box labels are wandb's class_<c> of the WHOLE dataset, not of each block
    index = json.loads((tmp_path / "ray" / os.path.basename(got.index)).read_bytes())
    ids = sorted({int(c) for r in rows for c in r["boxes__pred__class_id"]})
    assert list(index["box_class_labels"]["pred"]) == [str(c) for c in ids]


@pytest.mark.parametrize("encoded", ["png", "jpeg"])
def test_encoded_file_rows(ray, tmp_path, encoded):
    rows = make_rows(7, seed=1, encoded=encoded)
    single_process_dump(tmp_path / "ref", rows, key="k", file_type="jpg", quality=90, draw_boxes=True)
    gmray.write_dump_dataset(dataset(ray, rows), str(tmp_path / "ray"), key="k", file_type="jpg", quality=90,
                             draw_boxes=True, batch_size=2, num_workers=1)
    assert tree(tmp_path / "ray") == tree(tmp_path / "ref")


def test_given_labels_and_options(ray, tmp_path):
    rows = make_rows(9, seed=2)
    classes = {c: f"c{c}" for c in range(20)}
    single_process_dump(tmp_path / "ref", rows, key="k", step="best", classes=classes, compression_level=6,
                        thickness=3, draw_boxes=True)
    gmray.write_dump_dataset(dataset(ray, rows), str(tmp_path / "ray"), key="k", step="best", classes=classes,
                             compression_level=6, thickness=3, draw_boxes=True, batch_size=4)
    assert tree(tmp_path / "ray") == tree(tmp_path / "ref")


#: The driver of the run that gets its worker killed: a separate process on the test's Ray.
KILLED_DRIVER = """
import sys, time
import ray
import gpu_media.ray as gmray
from dataset_helpers import make_rows

def slow(row):  # paces the blocks, so that the kill lands mid-run
    time.sleep(0.15)
    return row

ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
ray.data.DataContext.get_current().enable_progress_bars = False
gmray.write_dump_dataset(ray.data.from_items(make_rows(12, seed=3)).map(slow), sys.argv[2], key="k",
                         batch_size=2, num_workers=1, ray_remote_args={"max_restarts": 0, "max_task_retries": 0})
"""


def test_resume_after_a_worker_is_killed(ray, tmp_path):
    """SIGKILL the actor after its first block: the run does not finish; the re-run does only the missing blocks.

    The run is driven by another process on the same Ray: Ray Data may wait a long
    time for the dead actor, so a driver still running 30 s after the kill is killed
    too (the issue's "a worker or the driver was killed"). The kill races the actor
    (Ray may hand it several ready blocks at once), so a try whose kill lands after
    the last block is tried again in a new folder, five tries at most.
    """
    rows = make_rows(12, seed=3)
    single_process_dump(tmp_path / "ref", rows, key="k")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(gmray.__file__))]
        + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    address = ray.get_runtime_context().gcs_address
    for attempt in range(5):
        out = tmp_path / f"ray{attempt}"
        parts = out / gmray.PARTS_DIR / "k_0"
        driver = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, address, str(out)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and driver.poll() is None:
            done = sorted(parts.glob("*.json")) if parts.is_dir() else []
            if done:
                killed = json.loads(done[0].read_bytes())["writer"]["pid"]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.01)
        try:
            driver.wait(30)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
        assert killed is not None, "no block was written"
        left = len(list(parts.glob("*.json")))
        if left < 6:
            break  # killed mid-run
    else:
        pytest.fail("in 5 tries the kill never landed before the last block was written")
    assert left >= 1
    assert not (out / "k_0.index.json").exists()  # no index: the dump does not look complete

    again = gmray.write_dump_dataset(dataset(ray, rows), str(out), key="k", batch_size=2, num_workers=1)
    assert (again.blocks, again.written) == (6, 6 - left)
    assert tree(out) == tree(tmp_path / "ref")


def test_unknown_column_fails_before_any_work(ray, tmp_path):
    rows = [dict(r, path="x.png") for r in make_rows(2)]
    with pytest.raises(MediaError, match="unknown dataset column 'path'"):
        gmray.write_dump_dataset(dataset(ray, rows), str(tmp_path / "out"), key="k")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_device_gpu_needs_gpus_in_the_cluster(ray, tmp_path):
    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray cluster has GPUs")
    with pytest.raises(DeviceError, match="no GPUs"):
        gmray.write_dump_dataset(dataset(ray, make_rows(2)), str(tmp_path / "out"), key="k", device="gpu")


def test_placement_asks_for_one_gpu_per_actor_where_the_cluster_has_gpus():
    assert gmray.placement("auto", {"CPU": 64.0, "GPU": 8.0}) == ("gpu", {"num_gpus": 1, "num_cpus": 1}, 8)
    assert gmray.placement("auto", {"CPU": 2.0}) == ("cpu", {"num_cpus": 1}, 1)
    assert gmray.placement("cpu", {"CPU": 8.0, "GPU": 1.0}) == ("cpu", {"num_cpus": 1}, 7)
    assert gmray.placement("auto", {"CPU": 8.0, "GPU": 2.0}, 4, {"num_gpus": 0.5, "max_restarts": 2}) == (
        "gpu", {"num_gpus": 0.5, "num_cpus": 1, "max_restarts": 2}, 4)
    with pytest.raises(DeviceError, match="no GPUs"):
        gmray.placement("gpu", {"CPU": 8.0})


def test_empty_dataset(ray, tmp_path):
    with pytest.raises(MediaError, match="empty"):
        gmray.write_dump_dataset(ray.data.from_items([]), str(tmp_path / "out"), key="k")


def test_bad_rows_name_the_image(ray, tmp_path):
    rows = make_rows(4)
    rows[2]["masks__pred"] = np.zeros((5, 5), np.uint8)  # not the image's size
    with pytest.raises(Exception, match="mask"):
        gmray.write_dump_dataset(dataset(ray, rows), str(tmp_path / "out"), key="k", batch_size=4)
    assert not (tmp_path / "out" / "k_0.index.json").exists()


DEMO = os.path.join(os.path.dirname(gmray.__file__), "demo")


def test_cli_coco_with_ray_equals_without(ray, tmp_path):
    from gpu_media import cli

    coco = os.path.join(DEMO, "coco")
    args = [os.path.join(coco, "images"), "--coco", os.path.join(coco, "instances.json"),
            "--predictions", os.path.join(coco, "results.json"), "--format", "jpg", "--draw-boxes"]
    assert cli.main(["dump", args[0], str(tmp_path / "plain"), *args[1:]]) == 0
    assert cli.main(["dump", args[0], str(tmp_path / "ray"), *args[1:], "--batch-size", "3", "--ray"]) == 0
    assert tree(tmp_path / "ray") == tree(tmp_path / "plain")


def test_cli_npz_shards_with_ray_equal_the_single_npz(ray, tmp_path):
    from dataset_helpers import split_npz
    from gpu_media import cli

    npz = os.path.join(DEMO, "demo.npz")
    shards = split_npz(npz, tmp_path / "shards", [0, 5, 6, 8])
    assert cli.main(["dump", npz, str(tmp_path / "one")]) == 0
    assert cli.main(["dump", shards, str(tmp_path / "ray"), "--ray", "--batch-size", "2", "--workers", "1"]) == 0
    assert tree(tmp_path / "ray") == tree(tmp_path / "one")
    assert cli.main(["dump", shards, str(tmp_path / "ray"), "--ray"]) == 2  # exists: --overwrite needed
    assert cli.main(["dump", shards, str(tmp_path / "ray"), "--ray", "--overwrite"]) == 0
    assert tree(tmp_path / "ray") == tree(tmp_path / "one")


class _DriverKilled(BaseException):
    """The driver killed before its index, in-process: nothing catches it."""


def test_rerun_rewrites_a_written_block_whose_files_were_removed_meanwhile(ray, tmp_path, monkeypatch):
    """docs/SPEC.md 6.4/6.5: a block found written is written again when a file it names is gone.

    Between a killed run and its re-run, an overwrite of a key that aliases this one may
    remove files that only the killed run's blocks named (its claim died with it).
    Before, the re-run skipped the block and its index named the removed file.
    """
    rows = make_rows(6, seed=11)
    single_process_dump(tmp_path / "ref", rows, key="k", step=0)

    def killed(*args, **kwargs):
        raise _DriverKilled()

    monkeypatch.setattr(gmray, "finish_dump", killed)
    with pytest.raises(_DriverKilled):
        gmray.write_dump_dataset(dataset(ray, rows), tmp_path / "out", key="k", batch_size=2)
    monkeypatch.undo()
    out = tmp_path / "out"
    assert not os.path.exists(out / "k_0.index.json") and os.listdir(out / gmray.PARTS_DIR)
    gone = sorted(p for p in tree(out) if p.startswith("media/images/mask/"))[:2]
    for rel in gone:
        os.unlink(out / rel)
    got = gmray.write_dump_dataset(dataset(ray, rows), out, key="k", batch_size=2)
    assert tree(out) == tree(tmp_path / "ref")  # before: the index named the removed files
    assert 1 <= got.written < got.blocks  # the blocks of the removed files, again; the others skipped
