"""Files replaced whole: a reader sees the previous content or the next, never a torn mix.

The camera service's status, the model versions, the evaluation set and the shadow's records are
each read by another process while one writes them; all go through ``replace_file``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(target: Path, data: bytes, durable: bool = False) -> None:
    """Write beside ``target`` under a hidden temporary name, then rename over it (atomic on one file system)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
