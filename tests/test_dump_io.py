"""docs/SPEC.md 6.4: concurrent dumps, crashes and power loss lose nothing; overwrite; stale temporary files.

Also the progress bar and the folders a dump makes.
"""

import json
import multiprocessing
import os
import random
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from dump_workers import KEY, STEP, concurrent_worker, kill_batch, kill_dump

import gpu_media as gm
from gpu_media import cli, fileio
from gpu_media.dump import index_path
from gpu_media.viewer import page_data, static_page, viewer_data
from media_helpers import files_under

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)



def folders_under(root):
    return sorted(os.path.relpath(d, root) for d, _, _ in os.walk(root))


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([ROOT, HERE] + [p for p in [e.get("PYTHONPATH")] if p])
    return e


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def page_keys(root) -> list:
    return sorted(d["key"] for d in viewer_data(root)["dumps"])


def html_keys(root) -> list:
    """The keys of the dumps index.html shows (its data files, viewer/, read back as the page reads them)."""
    return sorted(d["key"] for d in page_data(root)["dumps"])


def small(seed=0, n=3, masks=True, boxes=True):
    rng = np.random.default_rng(seed)
    kw = {"images": rng.integers(0, 256, (n, 6, 7, 3), dtype=np.uint8)}
    if masks:
        kw["masks"] = {"m": {"mask_data": rng.integers(0, 3, (n, 6, 7))}}
    if boxes:
        kw["boxes"] = {"b": {"xyxy": [[0, 0, 3, 3], [1, 1, 5, 5]], "image_index": [0, n - 1], "class_id": [1, 2]}}
    return kw


# --------------------------------------------------------------------------- existing index, overwrite


def test_existing_index_is_an_error_before_any_file_is_written(device, tmp_path):
    gm.write_dump(tmp_path, key="k", step=2, device=device, **small(0))
    before = files_under(tmp_path)
    with pytest.raises(gm.DumpExistsError, match=r"overwrite=True") as info:
        gm.write_dump(tmp_path, key="k", step=2, device=device, **small(1))  # other pixels: other files
    assert isinstance(info.value, gm.MediaError)
    assert info.value.key == "k" and info.value.item == index_path(str(tmp_path), "k", 2)
    assert str(info.value.item) in str(info.value)
    assert files_under(tmp_path) == before

    def parts():
        raise AssertionError("the parts are not read when the index exists")
        yield

    with pytest.raises(gm.DumpExistsError):
        gm.dump.write_dump_batches(tmp_path, parts(), key="k", step=2, device=device)
    gm.write_dump(tmp_path, key="k", step=3, device=device, **small(1))  # another step is another dump


def test_same_key_finished_meanwhile_is_an_error_and_leaves_no_orphans(tmp_path):
    """Another dump of the same key and step writes its index while this one runs: this one raises.

    It raises at its end, under the lock, and removes the files only it wrote.
    """
    other = small(1)

    def parts():
        yield small(0)
        gm.write_dump(tmp_path / "out", key="k", device="cpu", **other)  # the other dump, meanwhile

    with pytest.raises(gm.DumpExistsError, match="meanwhile"):
        gm.dump.write_dump_batches(tmp_path / "out", parts(), key="k", device="cpu")
    gm.write_dump(tmp_path / "clean", key="k", device="cpu", **other)
    assert files_under(tmp_path / "out") == files_under(tmp_path / "clean")


