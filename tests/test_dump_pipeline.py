"""The dump's write pipeline: files written by writer threads while the next chunk is encoded (docs/SPEC.md 6.4).

What stays as it was: the index order, the bytes, an error raised before the index
with nothing left running; what is new: chunk k's writes overlap the encoding of
chunk k+1, and at most two chunks' records wait for the disk.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import gpu_media as gm
from gpu_media import dump, fileio
from gpu_media.dump import pipeline


def test_written_keeps_the_order_of_chunks_and_records():
    rng = np.random.default_rng(0)
    chunks = [[(c, k) for k in range(int(rng.integers(1, 6)))] for c in range(7)]

    def write(rec):
        time.sleep(float(rng.uniform(0, 0.003)))  # finish out of order
        return rec

    with ThreadPoolExecutor(8) as pool:
        assert list(pipeline.written(iter(chunks), write, pool)) == chunks


def test_written_overlaps_the_next_chunk_and_bounds_the_chunks_in_flight():
    collected = []
    next_asked = threading.Event()
    overlapped = []

    def encoded():
        for c in range(6):
            if c >= 2:  # chunk c - 2's writes are done and collected before chunk c is made
                assert len(collected) >= c - 1
            if c >= 1:
                next_asked.set()
            yield [(c, k) for k in range(3)]

    def write(rec):
        c, k = rec
        if c == 0 and k == 0:  # blocks until chunk 1 is asked for: chunk 0's writes overlap it
            overlapped.append(next_asked.wait(timeout=10))
        return rec

    with ThreadPoolExecutor(4) as pool:
        for done in pipeline.written(encoded(), write, pool):
            collected.append(done)
    assert overlapped == [True]
    assert [d[0][0] for d in collected] == list(range(6))


def test_a_failed_write_raises_with_nothing_left_running():
    active, started = [0], []
    lock = threading.Lock()

    def write(rec):
        with lock:
            active[0] += 1
            started.append(rec)
        try:
            time.sleep(0.002)
            if rec == (1, 2):
                raise OSError(28, "No space left on device")
            return rec
        finally:
            with lock:
                active[0] -= 1

    chunks = [[(c, k) for k in range(40)] for c in range(4)]
    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(OSError, match="No space"):
            for _ in pipeline.written(iter(chunks), write, pool):
                pass
        assert active[0] == 0  # the writes already running finished before the error came out
        n = len(started)
        time.sleep(0.05)
        assert len(started) == n  # and the others were cancelled
    assert n < sum(map(len, chunks))


def _photos(n=12, size=24):
    rng = np.random.default_rng(3)
    return rng.random((n, size, size, 3), dtype=np.float32)


def test_dump_in_many_chunks_equals_one_chunk(tmp_path):
    x = _photos()
    masks = {"m": {"mask_data": (np.arange(12 * 24 * 24).reshape(12, 24, 24) % 3).astype(np.uint8)}}
    boxes = {"b": {"xyxy": np.array([[1, 1, 9, 9]] * 12, float), "image_index": np.arange(12),
                   "class_id": np.arange(12) % 2}}
    kw = dict(key="k", device="cpu", masks=masks, boxes=boxes, viewer=False)
    one = gm.write_dump(tmp_path / "one", x, chunk_size=12, **kw)
    many = gm.write_dump(tmp_path / "many", x, chunk_size=1, **kw)
    assert one == many
    for d in one:
        for rel in [d["path"], d["masks"]["m"]["path"], d["boxes"]["b"]["path"]]:
            assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "many" / rel).read_bytes()
    assert (tmp_path / "one" / "k_0.index.json").read_bytes() == (tmp_path / "many" / "k_0.index.json").read_bytes()


def test_a_disk_error_in_a_writer_thread_raises_before_the_index(tmp_path, monkeypatch):
    real = fileio.FolderWriter.write  # how a dump writes each of its files
    calls, active = [], [0]
    lock = threading.Lock()

    def failing(self, rel, data):
        with lock:
            calls.append(threading.current_thread().name)
            active[0] += 1
            n = len(calls)
        try:
            time.sleep(0.002)
            if n == 5:
                raise OSError(28, "No space left on device")
            return real(self, rel, data)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(fileio.FolderWriter, "write", failing)
    root = tmp_path / "out"
    with pytest.raises(OSError, match="No space"):
        gm.write_dump(root, _photos(), key="k", device="cpu", chunk_size=2)
    assert not os.path.exists(dump.index_path(root, "k"))
    # the CPU writes in its chunk workers (kept threads named gpu-media-dump-*), and none is
    # still writing once the error is out
    assert any(name.startswith("gpu-media-dump") for name in calls)
    assert active[0] == 0
    n = len(calls)
    time.sleep(0.05)
    assert len(calls) == n
    monkeypatch.setattr(fileio.FolderWriter, "write", real)
    dicts = gm.write_dump(root, _photos(), key="k", device="cpu", chunk_size=2)  # the same call again finishes it
    assert all((root / d["path"]).is_file() for d in dicts) and os.path.exists(dump.index_path(root, "k"))


class _FakeCuda:
    """CuPy's per-thread current device and stream (``cupy.cuda.Device``, ``Stream``), without a GPU."""

    def __init__(self):
        self._local = threading.local()
        fake = self

        class Device:
            def __init__(self, id=None):
                self.id = fake._get("device", 0) if id is None else id

            def __enter__(self):
                fake._push("device", self.id)
                return self

            def __exit__(self, *exc):
                fake._pop("device")

        class Stream:
            def __init__(self, name):
                self.name = name

            def __enter__(self):
                fake._push("stream", self)
                return self

            def __exit__(self, *exc):
                fake._pop("stream")

        self.Device, self.Stream = Device, Stream
        self.null = Stream("null")

    def _stack(self, what):
        if not hasattr(self._local, what):
            setattr(self._local, what, [])
        return getattr(self._local, what)

    def _get(self, what, default):
        st = self._stack(what)
        return st[-1] if st else default

    def _push(self, what, value):
        self._stack(what).append(value)

    def _pop(self, what):
        self._stack(what).pop()

    def get_current_stream(self):
        return self._get("stream", self.null)


