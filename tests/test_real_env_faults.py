"""ReAD-v0 and ReAD-Mini-v0 under real faults: a full disk at each point of a step, a teacher server killed.

Every fault must truncate the step with a reason naming the file or URL, leave the run folder as it was after
the last committed step, and let the same environment's next ``reset()`` resume the episode, whose ledger then
equals an uninterrupted run's byte for byte.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from read_env.distill.env import read_history
from tests.conftest import free_port, start_teacher_server
from tests.test_real_env import make

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ACTION = np.linspace(-1, 1, 8, dtype=np.float32)


def finish(env) -> None:
    """Step ``env`` with ``ACTION`` until its episode ends; it must end complete."""
    while True:
        *_, terminated, truncated, info = env.step(ACTION)
        assert not truncated, info.get("error")
        if terminated:
            return


def reference_ledger(tiny_models, run_dir, **kwargs) -> bytes:
    env = make(tiny_models, run_dir, **kwargs)
    env.reset(seed=0)
    finish(env)
    return (env.unwrapped.episode_dir / "ledger.jsonl").read_bytes()


@pytest.fixture(scope="module")
def uninterrupted(tiny_models, tmp_path_factory) -> bytes:
    """The ledger of the uninterrupted reference episode (seed 0, ``ACTION`` at every step)."""
    return reference_ledger(tiny_models, tmp_path_factory.mktemp("reference"))


def assert_as_after_step(episode_dir: Path, committed: int, ledger: bytes) -> None:
    """The run folder holds exactly the ``committed`` steps: whole lines, the reference ledger's first lines,
    only ``checkpoint-{committed}``, no temporary file."""
    run_dir = episode_dir.parent
    assert [path.name for path in run_dir.rglob("*.tmp")] == []
    assert [path.name for path in episode_dir.glob("checkpoint-*")] == [f"checkpoint-{committed}"]
    assert (episode_dir / "ledger.jsonl").read_bytes() == b"".join(ledger.splitlines(keepends=True)[:committed])
    history = (episode_dir / "history.jsonl").read_bytes()
    assert history.endswith(b"\n") and len(read_history(episode_dir)) == history.count(b"\n")
    steps = [record["step"] for record in read_history(episode_dir) if not record.get("truncated")]
    assert steps == list(range(committed + 1))


def assert_truncated_and_resumes(env, outcome, names: str, committed: int, ledger: bytes) -> None:
    """``outcome`` (a step's result) is a truncation naming ``names``; the folder is consistent; ``reset()`` resumes."""
    *_, terminated, truncated, info = outcome
    assert truncated and not terminated and info["tokens_used"] == 0
    assert names in info["error"] and f"reset() resumes this episode from step {committed}" in info["error"]
    assert_as_after_step(env.unwrapped.episode_dir, committed, ledger)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(ACTION)
    _, info = env.reset(seed=99)
    assert info["resumed"] and info["step"] == committed and info["tokens_used_total"] == committed * 400


class FullDisk:
    """A disk that fills up at the ``at``-th write and stays full until :meth:`free`.

    Writes counted: ``os.write`` (history and ledger lines) and ``torch.save`` (a checkpoint's optimizer and
    random states). A failing write lands the first half of its bytes, then raises ENOSPC, as a real full
    disk does after a short write.
    """

    def __init__(self, monkeypatch, at: int) -> None:
        self.left, self.full = at, False
        write, save = os.write, torch.save

        def short_write(descriptor, data):
            if self._fails():
                write(descriptor, bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(descriptor, data)

        def short_save(obj, path, *args, **kwargs):
            if self._fails():
                Path(path).write_bytes(b"\0" * 100)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return save(obj, path, *args, **kwargs)

        monkeypatch.setattr(os, "write", short_write)
        monkeypatch.setattr(torch, "save", short_save)

    def _fails(self) -> bool:
        self.full = self.full or self.left == 0
        self.left -= 1
        return self.full

    def free(self) -> None:
        self.full, self.left = False, -1


@pytest.mark.parametrize("at,names", [(0, "ledger.jsonl"), (1, "checkpoint-2"), (2, "checkpoint-2"), (3, "history.jsonl")],
                         ids=["ledger-line", "optimizer-state", "random-states", "history-line"])
def test_full_disk_at_each_write_of_a_step_truncates_and_the_same_env_resumes(tiny_models, tmp_path, monkeypatch, uninterrupted, at, names):
    env = make(tiny_models, tmp_path / "runs")
    env.reset(seed=0)
    env.step(ACTION)
    disk = FullDisk(monkeypatch, at)
    outcome = env.step(ACTION)
    assert disk.full
    disk.free()
    assert_truncated_and_resumes(env, outcome, names, 1, uninterrupted)
    finish(env)
    assert (env.unwrapped.episode_dir / "ledger.jsonl").read_bytes() == uninterrupted
    assert [record["step"] for record in read_history(env.unwrapped.episode_dir)] == [0, 1, 2, 3]


def test_without_resume_the_truncated_episode_says_where_it_stays_and_reset_starts_anew(tiny_models, tmp_path, monkeypatch):
    env = make(tiny_models, tmp_path / "runs", resume=False)
    env.reset(seed=0)
    disk = FullDisk(monkeypatch, 0)
    *_, truncated, info = env.step(ACTION)
    disk.free()
    assert truncated and f"reset() starts a new episode (resume=False), this one stays in {tmp_path / 'runs' / 'episode-0000'}" in info["error"]
    _, info = env.reset(seed=0)
    assert "resumed" not in info and env.unwrapped.episode_dir.name == "episode-0001"


def test_full_disk_on_the_mini_env_truncates_and_the_same_env_resumes(tmp_path, monkeypatch):
    from tests.test_mini import make as make_mini

    cache = str(tmp_path / "cache")
    reference = make_mini(cache, tmp_path / "reference")
    reference.reset(seed=0)
    finish(reference)
    ledger = (reference.unwrapped.episode_dir / "ledger.jsonl").read_bytes()

    env = make_mini(cache, tmp_path / "runs")
    env.reset(seed=0)
    env.step(ACTION)
    disk = FullDisk(monkeypatch, 1)
    *_, truncated, info = env.step(ACTION)
    disk.free()
    assert truncated and "checkpoint-2" in info["error"]
    assert_as_after_step(env.unwrapped.episode_dir, 1, ledger)
    assert env.reset()[1]["resumed"]
    finish(env)
    assert (env.unwrapped.episode_dir / "ledger.jsonl").read_bytes() == ledger


@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MiB tmpfs (root and a kernel that permits mounting: CI runs as root), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or mounted.returncode}); "
                    "test_full_disk_at_each_write_of_a_step_truncates_and_the_same_env_resumes provokes the same faults")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` up to ``leave`` free bytes with one file; return it."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(shutil.disk_usage(disk).free - leave, 1))
    return filler


@pytest.mark.parametrize("options", [{}, {"checkpoint_async": True}], ids=["checkpoint", "checkpoint-in-background"])
def test_a_really_full_disk_at_each_point_of_a_step_truncates_and_the_same_env_resumes(tiny_models, small_disk, uninterrupted, options):
    """A real tmpfs, filled to leave 0 bytes, half a checkpoint, then one page more at a time until the step fits:
    every failing point (the checkpoint's files, written in the background or not, its folder, the history line)
    truncates and resumes."""
    env = make(tiny_models, small_disk / "runs", distiller_config=options)
    env.reset(seed=0)
    env.step(ACTION)
    episode_dir = env.unwrapped.episode_dir
    checkpoint = sum(path.stat().st_blocks * 512 for path in (episode_dir / "checkpoint-1").iterdir())
    named = set()
    for committed in (1, 2):
        for leave in [0, checkpoint // 2, *range(checkpoint - 8192, checkpoint + 65536, 4096)]:
            filler = fill(small_disk, leave)
            outcome = env.step(ACTION)
            filler.unlink()
            if not outcome[3]:
                break
            named |= {name for name in ("ledger.jsonl", f"checkpoint-{committed + 1}", "history.jsonl") if str(episode_dir / name) in outcome[4]["error"]}
            assert outcome[4]["error"].count("disk full") == outcome[4]["error"].count(str(episode_dir))
            assert_truncated_and_resumes(env, outcome, str(episode_dir), committed, uninterrupted)
    assert outcome[2] and (episode_dir / "ledger.jsonl").read_bytes() == uninterrupted
    assert {"checkpoint-2", "checkpoint-3"} <= named  # and history.jsonl where its next line needs a new page (here: yes)


def test_killed_teacher_server_truncates_naming_the_url_and_the_episode_resumes(tiny_models, tmp_path, teacher_server):
    greedy = {"distiller_config": {"temperature": 0.0, "teacher_retries": 0}, "teacher_engine": "openai"}
    ledger = reference_ledger(tiny_models, tmp_path / "reference", teacher_url=teacher_server, **greedy)
    server, url = start_teacher_server(tiny_models["teacher"], free_port())
    try:
        env = make(tiny_models, tmp_path / "runs", teacher_url=url, **greedy)
        env.reset(seed=0)
        env.step(ACTION)
        server.send_signal(signal.SIGKILL)
        server.wait()
        outcome = env.step(ACTION)
    finally:
        server.kill()
    assert f"teacher request to {url} failed" in outcome[4]["error"]
    assert_truncated_and_resumes(env, outcome, url, 1, ledger)
    *_, truncated, info = env.step(ACTION)  # the server is still gone: truncated again, nothing lost
    assert truncated and url in info["error"]
    moved = make(tiny_models, tmp_path / "runs", teacher_url=teacher_server, **greedy)  # the teacher moved: resume there
    assert moved.reset()[1]["step"] == 1
    finish(moved)
    assert (moved.unwrapped.episode_dir / "ledger.jsonl").read_bytes() == ledger
