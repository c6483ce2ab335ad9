"""Input readers: files on disk turned into the arguments of a dump.

One module per input format:

* :mod:`gpu_media.formats.npz` -- one ``.npz`` archive holding a whole batch
  (``gpu-media dump INPUT.npz OUT``);
* :mod:`gpu_media.formats.coco` -- a folder of images with a COCO instances file and
  an optional results file (``gpu-media dump IMAGES_DIR OUT --coco ...``).

What a reader is
----------------
A reader takes paths (and its own options) and returns **data, never files**:

* a small input returns one dict of :func:`gpu_media.write_dump` keyword arguments,
  ``{"images": ..., "masks": ..., "boxes": ..., "captions": ..., "classes": ...,
  "layout": ...}`` with only the keys it has (:func:`~gpu_media.formats.npz.load_npz`);
* a large input returns (or yields) *parts*, each a dict ``{"images", "masks",
  "boxes", "captions"}`` as :func:`gpu_media.dump.write_dump_batches` takes them,
  decoding each part only when it is asked for, so memory stays bounded
  (:func:`~gpu_media.formats.coco.batches`). Box ``image_index`` counts within a part.

Everything in the input that can be checked before decoding pixels is checked
first, and every problem raises :class:`gpu_media.MediaError` naming the file and the
entry, image id or annotation (a reader may offer a ``skip_bad`` mode that leaves the
item out with a warning instead). A reader never writes: writing, chunking and the
index are :mod:`gpu_media.dump`'s. A reader module may end with a one-call helper
(``write_coco_dump``) that hands its parts to :func:`gpu_media.dump.write_batches`
with a :class:`gpu_media.dump.DumpOptions`; that is why ``formats`` sits above
``dump`` in the import layers (``tests/test_architecture.py``) and ``dump`` never
imports ``formats``.

How the CLI uses a reader
-------------------------
``gpu-media dump`` picks the reader from its arguments (``--coco`` for COCO, else
the .npz reader), builds one :class:`~gpu_media.dump.DumpOptions` from the flags
(plus what the input itself says, e.g. an .npz's ``layout`` and ``class_labels``),
and passes the reader's output to :func:`gpu_media.dump.write_batches`. Each reader
documents its input for ``gpu-media dump --help`` in a module constant
(``NPZ_HELP``, ``COCO_HELP``).

Adding a reader (an image folder, a Ray dataset, ...)
-----------------------------------------------------
Add ``gpu_media/formats/<name>.py`` returning one of the two shapes above, with its
``<NAME>_HELP`` text, and a flag in :mod:`gpu_media.cli` that selects it. It may
import :mod:`gpu_media.errors`, :mod:`gpu_media.checks`, :mod:`gpu_media.dump` and
lower layers, never :mod:`gpu_media.cli`. This package's ``__init__`` imports no
reader, so ``import gpu_media.formats.npz`` does not pull in COCO's dependencies.
"""