def test_overwrite_replaces_and_removes_the_old_files(device, tmp_path):
    gm.write_dump(tmp_path, key="k", device=device, **small(0))
    gm.write_dump(tmp_path, key="other", device=device, **small(5))
    other = {p: b for p, b in files_under(tmp_path).items() if "other_0" in p}
    old_index = json.load(open(index_path(tmp_path, "k")))
    dicts = gm.write_dump(tmp_path, key="k", device=device, overwrite=True, **small(1, masks=False, boxes=False))
    files = files_under(tmp_path)
    gm.write_dump(tmp_path / "clean", key="k", device=device, **small(1, masks=False, boxes=False))
    clean = files_under(tmp_path / "clean")
    # the k dump's files are exactly those of a clean dump of the new batch; the other dump is untouched
    shared = ("index.html", fileio.LOCK_NAME, "viewer/dumps-a.js", "viewer/dumps-b.js")  # the folder's
    mine = {p: b for p, b in files.items() if "other_0" not in p and p not in shared}
    assert mine == {p: b for p, b in clean.items() if p not in shared}
    assert {p: b for p, b in files.items() if "other_0" in p} == other
    for d in old_index["images"]:
        assert d["path"] not in files
    assert json.load(open(index_path(tmp_path, "k")))["images"] == dicts
    assert html_keys(tmp_path) == ["k", "other"]
    # the other dump still has masks and boxes: their folders stay
    assert {"media/images/mask", "media/metadata/boxes2D"} <= set(folders_under(tmp_path))


@pytest.mark.skipif(os.name == "nt", reason="':' and '\\' are not file name characters on Windows")
def test_keys_with_colon_and_backslash_are_shown_and_cleaned_up(tmp_path):
    key = "val:a\\b/pred"  # ':' and '\\' stay in the names (docs/SPEC.md 6.2)
    gm.write_dump(tmp_path, key=key, device="cpu", **small(0))
    old = json.load(open(index_path(tmp_path, key)))
    assert all(":" in d["path"] and "\\" in d["path"] for d in old["images"])
    # the viewer shows them (a path it refuses becomes None: a missing image)
    (dump,) = viewer_data(tmp_path)["dumps"]
    assert [im["path"] for im in dump["images"]] == [d["path"] for d in old["images"]]
    assert all(im["masks"]["m"] for im in dump["images"])
    # overwrite removes every file only the old index named
    gm.write_dump(tmp_path, key=key, device="cpu", overwrite=True, **small(1, masks=False, boxes=False))
    for d in old["images"]:
        assert not (tmp_path / d["path"]).exists()
        assert not (tmp_path / d["masks"]["m"]["path"]).exists()
    assert not (tmp_path / "media" / "images" / "mask").exists()


def test_overwrite_keeps_files_another_index_names(tmp_path):
    gm.write_dump(tmp_path, key="k", device="cpu", **small(0))
    # a second index naming the same files (a copy kept by hand, say)
    data = open(index_path(tmp_path, "k"), "rb").read()
    open(index_path(tmp_path, "copy"), "wb").write(data)
    old = json.loads(data)
    gm.write_dump(tmp_path, key="k", device="cpu", overwrite=True, **small(1, masks=False, boxes=False))
    for d in old["images"]:
        assert (tmp_path / d["path"]).exists() and (tmp_path / d["masks"]["m"]["path"]).exists()


def test_overwrite_removes_the_folders_it_empties(tmp_path):
    gm.write_dump(tmp_path, key="k", device="cpu", **small(0))
    gm.write_dump(tmp_path, key="k", device="cpu", overwrite=True, **small(2, masks=False, boxes=False))
    # mask/ and boxes2D/ went with their files
    assert folders_under(tmp_path) == [".", ".gpu-media-claims", "media", "media/images", "viewer"]
    assert len(files_under(tmp_path / "media")) == 3


def test_overwrite_of_the_same_dump_changes_nothing(device, tmp_path):
    gm.write_dump(tmp_path, key="k", device=device, **small(0))
    first = files_under(tmp_path)
    gm.write_dump(tmp_path, key="k", device=device, overwrite=True, **small(0))
    assert files_under(tmp_path) == first


