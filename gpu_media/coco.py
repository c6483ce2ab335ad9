"""Moved to :mod:`gpu_media.formats.coco`; this name keeps existing imports working."""

from .formats.coco import *  # noqa: F401,F403
