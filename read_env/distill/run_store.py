"""The crash-safe run store of ``ReAD-v0`` episodes: one folder per episode, its history, its checkpoints.

``run_dir/episode-NNNN/`` holds ``history.jsonl`` (one JSON object per completed step, step 0 = reset; a line
is written whole or not at all, :mod:`read_env.distill.safe_files`), the distiller's ``ledger.jsonl`` and
``checkpoint-T`` for the last committed step ``T`` only. A step is committed when its history line is on disk;
the checkpoints of other steps are deleted only then, so a process killed at any point leaves the last
committed step's checkpoint. Scratch episodes live in a temporary ``run_dir/scratch-*/`` folder that is
deleted when the episode ends; they keep ``checkpoint-0`` only and are never resumed.
"""

from __future__ import annotations

import operator
import shutil
import tempfile
from collections.abc import Callable
from itertools import takewhile
from pathlib import Path
from typing import Any

from read_env.distill.safe_files import append_line, keep_lines, read_lines

HISTORY = "history.jsonl"


def read_history(episode_dir: str | Path) -> list[dict[str, Any]]:
    """The recorded steps of an episode folder's ``history.jsonl`` (a torn last line is ignored)."""
    return read_lines(Path(episode_dir) / HISTORY)


def checkpoint_path(episode_dir: str | Path, step: int) -> Path:
    """Folder of an episode's checkpoint after ``step`` completed steps."""
    return Path(episode_dir) / f"checkpoint-{step}"


def prune_checkpoints(episode_dir: str | Path, keep: int) -> None:
    """Delete every checkpoint folder (and unfinished ``.tmp`` folder) of ``episode_dir`` but ``checkpoint-{keep}``."""
    for old in Path(episode_dir).glob("checkpoint-*"):
        if old.name != f"checkpoint-{keep}":
            shutil.rmtree(old, ignore_errors=True)  # one left behind goes at the next prune


class RunStore:
    """The episode folders of ``run_dir`` and the current one (``episode_dir``, ``None`` before the first reset).

    Args:
        run_dir: the folder of the episodes.
        scratch: throwaway episodes (see the module docstring).
        keep_episodes: when an episode finishes, keep only this many finished episode folders (``None``: all;
            unfinished ones are always kept).
    """

    def __init__(self, run_dir: str | Path, scratch: bool = False, keep_episodes: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.scratch = scratch
        self.keep_episodes = keep_episodes
        self.episode_dir: Path | None = None

    def episodes(self) -> list[Path]:
        """The episode folders of ``run_dir``, oldest first."""
        return sorted(path for path in self.run_dir.glob("episode-*") if path.name[8:].isdigit()) if self.run_dir.is_dir() else []

    def new_folder(self) -> Path:
        """The folder of the next episode: a fresh temporary one for a scratch episode (the previous one deleted),
        else ``episode-NNNN`` after the newest (created by its first write)."""
        if self.scratch:
            self.remove_scratch()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix="scratch-", dir=self.run_dir))
        numbers = [int(path.name[8:]) for path in self.episodes()]
        return self.run_dir / f"episode-{max(numbers, default=-1) + 1:04d}"

    def unfinished(self, config: dict[str, Any], same: Callable[[dict[str, Any], dict[str, Any]], bool] = operator.eq
                   ) -> tuple[Path, list[dict[str, Any]]] | None:
        """The newest episode folder and its committed records (those before a truncated step) when that episode
        is unfinished, else ``None``; ``ValueError`` when it was run with another ``config`` (``same(saved, config)``
        is false)."""
        episodes = self.episodes()
        if not episodes:
            return None
        records = list(takewhile(lambda record: not record.get("truncated"), read_history(episodes[-1])))
        if not records or records[-1].get("terminated"):
            return None
        if not same(records[0]["config"], config):
            raise ValueError(f"{episodes[-1]} was run with another configuration; pass resume=False or another run_dir")
        return episodes[-1], records

    def reopen(self, episode_dir: Path, records: list[dict[str, Any]]) -> None:
        """Make ``episode_dir`` current again at its last committed record: later history lines (a torn or
        truncated step's) and other checkpoints are dropped (neither needs free space)."""
        keep_lines(episode_dir / HISTORY, len(records))
        self.episode_dir = episode_dir
        prune_checkpoints(episode_dir, records[-1]["step"])

    def commit(self, record: dict[str, Any]) -> None:
        """Append a step's history line to the current episode (the commit point), then drop every checkpoint but
        this step's (a scratch episode keeps its only one, ``checkpoint-0``)."""
        append_line(self.episode_dir / HISTORY, record)
        self.prune_checkpoints(0 if self.scratch else record["step"])

    def prune_checkpoints(self, keep: int) -> None:
        """:func:`prune_checkpoints` on the current episode."""
        prune_checkpoints(self.episode_dir, keep)

    def drop_old_episodes(self) -> None:
        """Delete the finished episode folders of ``run_dir`` but the newest ``keep_episodes`` (all kept when ``None``)."""
        if self.keep_episodes is None:
            return
        finished = [path for path in self.episodes() if (records := read_history(path)) and records[-1].get("terminated")]
        for old in finished[: -self.keep_episodes]:
            shutil.rmtree(old, ignore_errors=True)

    def remove_scratch(self) -> None:
        """Delete the folder of the current scratch episode, if any."""
        if self.scratch and self.episode_dir is not None:
            shutil.rmtree(self.episode_dir, ignore_errors=True)
            self.episode_dir = None
