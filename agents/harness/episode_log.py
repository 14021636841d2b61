"""``log-episodes``: real episodes logged for fitting a world (``read-env fit-world``), kept as a data set with a card.

A data set is a folder ``OUT`` written by :func:`~agents.harness.compare.run_compare` (schedules and agents
are its "agents"), so it resumes and parallelizes as ``compare`` does: every finished episode is appended to
``OUT/episodes.jsonl`` at once, a killed run started again with the same arguments skips the episodes already
there (an episode killed midway runs again from its start), and ``workers`` processes or a Ray cluster
(``backend="ray"``) play the episodes. Each record holds the start profile, per step the executed allocation,
tokens and measured profile (and the probe's standard errors where the environment reports them), the
requirement and the final utility (:func:`~agents.harness.compare._run_job`).

Schedules (:mod:`agents.policies.schedules`; the same seed gives the same schedule on every task and budget):
``random`` (a fresh ``Dirichlet(1)`` allocation every step), ``schedule_mixture`` (one ``Dirichlet(0.5)``
mixture held), ``schedule_blocks`` (one-hot blocks), ``schedule_phases`` (phases of mixtures), plus the
agents' own schedules (``uniform``, ``task_static``, or any registered agent name).

The card (``OUT/card.json`` and ``OUT/CARD.md``) says what the data are (environment id and arguments,
capabilities, tasks, budgets, seeds, schedules), how many episodes there are per schedule, and which commit
of this project logged them (the commit hash when the run started and whether the tree had changes); it is
rewritten after every run, and ``version`` counts the runs that added episodes.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from agents.harness.compare import CompareConfig, load_records, run_compare
from read_env.registration import MINI_V2_ID, resolve_episode

DEFAULT_SCHEDULES = ("random", "schedule_mixture", "schedule_blocks", "schedule_phases", "uniform", "task_static")
CARD_FORMAT = "read-env-episodes/1"


@dataclass
class LogConfig:
    """What to log: ``schedules`` x ``tasks`` x ``budgets`` x ``seeds`` episodes of ``env_id``, into ``out_dir``
    (``budgets`` or ``num_steps`` None: the environment's own, :func:`read_env.episode_defaults`)."""

    out_dir: str
    env_id: str = MINI_V2_ID
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    tasks: Sequence[str] = ("math_word_problems",)
    budgets: Sequence[int] | None = None
    seeds: Sequence[int] = tuple(range(5))
    schedules: Sequence[str] = DEFAULT_SCHEDULES
    num_steps: int | None = None
    workers: int = 1
    backend: str = "local"
    address: str | None = None
    name: str = ""


def project_commit() -> dict[str, Any]:
    """``{"commit": hash or None, "dirty": bool or None}`` of the git tree this module lives in."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def compare_config(config: LogConfig) -> CompareConfig:
    """The comparison that plays the episodes of ``config`` (its schedules are the agents); ``ValueError`` if it has
    no schedule, task, budget or seed."""
    if not config.schedules or not config.tasks or not config.seeds or (config.budgets is not None and not config.budgets):
        raise ValueError("log-episodes needs at least one schedule, task, budget and seed")
    budgets = None if config.budgets is None else [int(b) for b in config.budgets]
    return CompareConfig(list(config.schedules), list(config.tasks), budgets, [int(s) for s in config.seeds],
                         config.env_id, dict(config.env_kwargs), config.num_steps, str(config.out_dir), config.workers, {}, config.backend,
                         config.address)


def log_episodes(config: LogConfig, progress: bool = True) -> dict[str, Any]:
    """Log (or resume logging) the episodes of ``config`` and write the card; returns the card."""
    budgets, num_steps = resolve_episode(config.env_id, config.env_kwargs, config.budgets, config.num_steps)
    config = replace(config, budgets=budgets, num_steps=num_steps)
    compare = compare_config(config)
    out = Path(config.out_dir)
    before, commit, started = len(load_records(out)), project_commit(), _now()  # the code that logs, as it is when the run starts
    run_compare(compare, progress=progress)
    return write_card(out, config, {**commit, "added": len(load_records(out)) - before, "at": started})


def write_card(out: Path, config: LogConfig, run: dict[str, Any]) -> dict[str, Any]:
    """Write ``card.json`` and ``CARD.md`` for the data set in ``out`` (see the module docstring); ``run`` (commit,
    dirty, added, at) joins the card's runs when it added episodes."""
    records = list({record["key"]: record for record in load_records(out)}.values())
    previous = json.loads((out / "card.json").read_text()) if (out / "card.json").is_file() else {}
    runs = previous.get("runs", []) + ([run] if run["added"] else [])
    card = {
        "format": CARD_FORMAT,
        "name": config.name or previous.get("name") or out.name,
        "version": len(runs),
        "what": f"real episodes of {config.env_id} under broad schedules, for read-env fit-world",
        "env_id": config.env_id,
        "env_kwargs": {key: value for key, value in dict(config.env_kwargs).items() if key != "run_dir"},
        "capabilities": records[0]["capabilities"] if records and "capabilities" in records[0] else None,
        "num_steps": config.num_steps,
        "config": {key: value for key, value in asdict(config).items() if key not in ("out_dir", "env_kwargs", "workers", "backend", "address")},
        "episodes": len(records),
        "episodes_per_schedule": dict(sorted(Counter(record["agent"] for record in records).items())),
        "episodes_per_budget": {str(budget): count for budget, count in sorted(Counter(record["budget_tokens"] for record in records).items())},
        "runs": runs,
        "updated": _now(),
    }
    (out / "card.json").write_text(json.dumps(card, indent=1, default=str))
    lines = [f"# Data set `{card['name']}` (version {card['version']})", "", card["what"] + ".", "",
             f"- environment: `{card['env_id']}` with `{json.dumps(card['env_kwargs'])}`, {card['num_steps']} steps per episode",
             f"- capabilities: {', '.join(card['capabilities'] or [])}",
             f"- episodes: {card['episodes']} in `episodes.jsonl` (per schedule: {card['episodes_per_schedule']}; per budget: {card['episodes_per_budget']})",
             f"- tasks {list(config.tasks)}, budgets {list(config.budgets)}, seeds {list(config.seeds)}",
             "- logged by: " + "; ".join(f"commit {run['commit']}{' (with changes)' if run['dirty'] else ''}, {run['added']} episodes, started {run['at']}" for run in runs),
             "", "Fit a world: `read-env fit-world " + str(out) + " --model both` (writes fitted_world.json, for ReAD-Fitted-v1)."]
    (out / "CARD.md").write_text("\n".join(lines) + "\n")
    return card


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