def test_worker_threads_run_on_the_callers_device_and_stream(tmp_path, monkeypatch):
    """Issue 17.4: a caller on device 1 and its own stream: the dump's worker threads run there too.

    Every backend call in them sees device 1 and that stream (before: device 0 with device 1's stream).
    """
    import sys
    import types

    from test_backend_protocol import Recorder

    from gpu_media import backend

    cuda = _FakeCuda()
    # host arrays stand in for device arrays (the Recorder does the CPU backend's work)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=cuda, asarray=np.asarray, asnumpy=np.asarray))
    seen = []

    class OnDevice(Recorder):
        def _rec(self, member):
            seen.append((member, cuda.Device().id, cuda.get_current_stream().name, threading.current_thread().name))
            return super()._rec(member)

    monkeypatch.setitem(backend._loaded, "gpu", OnDevice("gpu"))
    x = np.random.default_rng(0).random((6, 4, 5, 3)).astype(np.float32)
    with cuda.Device(1), cuda.Stream("caller") as s:
        assert cuda.get_current_stream() is s
        got = gm.write_dump(tmp_path / "g", x, key="k", device="gpu", chunk_size=1, viewer=False)
    want = gm.write_dump(tmp_path / "c", x, key="k", device="cpu", chunk_size=1, viewer=False)
    assert got == want
    in_workers = [s for s in seen if s[3].startswith("gpu-media-dump")]
    assert {m for m, *_ in in_workers} >= {"normalize", "encode"}
    assert {(d, st) for _, d, st, _ in in_workers} == {(1, "caller")}, in_workers
    assert cuda.Device().id == 0 and cuda.get_current_stream() is cuda.null  # restored


def test_on_caller_stream_without_the_device_would_be_caught():
    """The fake is strict: a new thread sees device 0 and the null stream (what the test above rules out)."""
    cuda = _FakeCuda()
    with cuda.Device(1), cuda.Stream("caller") as s:
        stream = cuda.get_current_stream()
        out = []
        t = threading.Thread(target=lambda: out.append((cuda.Device().id, cuda.get_current_stream().name)))
        t.start()
        t.join()
        assert out == [(0, "null")] and stream is s


@pytest.mark.parametrize("n, h, w, budget, workers, spread, want", [
    (256, 512, 512, 1 << 30, 2, True, 64),  # spread: 4 chunks over 2 workers
    (256, 512, 512, 1 << 30, 2, False, 256),  # PNG on the GPU: the whole batch in one chunk
    (2048, 512, 512, 1 << 30, 2, False, 512),  # ... up to the memory bound (1 GiB / 1 MiB RGBA / 2 workers)
    (16, 512, 512, 1 << 30, 2, True, 4),  # the first-call dump of issue 17.7: chunks of 4
    (16, 512, 512, 1 << 30, 2, False, 16),  # ... one chunk with PNG on the GPU
    (3, 8000, 8000, 16 << 20, 2, False, 1),  # larger than the budget: one image per chunk
    (5, 2, 2, 1 << 20, 1, True, 5),
])
def test_chunk_images(n, h, w, budget, workers, spread, want):
    assert pipeline.chunk_images(n, h, w, budget, workers, spread=spread) == want


