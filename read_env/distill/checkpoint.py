"""Crash-safe folder writes for checkpoints: write ``NAME.tmp``, fsync every file, rename to ``NAME``.

:func:`start_folder` writes the large files in a background thread while the caller goes on (the distiller
probes the student meanwhile) and finishes the folder later. A failed write removes only its own ``.tmp``
folder, so the last complete checkpoint always survives; the error (:class:`CheckpointError`) names the folder,
the cause and the free space left on that disk.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
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
    return start_folder(final)(write)


def start_folder(final: str | Path, first: Callable[[Path], None] | None = None) -> Callable[[Callable[[Path], None] | None], Path | None]:
    """Begin :func:`write_folder`: a fresh ``final.tmp`` folder, filled by ``first(tmp)`` in a background thread when
    given (the caller must not change what ``first`` reads until it is finished). The returned ``finish(write)``
    waits for that thread, calls ``write(tmp)``, makes the folder durable and renames it to ``final`` (raising
    :class:`CheckpointError` for a failure of either part); ``finish(None)`` waits and removes ``final.tmp``."""
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    failed: list[BaseException] = []

    def begin() -> None:
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            if first is not None:
                first(tmp)
        except BaseException as error:  # noqa: BLE001 - raised by finish() in the caller's thread
            failed.append(error)

    thread = threading.Thread(target=begin, name=f"write {final.name}", daemon=True) if first is not None else None
    if thread is None:
        begin()
    else:
        thread.start()

    def finish(write: Callable[[Path], None] | None) -> Path | None:
        if thread is not None:
            thread.join()
        if write is None:
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        try:
            if failed:
                raise failed[0]
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

    return finish
