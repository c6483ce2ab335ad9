"""Files on disk: the one way gpu_media writes a file (a hidden temporary name, then a rename).

Every file of a dump (images, masks, boxes2D JSON, the index) and the viewer page is
written by :func:`write_atomic`, so a name that exists is always complete: a crash
leaves at most a hidden ``.<name>.<pid>.<random>.tmp`` beside it, never a truncated
file under the real name.
"""

from __future__ import annotations

import os
import uuid


def write_atomic(path: str, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Args:
        path: the file to write; its folder must exist.
        data: the file's bytes.
        overwrite: replace an existing file. Without it an existing ``path`` is left
            as it is: the dump's file names are content-addressed and renamed into
            place only when complete, so an existing name already holds these bytes.

    Raises:
        OSError: the disk; the temporary file is removed and ``path`` is unchanged.
    """
    if not overwrite and os.path.exists(path):
        return  # content-addressed and renamed into place: already complete
    d, base = os.path.split(path)
    tmp = os.path.join(d, f".{base}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