def test_png_dumps_on_a_gpu_backend_are_chunked_by_bytes(monkeypatch):
    """chunks() picks bytes alone for PNG on a non-CPU backend, the spread for JPEG and on the CPU."""
    import sys
    import types

    from test_backend_protocol import Recorder

    from gpu_media import backend

    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=_FakeCuda(), asarray=np.asarray,
                                                                   asnumpy=np.asarray))
    rec = Recorder("gpu")
    rec.chunk_bytes = lambda: 1 << 30
    monkeypatch.setitem(backend._loaded, "gpu", rec)
    x = np.zeros((16, 64, 64, 3), np.uint8)
    assert pipeline.chunks(pipeline.prepare(x, dump.DumpOptions(device="gpu", file_type="png"))) == [(0, 16)]
    assert len(pipeline.chunks(pipeline.prepare(x, dump.DumpOptions(device="gpu", file_type="jpg")))) == 4


def test_shared_keeps_the_order_and_runs_each_item_once_in_the_workers():
    rng = np.random.default_rng(1)
    delays = rng.uniform(0, 0.002, 40)
    seen, lock = [], threading.Lock()

    def fn(k):
        time.sleep(float(delays[k]))  # finish out of order
        with lock:
            seen.append((k, threading.current_thread().name))
        return k * k

    assert list(pipeline.shared(fn, range(40), 2)) == [k * k for k in range(40)]
    assert sorted(k for k, _ in seen) == list(range(40))
    assert {name.split("_")[0] for _, name in seen} == {"gpu-media-dump"}  # the kept pool's threads
    assert list(pipeline.shared(fn, [3], 2)) == [9]  # one item: in this thread


def test_shared_raises_the_first_error_with_nothing_left_running():
    active, started = [0], []
    lock = threading.Lock()

    def fn(k):
        with lock:
            active[0] += 1
            started.append(k)
        try:
            time.sleep(0.002)
            if k == 5:
                raise OSError(28, "No space left on device")
            return k
        finally:
            with lock:
                active[0] -= 1

    with pytest.raises(OSError, match="No space"):
        list(pipeline.shared(fn, range(200), 2))
    assert active[0] == 0  # the calls running finished before the error came out
    n = len(started)
    time.sleep(0.05)
    assert len(started) == n < 200  # and no other item was started


def test_shared_closed_early_stops_the_workers():
    started = []

    def fn(k):
        started.append(k)
        time.sleep(0.001)
        return k

    it = pipeline.shared(fn, range(500), 2)
    assert next(it) == 0
    it.close()
    n = len(started)
    time.sleep(0.05)
    assert len(started) == n < 500


def test_folder_writer_keeps_existing_names_and_remakes_a_folder_removed_meanwhile(tmp_path):
    for durable in (False, True):
        root = tmp_path / f"d{durable}"
        with fileio.FolderWriter(str(root), durable) as files:
            files.write("media/images/a.jpg", b"first")
            files.write("media/images/a.jpg", b"other")  # content-addressed: an existing name stays
            assert (root / "media" / "images" / "a.jpg").read_bytes() == b"first"
            os.remove(root / "media" / "images" / "a.jpg")
            os.rmdir(root / "media" / "images")  # another dump's cleanup removes the (empty) folder
            files.write("media/images/b.jpg", b"second")
            files.write("top.json", b"{}")
        assert (root / "media" / "images" / "b.jpg").read_bytes() == b"second"
        assert sorted(os.listdir(root / "media" / "images")) == ["b.jpg"]  # no temporary file left
        assert (root / "top.json").read_bytes() == b"{}"


def test_folder_writer_without_o_tmpfile_uses_temporary_names(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_TMPFILE", 0)  # not Linux, or a file system without O_TMPFILE
    renamed = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renamed.append(os.path.basename(src)), real(src, dst))[1])
    with fileio.FolderWriter(str(tmp_path), durable=False) as files:
        files.write("media/images/a.jpg", b"x")
    assert (tmp_path / "media" / "images" / "a.jpg").read_bytes() == b"x"
    assert len(renamed) == 1 and fileio.TEMP_NAME.match(renamed[0])