def test_overwrite_with_an_unreadable_other_index_removes_nothing(tmp_path):
    gm.write_dump(tmp_path, key="k", device="cpu", **small(0))
    old = json.load(open(index_path(tmp_path, "k")))
    (tmp_path / "broken.index.json").write_bytes(b"{not json")
    with pytest.warns(UserWarning, match="no file is removed"):
        gm.write_dump(tmp_path, key="k", device="cpu", overwrite=True, **small(1))
    assert all((tmp_path / d["path"]).exists() for d in old["images"])


def test_cli_demo_twice_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", str(out), "--device", "cpu"]) == 0
    before = files_under(out)
    capsys.readouterr()
    assert cli.main(["demo", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu-media: error: ") and "--overwrite" in err[0]
    assert os.path.abspath(index_path(out, "demo", 0)) in err[0]
    assert files_under(out) == before
    assert cli.main(["demo", str(out), "--device", "cpu", "--overwrite"]) == 0
    assert files_under(out) == before
    assert cli.main(["demo", str(out), "--device", "cpu", "--no-draw-boxes", "--overwrite"]) == 0
    after = files_under(out)
    assert after[os.path.basename(index_path(out, "demo", 0))] != before[os.path.basename(index_path(out, "demo", 0))]
    old_images = {p for p in before if p.startswith("media/images/demo_0_")}
    assert not old_images & set(after)  # the burned-in images, named only by the old index, are gone


# --------------------------------------------------------------------------- stale temporary files


def dead_claim(root, pid) -> None:
    """The claim file a dump killed in process ``pid`` leaves in ``root`` (docs/SPEC.md 6.4)."""
    data = {"pid": pid, "host": socket.gethostname(), "prefixes": ["media/images/k_0_"]}
    (root / ".gpu-media-claims").mkdir(exist_ok=True)
    (root / ".gpu-media-claims" / f"{pid}.0123abcd.json").write_text(json.dumps(data))


def test_stale_temporary_files_are_removed_only_when_their_writer_is_gone(tmp_path):
    gm.write_dump(tmp_path, key="k", device="cpu", **small(0))
    dead, alive = dead_pid(), os.getpid()
    dead_claim(tmp_path, dead)  # a killed dump leaves its claim beside its temporary files
    stale = [tmp_path / f".k_0_x.png.{dead}.deadbeef.tmp",
             tmp_path / "media" / "images" / f".a.png.{dead}.0123abcd.tmp",
             tmp_path / "media" / "images" / "mask" / f".b.mask.png.{dead}.00000000.tmp",
             tmp_path / "media" / "metadata" / "boxes2D" / f".c.boxes2D.json.{dead}.ffffffff.tmp"]
    live = [tmp_path / "media" / "images" / f".a.png.{alive}.0123abcd.tmp",
            tmp_path / "media" / "images" / ".a.png.1.0123abcd.tmp"]  # pid 1 is always alive
    others = [tmp_path / "media" / "images" / f"a.png.{dead}.deadbeef.tmp",  # not hidden: not ours
              tmp_path / "media" / "images" / f".a.png.{dead}.xyz.tmp"]
    for p in stale + live + others:
        p.write_bytes(b"partial")
    gm.write_dump(tmp_path, key="j", device="cpu", **small(1))
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in live + others)
    assert not list(tmp_path.glob(".gpu-media-claim*/*"))


def test_stale_temporary_files_without_a_claim_go_at_a_process_first_dump(tmp_path):
    """Temporary files of a dead writer that left no claim go at the next process's first dump there.

    (A killed viewer rebuild, an older version.) The dumps of a process that already dumped there look
    for them only when they find a dead process's claim (issue 19: no walk of the whole dump at every
    step of a training loop).
    """
    gm.write_dump(tmp_path, key="k", device="cpu", **small(0))
    stale = tmp_path / "media" / "images" / f".a.png.{dead_pid()}.0123abcd.tmp"
    stale.write_bytes(b"partial")
    gm.write_dump(tmp_path, key="j", device="cpu", **small(1))
    assert stale.exists()  # this process dumped there already, and no dump was killed
    code = ("import sys, numpy as np, gpu_media as gm\n"
            "gm.write_dump(sys.argv[1], np.zeros((1, 4, 4, 3), np.uint8), key='i', device='cpu')\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env())
    assert not stale.exists()


def test_pid_alive():
    assert fileio.pid_alive(os.getpid()) and fileio.pid_alive(1)
    assert not fileio.pid_alive(dead_pid())
    assert not fileio.pid_alive(10**30)


# --------------------------------------------------------------------------- durable writes


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to name what is fsynced")
@pytest.mark.parametrize("durable", [True, False])
def test_fsync_order(tmp_path, monkeypatch, durable):
    """Every file's bytes are fsynced before it gets its name, every folder before the index names its files.

    A file gets its name by ``os.replace`` of a temporary name, or (Linux, a new file) by ``os.link`` of a
    file made without a name (``O_TMPFILE``); files are told apart by their inode.
    """
    events = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd):
        st = os.fstat(fd)
        what = os.readlink(f"/proc/self/fd/{fd}") if stat.S_ISDIR(st.st_mode) else (st.st_dev, st.st_ino)
        events.append(("fsync", what))
        return real_fsync(fd)

    def naming(real):
        def put(src, dst, *args, **kwargs):
            st = os.stat(src)  # (follows /proc/self/fd/N to the file without a name)
            d = kwargs.get("dst_dir_fd")
            where = os.path.join(os.readlink(f"/proc/self/fd/{d}"), dst) if d is not None else os.path.abspath(dst)
            events.append(("name", (st.st_dev, st.st_ino), where))
            return real(src, dst, *args, **kwargs)
        return put

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", naming(real_replace))
    monkeypatch.setattr(os, "link", naming(real_link))
    root = str(tmp_path / "out")
    gm.write_dump(root, key="k", device="cpu", durable=durable, chunk_size=1, **small(0, n=4))
    if not durable:
        assert not [e for e in events if e[0] == "fsync"]
        return
    pos = {e: i for i, e in enumerate(events)}
    renames = [e for e in events if e[0] == "name"]
    index = index_path(root, "k")
    i_index = next(pos[e] for e in renames if e[2] == index)
    media = [e for e in renames if "/media/" in e[2]]
    assert len(media) == 4 + 4 + 2  # images, masks, boxes2D files
    for e in renames:  # every file's bytes are on the disk before it gets its name
        assert ("fsync", e[1]) in pos and pos[("fsync", e[1])] < pos[e]
    folders = {os.path.dirname(e[2]) for e in media} | {os.path.join(root, "media"),
                                                       os.path.join(root, "media", "metadata"), root}
    for f in folders:  # every folder that got a file (and the new folders' parents) before the index
        first = next(i for i, e in enumerate(events) if e == ("fsync", f))
        assert max(pos[e] for e in media) < first < i_index
    assert ("fsync", root) in events[i_index:]  # the index's name, after its rename


def test_durable_is_an_option(tmp_path):
    assert gm.dump.DumpOptions().durable is True
    assert gm.dump.DumpOptions(durable=0).durable is False
    gm.write_dump(tmp_path / "a", key="k", device="cpu", durable=False, **small(0))
    gm.write_dump(tmp_path / "b", key="k", device="cpu", **small(0))
    assert files_under(tmp_path / "a") == files_under(tmp_path / "b")


# --------------------------------------------------------------------------- the folder lock


def test_concurrent_dumps_into_one_folder_all_appear_in_index_html(tmp_path):
    """Two processes started together (a barrier before each round), 20 rounds.

    Each builds its page 0-50 ms slower at random (see ``concurrent_worker``); without
    the lock 2 to 4 rounds in 20 lost a dump from index.html.
    """
    rounds = 20
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=concurrent_worker, args=(str(tmp_path), key, rounds, barrier, seed))
             for seed, key in enumerate(("alpha", "beta"))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    missing = [r for r in range(rounds) if html_keys(tmp_path / str(r)) != ["alpha", "beta"]]
    assert not missing, f"rounds whose index.html lacks a dump: {missing}"
    for r in range(rounds):  # the page shows what the folder's indexes make
        assert (tmp_path / str(r) / "index.html").read_text(encoding="utf-8") == static_page()
        assert page_data(tmp_path / str(r)) == viewer_data(tmp_path / str(r))


