"""A dump's pipeline: a batch validated into a :class:`Plan`, cut into chunks, encoded by workers, written in order.

Each chunk is normalized, drawn and encoded (:func:`encode_chunk`: bytes, no file) by
:func:`workers` threads at once. On the GPU (:func:`ordered`: in order, bounded) its
files are written by the writer threads (:func:`written`) while the next chunk is
encoded; on the CPU (:func:`shared`: one task per worker, each taking the next chunk)
each chunk's worker writes its own files right after encoding them (no hand-off:
every step of an image runs in one thread, and the workers are as many as the cores).
The threads are kept for the life of the process (:func:`pool`), so a dump of a few
images starts none.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

from .. import _arrays
from ..backend import Backend, get_backend, resolve_device
from ..boxes import BoxTable, check_box_inputs, parse_boxes, render
from ..encode import check_size, drop_alpha_for_jpeg
from ..errors import MediaError
from ..masks import check_mask_inputs, mask_report, parse_masks
from ..normalize import normalize_groups
from ..threads import cores
from .index import json_bytes
from .options import DumpOptions


class Plan(NamedTuple):
    """A validated batch: everything checked, nothing written yet."""

    groups: list
    n: int
    sizes: list  # (H, W) per image
    backend: Backend
    masks: list  # MaskSet
    report: list  # per image {mask key: {class id: count}}
    mask_labels: dict  # {mask key: {int: str}}
    boxes: BoxTable | None
    captions: list  # str or None per image
    options: DumpOptions


def _captions(captions, n) -> list:
    if captions is None:
        return [None] * n
    if isinstance(captions, str):
        captions = [captions]
    captions = [c.item() if hasattr(c, "item") else c for c in captions]
    if len(captions) != n:
        raise MediaError(f"captions: {len(captions)} captions for a batch of {n} images", item=len(captions))
    for i, c in enumerate(captions):
        if c is not None and not isinstance(c, str):
            raise MediaError(f"image {i}: caption must be a string or None, got {type(c).__name__}", index=i, item=c)
    return captions


def _with_default_labels(sets, classes):
    if not classes or sets is None:
        return sets
    if isinstance(sets, dict):
        return {k: ({**v, "class_labels": classes} if isinstance(v, dict) and "class_labels" not in v
                    and ("mask_data" in v or "path" in v or "xyxy" in v or "box_data" in v) else v)
                for k, v in sets.items()}
    return [None if e is None else _with_default_labels(e, classes) for e in sets]


def prepare(images: Any, options: DumpOptions, *, masks: Mapping[str, Any] | None = None, boxes: Any = None,
            captions: Sequence[str | None] | None = None) -> Plan:
    """Validate a whole batch (docs/SPEC.md 1-5) before anything is written; see :func:`gpu_media.dump.write_dump`.

    Args:
        images: the batch, as for :func:`gpu_media.normalize`.
        options: the dump's (already validated) options.
        masks: as for :func:`gpu_media.dump.write_dump`.
        boxes: as for :func:`gpu_media.dump.write_dump`.
        captions: as for :func:`gpu_media.dump.write_dump`.

    Returns:
        the :class:`Plan` of the batch, on the backend ``options.device`` resolves to.

    Raises:
        gpu_media.ImageError, MaskError, BoxError, MediaError: as :func:`gpu_media.dump.write_dump`.

    Examples:
        >>> import numpy as np
        >>> masks = {"pred": {"mask_data": np.array([[[0, 1], [1, 1]]], np.uint8)}}
        >>> plan = prepare(np.zeros((1, 2, 2, 3), np.uint8), DumpOptions(device="cpu"), masks=masks)
        >>> plan.n, plan.sizes, plan.report, plan.mask_labels
        (1, [(2, 2)], [{'pred': {0: 1, 1: 3}}], {'pred': {0: 'class_0', 1: 'class_1'}})
    """
    images = _arrays.check_images(images)  # dtypes first: before the device and any copy to it
    masks, boxes = check_mask_inputs(masks), check_box_inputs(boxes)
    dev = resolve_device(options.device, _arrays.on_gpu(images))
    backend = get_backend(dev)
    groups, n = _arrays.image_groups(images, options.layout, dev)
    sizes = [None] * n
    for g in groups:
        for i in g.indices:
            sizes[i] = _arrays.hw_of(g)
    check_size(sizes, options.codec)
    caps = _captions(captions, n)
    cls = options.classes
    msets = parse_masks(_with_default_labels(masks, cls), sizes, dev)
    report = mask_report(msets, n, backend, options.strict_masks)
    labels = {}
    for ms in msets:
        if ms.class_labels is not None:
            labels[ms.key] = ms.class_labels
        else:  # wandb: {c: "class_<c>"} for the values present
            present = sorted({c for r in report for c in r[ms.key]})
            labels[ms.key] = {c: f"class_{c}" for c in present}
    table = parse_boxes(_with_default_labels(boxes, cls), sizes)
    return Plan(groups, n, sizes, backend, msets, report, labels, table, caps, options)


_POOLS: dict = {}
_POOLS_LOCK = threading.Lock()


def _forget_pools() -> None:  # a forked child has none of its parent's threads
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def pool(name: str, threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` threads named ``gpu-media-<name>-*``: made on first use, then kept.

    Dumps reuse it (starting threads costs a small dump more than its work); a forked
    child starts its own.

    Args:
        name: what the threads do ("dump": chunk workers, "write": writer threads).
        threads: the pool's size (one pool per name and size).

    Returns:
        the :class:`~concurrent.futures.ThreadPoolExecutor`.

    Examples:
        >>> pool("dump", 2) is pool("dump", 2)
        True
    """
    with _POOLS_LOCK:
        ex = _POOLS.get((name, threads))
        if ex is None:
            ex = _POOLS[(name, threads)] = ThreadPoolExecutor(max_workers=threads,
                                                               thread_name_prefix=f"gpu-media-{name}")
        return ex


