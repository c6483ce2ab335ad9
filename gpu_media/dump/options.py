"""A dump's options: :class:`DumpOptions`, built and validated once per dump (docs/SPEC.md 6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..boxes import box_colors, check_thickness
from ..checks import check_int
from ..encode import check_format
from ..errors import MediaError
from ..masks import parse_class_labels


def _classes(classes) -> dict | None:
    if classes is None:
        return None
    if hasattr(classes, "_class_set"):  # wandb.Classes
        classes = classes._class_set
    if isinstance(classes, (list, tuple)):
        try:
            classes = {c["id"]: c["name"] for c in classes}
        except (TypeError, KeyError):
            raise MediaError("classes must be {id: name} or a list of {'id': int, 'name': str}", item=classes) from None
    return parse_class_labels(classes, "classes", MediaError)


@dataclass(frozen=True)
class DumpOptions:
    """How a dump is made: every keyword of :func:`gpu_media.dump.write_dump` except the data, the key and the step.

    Built once per call by the public functions (:func:`gpu_media.dump.write_dump`,
    :func:`gpu_media.dump.write_dump_batches`, :func:`gpu_media.formats.coco.write_coco_dump`,
    :func:`gpu_media.to_wandb`, the CLI) and handed down unchanged to every part and
    chunk. Building it validates it (``file_type``/``quality``/``compression_level``,
    ``thickness``, ``classes``, ``colors``, ``chunk_size``), so a bad option raises
    before any image is read or any file written; the stored values are the
    checked ones (``quality`` and ``thickness`` as ``int``, ``classes`` as
    ``{int: str}``, ``draw_boxes``/``normalize`` as ``bool``).

    Attributes:
        file_type: "png", "jpg"/"jpeg" or "bmp" (as :func:`gpu_media.encode`).
        quality: JPEG quality 1..100.
        compression_level: PNG zlib level 0..9, or None for the fast default
            (applies to image and mask PNGs).
        draw_boxes: burn the box outlines into the image pixels.
        normalize: docs/SPEC.md 2's per-image range rule (else clip and truncate).
        layout: the images' layout ("NHWC", "NCHW", ...), or None to infer it.
        device: "auto", "cpu" or "gpu", resolved for each batch (``gpu_media.backend``).
        thickness: outline width in pixels (>= 1; capped at 2**31).
        colors: ``{class_id: (r, g, b)}`` outline colours, or None for the palette.
        classes: class labels of every mask and box key that gives none, as
            ``{id: name}`` (given as a dict, wandb's ``[{"id", "name"}]`` or a
            ``wandb.Classes``), or None.
        strict_masks: every class id present in a mask must be in its labels.
        chunk_size: images normalized and encoded at once (None: about 64 MiB of
            pixels per worker on the CPU, the GPU backend's own budget there).
        progress: show a progress bar on stderr when the dump takes more than one chunk.
        viewer: (re)write ``out_dir/index.html`` after the index.
        overwrite: replace an existing index of the same key and step (else
            :class:`gpu_media.DumpExistsError`); files only the old index named are
            removed once the new one is in place.
        durable: fsync every file and folder before the index names them (docs/SPEC.md 6.4).
        codec: derived from ``file_type``: "png", "jpg" or "bmp" (not an argument).

    Raises:
        gpu_media.MediaError: an option out of its range (the message as the stage
            that owns it words it: ``quality must be an integer from 1 to 100, ...``).
        gpu_media.BoxError: bad ``thickness`` or ``colors``.
    """

    file_type: str = "png"
    quality: int = 75
    compression_level: int | None = None
    draw_boxes: bool = False
    normalize: bool = True
    layout: str | None = None
    device: str = "auto"
    thickness: int = 2
    colors: Mapping[int, Sequence[int]] | None = None
    classes: Any = None
    strict_masks: bool = False
    chunk_size: int | None = None
    progress: bool = False
    viewer: bool = True
    overwrite: bool = False
    durable: bool = True
    codec: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the options and store the checked values (see the class docstring)."""
        put = object.__setattr__  # frozen: store the checked values once
        put(self, "codec", check_format(self.file_type, self.quality, self.compression_level))
        put(self, "quality", int(self.quality))
        put(self, "thickness", check_thickness(self.thickness))
        put(self, "classes", _classes(self.classes))
        box_colors(np.zeros(0, np.int64), self.colors)  # validates colors even without boxes
        put(self, "chunk_size", check_int(self.chunk_size, "chunk_size", lo=1, optional=True))
        put(self, "draw_boxes", bool(self.draw_boxes))
        put(self, "normalize", bool(self.normalize))
        put(self, "strict_masks", bool(self.strict_masks))
        put(self, "overwrite", bool(self.overwrite))
        put(self, "durable", bool(self.durable))
