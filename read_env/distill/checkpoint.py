"""Crash-safe folder writes for checkpoints: write ``NAME.tmp``, fsync every file, rename to ``NAME``.

A failed write removes only its own ``.tmp`` folder, so the last complete checkpoint always survives;
the error (:class:`CheckpointError`) names the folder, the cause and the free space left on that disk.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Callable

from .safe_files import free_bytes


class CheckpointError(OSError):
    """A checkpoint could not be written completely (disk full, file too large, permissions, ...)."""


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_folder(final: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a fresh ``final.tmp`` folder, make it durable, then rename it to ``final``.

    Raises :class:`CheckpointError` (``final.tmp`` removed, any other folder untouched) when anything fails.
    """
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write(tmp)
        for path in tmp.iterdir():
            _fsync(path)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(final.parent)
    except Exception as error:
        shutil.rmtree(tmp, ignore_errors=True)
        free = free_bytes(final.parent)
        full = isinstance(error, OSError) and error.errno == errno.ENOSPC or free < 64 * 2**20
        raise CheckpointError(f"{'disk full: ' if full else ''}could not write checkpoint {final} ({type(error).__name__}: {error}); "
                              f"{free / 2**20:,.0f} MiB free on that disk; earlier checkpoints are kept") from error
    return final
