"""safe_files: a line lands whole or not at all, rollbacks need no space, replaced files leave no temporary."""

from __future__ import annotations

import errno
import resource
import signal
from contextlib import contextmanager

import pytest

from read_env.distill.safe_files import WriteError, append_line, keep_lines, read_lines, replace_file


@contextmanager
def file_size_limit(size: int):
    """Files of this process cannot grow past ``size`` bytes (RLIMIT_FSIZE): a write crossing it lands short."""
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)


def test_a_short_write_is_truncated_back_and_names_the_file(tmp_path):
    """A real short write: the file-size limit (RLIMIT_FSIZE) lets half of the second line land, then EFBIG."""
    path = tmp_path / "lines.jsonl"
    append_line(path, {"step": 0, "pad": "x" * 100})
    before = path.read_bytes()
    with file_size_limit(len(before) + 60):
        with pytest.raises(WriteError, match=f"could not append a line to {path}.*File too large.*MiB free") as caught:
            append_line(path, {"step": 1, "pad": "y" * 100})
    assert caught.value.errno == errno.EFBIG and path.read_bytes() == before
    append_line(path, {"step": 1})
    assert read_lines(path) == [{"step": 0, "pad": "x" * 100}, {"step": 1}]


def test_read_lines_stops_at_a_torn_line_and_keep_lines_cuts_the_file(tmp_path):
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3}\n{"a"')
    assert read_lines(path) == [{"a": 1}, {"a": 2}, {"a": 3}]
    keep_lines(path, 2)
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    with pytest.raises(ValueError, match="fewer than 3 lines"):
        keep_lines(path, 3)
    assert read_lines(tmp_path / "absent.jsonl") == []


def test_a_failed_replace_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "refs.json"
    replace_file(path, b"old")
    with file_size_limit(1000):
        with pytest.raises(WriteError, match=f"could not write {path}"):
            replace_file(path, b"new" * 1000)
    assert path.read_bytes() == b"old" and [child.name for child in tmp_path.iterdir()] == ["refs.json"]
