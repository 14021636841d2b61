"""Files that stay whole when the disk fills up: JSON lines appended entirely or not at all, files replaced whole.

* :func:`append_line` writes one JSON line and fsyncs it; when any byte fails to land (a full disk, a
  file-size limit), the file is truncated back to its previous length (truncating needs no free space), so
  the file never holds a torn line, and :class:`WriteError` names the file, the cause and the free space.
* :func:`read_lines` returns the objects of the complete lines before the first torn one (a process killed
  mid-write); :func:`keep_lines` truncates a file to its first ``n`` lines (a rollback that needs no space).
* :func:`replace_file` writes ``NAME.tmp``, fsyncs it and renames it over ``NAME``; a failure removes the
  temporary file and leaves ``NAME`` as it was.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any


class WriteError(OSError):
    """A file could not be written (disk full, file too large, permissions); the file is left as it was."""


def free_bytes(path: str | Path) -> int:
    """Free bytes on the disk holding ``path`` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def write_error(path: Path, error: OSError, what: str) -> WriteError:
    """A :class:`WriteError` for ``what`` failing on ``path``, with the cause and the free space left."""
    full = "disk full: " if error.errno == errno.ENOSPC else ""
    return WriteError(error.errno, f"{full}could not {what} {path} ({type(error).__name__}: {error.strerror or error}); "
                                   f"{free_bytes(path.parent) / 2**20:,.1f} MiB free on that disk; the file was left as it was")


def append_line(path: str | Path, record: Any) -> None:
    """Append ``json.dumps(record)`` and a newline to ``path`` (created with its folder), durably and whole."""
    path = Path(path)
    data = memoryview((json.dumps(record) + "\n").encode())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    except OSError as error:
        raise write_error(path, error, "append a line to") from error
    try:
        size = os.fstat(descriptor).st_size
        while data:
            written = os.write(descriptor, data)
            if written == 0:
                raise OSError(0, "the disk accepted no bytes")
            data = data[written:]
        os.fsync(descriptor)
    except OSError as error:
        os.ftruncate(descriptor, size)
        raise write_error(path, error, "append a line to") from error
    finally:
        os.close(descriptor)


def read_lines(path: str | Path) -> list[Any]:
    """The objects of ``path``'s complete JSON lines, up to the first torn or unreadable one ([] if absent)."""
    path = Path(path)
    records = []
    if path.is_file():
        for line in path.read_bytes().split(b"\n")[:-1]:  # the part after the last newline is torn
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def keep_lines(path: str | Path, count: int) -> None:
    """Truncate ``path`` to its first ``count`` lines (``ValueError`` if it has fewer)."""
    path = Path(path)
    data = path.read_bytes() if path.is_file() else b""
    end = 0
    for _ in range(count):
        newline = data.find(b"\n", end)
        if newline < 0:
            raise ValueError(f"{path} has fewer than {count} lines")
        end = newline + 1
    if end < len(data):
        os.truncate(path, end)


def replace_file(path: str | Path, data: bytes) -> None:
    """Make ``data`` the content of ``path`` atomically (``NAME.tmp`` renamed over it; removed on failure)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise write_error(path, error, "write") from error
