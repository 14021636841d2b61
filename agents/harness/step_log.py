"""Per-step logging of one episode: a JSON-lines history, a progress bar and TensorBoard scalars.

``StepLog`` is the runner's ``on_step`` callback: ``run_episode(..., on_step=log)``. Set ``log.capabilities``
(e.g. from the agent factory's ``Setting``) to name the allocation and profile scalars. The bar shows utility
in points (100 x utility); the history and TensorBoard keep the environment's units. ``fresh_run_dir`` gives
each run of a command its own folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REWARD_TERMS = ("reward", "gain", "spillover", "cost", "utility")


def fresh_run_dir(out: Path) -> Path:
    """Create and return ``out/run-NNN`` with the next unused number (a rerun never overwrites or mixes)."""
    out.mkdir(parents=True, exist_ok=True)
    while True:
        numbers = [int(path.name[4:]) for path in out.glob("run-*") if path.name[4:].isdigit()]
        run_dir = out / f"run-{max(numbers, default=-1) + 1:03d}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # another run took this number meanwhile
            continue


class StepLog:
    """Writes each step's row to ``history_path``, advances a progress bar, logs scalars to ``tensorboard_dir``."""

    def __init__(self, history_path: Path, tensorboard_dir: Path | None, total_steps: int, description: str) -> None:
        from tqdm import tqdm

        history_path.parent.mkdir(parents=True, exist_ok=True)
        self.history = open(history_path, "w")
        self.bar = tqdm(total=total_steps, desc=description, unit="step")
        self.writer = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(tensorboard_dir))
        self.capabilities: list[str] = []

    def __call__(self, step: int, row: dict[str, Any]) -> None:
        self.history.write(json.dumps(row) + "\n")
        self.history.flush()
        self.bar.update()
        self.bar.set_postfix_str(f"utility {100 * row['utility']:.2f} points, reward {row['reward']:+.4f}")
        if self.writer is None:
            return
        for key in REWARD_TERMS:
            self.writer.add_scalar(f"step/{key}", row[key], step)
        names = self.capabilities or [str(index) for index in range(len(row["allocation"]))]
        for name, share, score in zip(names, row["allocation"], row["profile"]):
            self.writer.add_scalar(f"allocation/{name}", share, step)
            self.writer.add_scalar(f"profile/{name}", score, step)

    def close(self) -> None:
        self.bar.close()
        self.history.close()
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