def workers(plan: Plan) -> int:
    """Chunks normalized and encoded at once: one per core on the CPU backend (NumPy and the encoders release the GIL).

    Two per core for a durable CPU dump: each file's ``fsync`` waits on the disk in the
    thread that wrote it, and the other thread of the core encodes meanwhile.

    Two on the GPU, so that one chunk's kernels run while the previous chunk is encoded. The
    files are written by the writer threads meanwhile (:func:`written`).

    Args:
        plan: the batch's :class:`Plan` (its backend decides).

    Returns:
        the number of encode workers (>= 1).

    Examples:
        >>> import os
        >>> import numpy as np
        >>> workers(prepare(np.zeros((1, 2, 2, 3), np.uint8), DumpOptions(device="cpu", durable=False))) == cores()
        True
        >>> workers(prepare(np.zeros((1, 2, 2, 3), np.uint8), DumpOptions(device="cpu"))) == 2 * cores()
        True
    """
    if plan.backend.name == "cpu":
        return cores() * (2 if plan.options.durable else 1)
    return 2


def on_caller_stream(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` made to run on the caller's current CUDA device and CuPy stream in any thread.

    CuPy's current device and current stream are per thread: a worker thread starts on
    device 0 and its null stream, so without this a caller on device 1 would have the
    kernels launched on device 0 with device 1's stream, and nvCOMP given ``device_id=0``
    (issue 17.4). ``fn`` itself where CuPy is not in use.

    Args:
        fn: the function to run in the encode threads.

    Returns:
        ``fn``, or a wrapper that enters the caller's device, then its stream, around each call.

    Examples:
        >>> on_caller_stream(len)("abc")
        3
    """
    cupy = sys.modules.get("cupy")
    if cupy is None:
        return fn
    device = cupy.cuda.Device()  # the caller's current device (not device 0)
    stream = cupy.cuda.get_current_stream()

    def run(*args):
        with device, stream:
            return fn(*args)

    return run


def chunks(plan: Plan) -> list[tuple[int, int]]:
    """``(lo, hi)`` image ranges of the batch: ``options.chunk_size`` images each.

    By default, on the CPU :func:`cpu_chunk_images` (about eight 256x256 images per chunk, taken by
    the workers as they free up); elsewhere the backend's ``chunk_bytes()`` of uint8 pixels shared
    among the workers (:func:`chunk_images`).

    Args:
        plan: the batch's :class:`Plan` (``options.chunk_size``, sizes, backend).

    Returns:
        ``[(lo, hi), ...]``, consecutive and covering ``0..plan.n``.

    Examples:
        >>> import numpy as np
        >>> chunks(prepare(np.zeros((5, 2, 2, 3), np.uint8), DumpOptions(device="cpu", chunk_size=2)))
        [(0, 2), (2, 4), (4, 5)]
    """
    chunk_size = plan.options.chunk_size
    if chunk_size is None and plan.backend.name == "cpu":
        h, w = max(s[0] for s in plan.sizes), max(s[1] for s in plan.sizes)
        return cpu_chunks(plan.n, cpu_chunk_images(plan.n, h, w, workers(plan)), workers(plan))
    if chunk_size is None:
        h, w = max(s[0] for s in plan.sizes), max(s[1] for s in plan.sizes)
        # PNG on the GPU: by bytes alone. nvCOMP's call costs about the same for 64 or 256 images
        # (one chunk per image), so the fewer calls the better (issue 17.6).
        by_bytes = plan.backend.name != "cpu" and plan.options.codec == "png"
        chunk_size = chunk_images(plan.n, h, w, plan.backend.chunk_bytes(), workers(plan), spread=not by_bytes)
    return [(lo, min(lo + chunk_size, plan.n)) for lo in range(0, plan.n, chunk_size)]


#: Bytes of uint8 RGBA pixels per chunk of a CPU dump: about eight 256x256 images. Each chunk is normalized in
#: one call and its images encoded and written one after the other by the worker that took it (:func:`shared`),
#: so the per-call costs of normalize and of the chunk's records are paid once per chunk, not once per image
#: (256 distinct 256x256 images: about 30 us less CPU per image than chunks of one image).
CPU_CHUNK_BYTES = 2 << 20


def cpu_chunk_images(n: int, h: int, w: int, workers: int = 1) -> int:
    """Images per chunk of a CPU dump: :data:`CPU_CHUNK_BYTES` of ``h`` x ``w`` RGBA pixels (at least one).

    Each chunk is normalized, encoded, hashed and written by one worker thread
    (:func:`run`), so a chunk of one large image is one task of the whole pipeline.
    A batch of more than one chunk is cut into at least four chunks per worker, so
    that the workers share it evenly (a worker slowed by other work holds back one
    small chunk); a batch of one chunk is written in the calling thread.

    Args:
        n: images in the batch (>= 1).
        h: the largest image height.
        w: the largest image width.
        workers: the threads that take the chunks (:func:`workers`).

    Returns:
        the chunk size in images (1..n).

    Examples:
        >>> cpu_chunk_images(256, 256, 256, 2), cpu_chunk_images(256, 64, 64, 2), cpu_chunk_images(3, 8, 8, 2)
        (8, 32, 3)
        >>> cpu_chunk_images(16, 256, 256, 2), cpu_chunk_images(4, 1024, 1024, 2)
        (2, 1)
    """
    size = max(1, min(n, CPU_CHUNK_BYTES // max(1, h * w * 4)))
    if size < n:  # more than one chunk: at least four per worker
        size = min(size, max(1, -(-n // (4 * workers))))
    return size


def cpu_chunks(n: int, most: int, workers: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` chunks of a CPU dump of ``n`` images: ``most`` images each, smaller towards the end.

    Each chunk is at most ``most`` images and at most the images left over twice the
    workers, so the last chunks shrink to one image: the worker that takes the last one
    finishes about when the others do (a chunk of ``most`` images at the end would keep
    one worker busy while the others wait). A batch of at most ``most`` images is one
    chunk (written in the calling thread).

    Args:
        n: images in the batch (>= 1).
        most: the largest chunk (:func:`cpu_chunk_images`).
        workers: the threads that take the chunks.

    Returns:
        ``[(lo, hi), ...]``, consecutive and covering ``0..n``.

    Examples:
        >>> [hi - lo for lo, hi in cpu_chunks(40, 8, 2)]
        [8, 8, 6, 4, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]
        >>> cpu_chunks(3, 8, 2)
        [(0, 3)]
    """
    if n <= most:
        return [(0, n)]
    out, lo = [], 0
    while lo < n:
        size = min(most, max(1, (n - lo) // (2 * workers)))
        out.append((lo, lo + size))
        lo += size
    return out


def chunk_images(n: int, h: int, w: int, budget: int, workers: int, *, spread: bool = True) -> int:
    """Images per dump chunk: ``budget`` bytes of uint8 RGBA pixels of ``h`` x ``w``, shared among ``workers``.

    With ``spread`` (the CPU, and JPEG on the GPU) also at most ``ceil(n / (2 * workers))``,
    so that every worker gets chunks; without it (PNG on the GPU) the memory bound alone,
    so a batch that fits is one chunk and its PNGs one nvCOMP call per part
    (:func:`gpu_media.cuda.nvcomp.part_images`).

    Args:
        n: images in the batch (>= 1).
        h: the largest image height.
        w: the largest image width.
        budget: bytes the backend lets a dump hold at once (``Backend.chunk_bytes()``).
        workers: chunks in flight (:func:`workers`).
        spread: cap the chunk so that each worker gets about two.

    Returns:
        the chunk size in images (>= 1).

    Examples:
        >>> chunk_images(256, 512, 512, 1 << 30, 2)  # 256 MiB of RGBA: spread over 2 workers
        64
        >>> chunk_images(256, 512, 512, 1 << 30, 2, spread=False)  # bytes only: the whole batch
        256
        >>> chunk_images(16, 512, 512, 16 << 20, 2, spread=False)  # 16 MiB: 8 images per worker
        8
    """
    size = max(1, budget // (h * w * 4) // max(1, workers))
    if spread and workers > 1:
        size = min(size, max(1, -(-n // (2 * workers))))
    return min(size, max(1, n))


def ordered(fn: Callable[[Any], Any], items: Iterable[Any], workers: int,
            in_flight: int | None = None) -> Iterator[Any]:
    """``map(fn, items)`` in order, at most ``in_flight`` (default ``workers + 1``) calls in flight (bounded memory).

    The calls run in the kept pool ``pool("dump", workers)``. When a call raises (or the
    iterator is closed), the calls not started yet are cancelled and the running ones
    waited for before the error comes out: nothing of it is left running.

    Args:
        fn: called once per item, in a pool of ``workers`` threads (in this thread for ``workers <= 1``).
        items: the arguments, taken lazily.
        workers: threads.
        in_flight: calls submitted and not yet collected (at least ``workers + 1``); more lets
            the workers go on past a slow call while its result is awaited.

    Returns:
        an iterator of the results, in the order of ``items``; an error of ``fn`` raises there.

    Examples:
        >>> list(ordered(lambda x: x * x, range(5), 2))
        [0, 1, 4, 9, 16]
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    ex = pool("dump", workers)
    most = max(workers + 1, in_flight or 0)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(ex.submit(fn, item))
            if len(pending) >= most:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        _drain(list(pending))


#: Seconds between two looks of :func:`shared`'s caller at the chunks done (to hand them on, for a progress bar).
TICK = 0.1


def shared(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> Iterator[Any]:
    """``map(fn, items)`` in order, by ``workers`` pool tasks that each take the next item until none is left.

    One pool task per worker, not per item: an item costs no future, no hand-off to a
    worker and no wake-up of the caller (each a GIL hand-off: on a busy 2-core machine
    they held back a CPU dump of 256 small images by tens of ms), and a worker slowed by
    other work holds back one item, not a share of them. The caller looks at the items
    done every :data:`TICK` seconds and when the workers finish, and yields the results
    in order. When a call raises (or the iterator is closed), no worker starts another
    item, and the calls running are waited for before the first error comes out: nothing
    of it is left running.

    Args:
        fn: called once per item, in ``workers`` threads of ``pool("dump", workers)`` (in
            this thread for ``workers <= 1``).
        items: the arguments.
        workers: threads.

    Returns:
        an iterator of the results, in the order of ``items``; an error of ``fn`` raises there.

    Examples:
        >>> list(shared(lambda x: x * x, range(5), 2))
        [0, 1, 4, 9, 16]
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    n, results, done = len(items), [None] * len(items), [False] * len(items)
    order = iter(range(n))  # taken by all workers, under ``lock`` (also safe without a GIL)
    errors: list = []
    stop = threading.Event()
    finished = threading.Event()
    left, lock = [workers], threading.Lock()

    def work() -> None:
        try:
            while not stop.is_set():
                with lock:
                    k = next(order, None)
                if k is None:
                    break
                results[k] = fn(items[k])
                done[k] = True
        except BaseException as exc:
            errors.append(exc)
            stop.set()
        finally:
            with lock:
                left[0] -= 1
                if not left[0]:
                    finished.set()

    futures: list = []
    try:
        ex = pool("dump", workers)
        for _ in range(workers):
            futures.append(ex.submit(work))
        k = 0
        while k < n and not errors:
            over = finished.wait(TICK)
            while k < n and done[k]:
                yield results[k]
                results[k] = None
                k += 1
            if over:
                break
        if errors:
            stop.set()
            _drain(futures)
            raise errors[0]
    finally:
        stop.set()
        _drain(futures)


#: Writer threads of a GPU dump: hashing, writing and (durable) fsyncing the files run here while
#: the next chunk is normalized and encoded. Mostly waiting on the disk, so more threads than cores.
WRITERS = min(32, cores() + 4)


def written(encoded: Iterable[list[Any]], write: Callable[[Any], Any], pool: ThreadPoolExecutor,
            ahead: int = 1) -> Iterator[list[Any]]:
    """Per chunk of ``encoded`` (records, in order), ``[write(rec) for rec in records]``, the writes run in ``pool``.

    A chunk's records are handed to the writer threads one per task as soon as the
    chunk is encoded; the results of the chunk ``ahead`` chunks back are collected
    (waiting for its writes) before the next chunk is taken, so the encoding of
    chunk k+1 overlaps the writes of chunk k and at most ``ahead + 1`` chunks' records
    wait for the disk (bounded memory). Yields each chunk's results in order. The
    first write that fails raises here once the writes already running have
    finished; the writes not started yet are cancelled, so nothing of the dump is
    left running when it raises.

    Args:
        encoded: each chunk's records, in order (taken lazily).
        write: called once per record in ``pool``.
        pool: the writer threads.
        ahead: chunks whose writes may still run while the next chunk is taken.

    Returns:
        an iterator of ``[write(rec) for rec in records]`` per chunk, in order.

    Examples:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> with ThreadPoolExecutor(2) as pool:
        ...     list(written(iter([[1, 2], [3]]), lambda r: r * 10, pool))
        [[10, 20], [30]]
    """
    pending: deque = deque()
    try:
        for records in encoded:
            pending.append([pool.submit(write, rec) for rec in records])
            while len(pending) > ahead:
                yield _results(pending.popleft())
        while pending:
            yield _results(pending.popleft())
    finally:
        while pending:
            _drain(pending.popleft())


def _results(futures: list) -> list:
    """The results of ``futures`` in order; on the first error, :func:`_drain` them all, then raise it."""
    try:
        return [f.result() for f in futures]
    except BaseException:
        _drain(futures)
        raise


def _drain(futures: list) -> None:
    """Cancel the ``futures`` not started yet and wait for the running ones (their errors are dropped)."""
    for f in futures:
        f.cancel()
    for f in futures:
        if not f.cancelled():
            with contextlib.suppress(BaseException):
                f.result()


def run(plan: Plan, chunks: list[tuple[int, int]], encode: Callable[[tuple[int, int]], list],
        write: Callable[[Any], Any], encode_write: Callable[[tuple[int, int]], list]) -> Iterator[list[Any]]:
    """Each chunk encoded and its images written, in order: one list of ``write`` results per chunk.

    On the CPU backend ``encode_write(bounds)`` (encode the chunk, then write its images,
    in the same thread) runs in :func:`workers` threads (:func:`shared`); elsewhere ``encode(bounds)``
    runs in the workers (on the caller's CUDA stream for "gpu") and ``write(record)`` in
    the kept writer threads (:func:`written`). A batch of one chunk runs in the calling
    thread (no hand-off for a small dump).

    Args:
        plan: the batch's :class:`Plan` (its backend decides).
        chunks: :func:`chunks` of the plan.
        encode: one chunk's records (:func:`encode_chunk`).
        write: one record's files written; its result is collected.
        encode_write: one chunk encoded and its records written; the list of results.

    Returns:
        an iterator of each chunk's results, in order.

    Examples:
        >>> import numpy as np
        >>> plan = prepare(np.zeros((3, 2, 2, 3), np.uint8), DumpOptions(device="cpu", chunk_size=2))
        >>> enc = lambda b: encode_chunk(plan, *b)
        >>> list(run(plan, chunks(plan), enc, len, lambda b: [r["index"] for r in enc(b)]))
        [[0, 1], [2]]
    """
    n_workers = workers(plan) if len(chunks) > 1 else 1
    if plan.backend.name == "cpu":
        return shared(encode_write, chunks, n_workers)
    if plan.backend.name == "gpu":
        encode = on_caller_stream(encode)
    return written(ordered(encode, chunks, n_workers), write, pool("write", WRITERS))


def encode_chunk(plan: Plan, lo: int, hi: int) -> list[dict]:
    """Normalize, draw and encode images ``lo:hi``: one record per image (bytes, not files).

    Examples:
        >>> import numpy as np
        >>> plan = prepare(np.zeros((3, 2, 2, 3), np.uint8), DumpOptions(device="cpu"))
        >>> [(r["index"], r["image"][1:4], r["height"], r["width"]) for r in encode_chunk(plan, 1, 3)]
        [(1, b'PNG', 2, 2), (2, b'PNG', 2, 2)]
    """
    be, opt = plan.backend, plan.options
    g = plan.groups[0]
    if len(plan.groups) == 1 and g.indices[0] == 0 and g.indices[-1] == plan.n - 1:  # one array, in batch order
        u8 = be.normalize(g.array[lo:hi], g.layout, opt.normalize and not g.pil)  # the slice itself: no copy
    else:
        u8 = normalize_groups(plan.groups, plan.n, opt.normalize, be, lo, hi)
    if opt.draw_boxes:
        if isinstance(u8, list):
            u8 = [render(a[None], plan.boxes, be, opt.thickness, opt.colors, lo=lo + k)[0] for k, a in enumerate(u8)]
        else:
            u8 = render(u8, plan.boxes, be, opt.thickness, opt.colors, lo=lo)
    images = be.encode(drop_alpha_for_jpeg(u8, opt.codec), opt.codec, opt.quality, opt.compression_level)
    mask_bytes, mask_ext = {}, {}
    for ms in plan.masks:
        if ms.files is not None:  # {"path": file}: the file's own bytes and extension, as wandb copies it
            mask_bytes[ms.key] = [data for data, _ in ms.files[lo:hi]]
            mask_ext[ms.key] = [ext for _, ext in ms.files[lo:hi]]
            continue
        part = ms.data[lo:hi]
        if isinstance(part, list):
            mask_bytes[ms.key] = [be.encode(p.astype("uint8")[None, :, :, None], "png", 75, opt.compression_level)[0]
                                  for p in part]
        else:
            mask_bytes[ms.key] = be.encode(part.astype("uint8")[:, :, :, None], "png", 75, opt.compression_level)
    records = []
    for k, i in enumerate(range(lo, hi)):
        h, w = plan.sizes[i]
        per = plan.boxes.per_image[i] if plan.boxes is not None else {}
        records.append({
            "index": i, "image": images[k], "height": h, "width": w,
            "masks": {key: mb[k] for key, mb in mask_bytes.items()},
            "mask_ext": {key: ext[k] for key, ext in mask_ext.items()},
            "boxes": {key: json_bytes(v) for key, v in per.items()},
        })
    return records
