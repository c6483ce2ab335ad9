"""gpu_media: whole batches of images to wandb-compatible media, on the GPU or the CPU.

The pipeline, one module per stage (the contract is docs/SPEC.md; both backends share it):

- :func:`normalize` -- any batch to uint8 (N,H,W,C) by wandb's documented rules;
- :func:`validate_masks` -- masks against their images, class ids present and counted;
- :func:`draw_boxes` -- box outlines burned into the pixels (both wandb box forms);
- :func:`encode` -- PNG / JPEG / BMP bytes per image;
- :func:`write_dump` -- wandb's file layout and JSON on disk, for offline evaluation;
- :func:`to_wandb` -- ``wandb.Image`` objects from our encoded files;
- :func:`warmup` -- the first call's one-time work (kernels, encoders, threads) done ahead.

``device=`` is "auto", "cpu" or "gpu"; see :mod:`gpu_media.backend` for the rule.
Only numpy and pillow are needed; the GPU backend needs ``pip install ".[gpu]"``.
"""

from .backend import gpu_available, gpu_status
from .boxes import PALETTE, draw_boxes
from .dump import write_dump
from .encode import encode
from .errors import BoxError, DeviceError, DumpExistsError, ImageError, MaskError, MediaError
from .masks import validate_masks
from .normalize import normalize
from .wandb_compat import to_wandb
from .warmup import warmup

__version__ = "0.3.0"

__all__ = [
    "normalize", "validate_masks", "draw_boxes", "encode", "write_dump", "to_wandb",
    "MediaError", "ImageError", "MaskError", "BoxError", "DumpExistsError", "DeviceError", "PALETTE", "gpu_available",
    "gpu_status", "warmup",
]
