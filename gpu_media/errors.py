"""Exceptions raised by gpu_media (both backends raise the same type and message)."""


class MediaError(ValueError):
    """Bad input to gpu_media. Messages name the batch index, the key and what was wrong."""


class ImageError(MediaError):
    """An image batch whose shape, layout or dtype is outside SPEC section 1-2."""


class MaskError(MediaError):
    """A mask set that breaks SPEC section 3 (shape, value range, class labels)."""


class BoxError(MediaError):
    """A box set that breaks SPEC section 4 (wandb's box rules, NaN/inf, min > max)."""


class DeviceError(RuntimeError):
    """``device="gpu"`` (or ``GPU_MEDIA_DEVICE=gpu``) was asked for but no usable GPU backend exists."""
