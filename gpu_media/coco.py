"""Moved to :mod:`gpu_media.formats.coco` (the COCO reader); this name keeps existing imports working.

``from gpu_media.coco import load_coco, write_coco_dump, CocoWarning, ...`` gives the
very objects of :mod:`gpu_media.formats.coco`.
"""

from .formats.coco import *  # noqa: F401,F403
from .formats.coco import __all__  # noqa: F401