@pytest.mark.skipif(os.name == "nt", reason="POSIX: fcntl.flock")
def test_folder_lock_is_the_flock_that_filelock_takes(tmp_path):
    """folder_lock, when held, is the flock another process takes, and the lock of filelock.

    (Issue 19: flock directly, as filelock takes it on POSIX, in microseconds.)
    """
    from filelock import FileLock, Timeout

    probe = ("import fcntl, os, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    print('free')\n"
             "except BlockingIOError:\n    print('busy')\n")
    lock = str(tmp_path / fileio.LOCK_NAME)
    with fileio.folder_lock(str(tmp_path)):
        out = subprocess.run([sys.executable, "-c", probe, lock], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "busy"
        with pytest.raises(Timeout):
            FileLock(lock, timeout=0.2).acquire()
    out = subprocess.run([sys.executable, "-c", probe, lock], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "free"
    assert os.path.getsize(lock) == 0  # an empty file, left in place


CHILD_WITHOUT_FILELOCK = """
import os, sys
sys.modules["filelock"] = None  # filelock cannot be imported: the fcntl fallback
import numpy as np
import gpu_media as gm
from gpu_media import fileio
out = sys.argv[1]
gm.write_dump(os.path.join(out, "dump"), np.zeros((2, 4, 4, 3), np.uint8), key="k", device="cpu")
assert os.path.exists(os.path.join(out, "dump", "index.html"))
assert sys.modules["filelock"] is None
with fileio.folder_lock(out):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_folder_lock_without_filelock_is_a_real_flock(tmp_path):
    """gpu_media dumps without filelock installed (fcntl.flock), and that lock excludes filelock's."""
    from filelock import FileLock, Timeout

    proc = subprocess.Popen([sys.executable, "-c", CHILD_WITHOUT_FILELOCK, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        line = proc.stdout.readline()
        assert line.strip() == "locked", proc.stderr.read()
        with pytest.raises(Timeout):
            FileLock(str(tmp_path / fileio.LOCK_NAME), timeout=0.2).acquire()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with FileLock(str(tmp_path / fileio.LOCK_NAME), timeout=5):  # released with its process
        pass
    assert json.load(open(index_path(tmp_path / "dump", "k")))["count"] == 2


# --------------------------------------------------------------------------- SIGKILL at random moments


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="POSIX only")
def test_sigkill_at_random_moments_then_rerun_is_a_clean_dump(tmp_path):
    clean = tmp_path / "clean"
    kill_dump(str(clean))
    expected = files_under(clean)
    assert not [p for p in expected if p.endswith(".tmp")]
    script = os.path.join(HERE, "dump_workers.py")

    def start(out):
        proc = subprocess.Popen([sys.executable, script, str(out)], stdout=subprocess.PIPE, text=True, env=env())
        assert proc.stdout.readline().strip() == "ready"
        return proc, time.perf_counter()

    proc, t0 = start(tmp_path / "timed")
    assert proc.stdout.readline().strip() == "done" and proc.wait(timeout=60) == 0
    duration = time.perf_counter() - t0
    assert files_under(tmp_path / "timed") == expected
    rng = random.Random(20261202)
    kw = kill_batch()
    killed_with_index = 0
    for k in range(10):
        out = tmp_path / f"kill{k}"
        proc, t0 = start(out)
        time.sleep(max(0.0, rng.uniform(0, duration) - (time.perf_counter() - t0)))
        proc.kill()  # SIGKILL
        proc.wait()
        proc.stdout.close()
        killed_with_index += os.path.exists(index_path(out, KEY, STEP))
        kill_dump(str(out), kw)  # the same dump again: with overwrite=True if its index is there
        got = files_under(out)
        assert not [p for p in got if p.endswith(".tmp")], f"kill {k}: temporary files left"
        assert got == expected, f"kill {k}: the re-run's folder differs from a clean dump's"
    print(f"dump {duration:.2f} s; killed: {killed_with_index} of 10 after the index was written")


# --------------------------------------------------------------------------- progress bar, folders


def test_progress_bar_only_with_more_than_one_chunk(tmp_path, capsys):
    pytest.importorskip("tqdm")
    x = np.zeros((5, 4, 4, 3), np.uint8)
    gm.write_dump(tmp_path / "a", x, key="p", chunk_size=5, progress=True, device="cpu")
    assert capsys.readouterr().err == ""
    gm.dump.write_dump_batches(tmp_path / "b", [{"images": x}], key="p", total=5, chunk_size=8, progress=True,
                               device="cpu")
    assert capsys.readouterr().err == ""  # a known total does not make one chunk a bar
    gm.write_dump(tmp_path / "c", x, key="p", chunk_size=2, progress=True, device="cpu")
    err = capsys.readouterr().err
    assert "gpu-media dump" in err and "5/5" in err
    gm.dump.write_dump_batches(tmp_path / "d", [{"images": x}, {"images": x[:2]}], key="p", total=7,
                               chunk_size=8, progress=True, device="cpu")
    err = capsys.readouterr().err
    assert "gpu-media dump" in err and "7/7" in err  # two parts of one chunk each: two chunks
    gm.write_dump(tmp_path / "e", x, key="p", chunk_size=2, device="cpu")
    assert capsys.readouterr().err == ""  # progress=False


def test_progress_without_tqdm_prints_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    gm.dump.write_dump_batches(tmp_path, [{"images": np.zeros((3, 4, 4, 3), np.uint8)}] * 2, key="p",
                               chunk_size=3, progress=True, device="cpu")
    assert capsys.readouterr().err.splitlines() == ["gpu-media dump: 3 images", "gpu-media dump: 6 images"]


def test_no_empty_mask_or_box_folders(device, tmp_path):
    gm.write_dump(tmp_path / "plain", key="k", device=device, **small(0, masks=False, boxes=False))
    assert folders_under(tmp_path / "plain") == [".", ".gpu-media-claims", "media", "media/images", "viewer"]
    gm.write_dump(tmp_path / "masks", key="k", device=device, **small(0, boxes=False))
    assert folders_under(tmp_path / "masks") == [".", ".gpu-media-claims", "media", "media/images",
                                                 "media/images/mask", "viewer"]
    gm.write_dump(tmp_path / "boxes", key="k", device=device, **small(0, masks=False))
    assert folders_under(tmp_path / "boxes") == [".", ".gpu-media-claims", "media", "media/images", "media/metadata",
                                                 "media/metadata/boxes2D", "viewer"]


def test_filelock_is_imported_only_when_a_lock_is_taken():
    code = ("import sys, gpu_media, gpu_media.dump, gpu_media.viewer, gpu_media.cli\n"
            "assert 'filelock' not in sys.modules, 'imported at import time'\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env())


def test_coco_dump_twice_needs_overwrite(tmp_path, capsys):
    from importlib import resources

    coco = str(resources.files("gpu_media.demo").joinpath("coco"))
    argv = ["dump", os.path.join(coco, "images"), str(tmp_path), "--coco", os.path.join(coco, "instances.json"),
            "--device", "cpu"]
    assert cli.main(argv) == 0
    before = files_under(tmp_path)
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "gpu-media: error: " in err and "--overwrite" in err
    assert cli.main(argv + ["--overwrite"]) == 0
    assert files_under(tmp_path) == before
