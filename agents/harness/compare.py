"""``compare``: agents x tasks x budgets x seeds on one environment id, with tables, plots and resume.

Episodes run one after another, on ``workers`` local processes, or on Ray actors (``backend="ray"``, see
:mod:`agents.harness.ray_backend`); the results are the same for the same seeds. Every finished episode is
appended to ``OUT/episodes.jsonl`` at once (one JSON object per line, keyed by
agent, task, budget, seed and the environment arguments); a run that is interrupted and started again with
the same output folder skips what is already there. A folder holds the episodes of one environment set-up
(id, arguments and steps), so its tables never mix environments: :func:`check_out_dir` refuses another. Each
``ReAD-v0`` or ``ReAD-Mini-v0`` episode gets its own run folder
(``run_dir/AGENT-TASK-BUDGET-SEED``, default ``OUT/env/...``), so parallel episodes never share one; an
episode interrupted midway (a killed worker, a preempted or restarted Ray actor) resumes from its last completed
step: the environment from its checkpoint, the agent by replaying the recorded steps
(:func:`~agents.harness.runner.run_episode`), so the record equals the uninterrupted episode's; an agent that
replays differently (:class:`~agents.harness.runner.ResumeError`) runs the episode again from its start in a
cleared folder. Local workers use ``devices`` round-robin (worker ``i`` the ``i % len(devices)``-th), on
environments that take a ``device``. All agents of a (task, budget, seed) cell play the same
environment seed, so the noise is shared and differences are paired.

Outputs: ``summary.csv`` (per agent and budget, over tasks), ``per_task.csv`` (per agent, task and budget),
``results.md`` (both as markdown), ``utility.png``, ``allocation.png``, ``profile.png``.

Metrics (utility in points = 100 x utility units):
* ``utility``: final task utility (mean and standard deviation over seeds of the task-averaged value);
* ``diff_vs_uniform`` with a 95% t interval: paired over seeds (per seed, averaged over tasks);
* ``regret``: oracle utility minus the agent's (paired), when the oracle is available; ``gap_closed``:
  ``(U - U_uniform) / (U_oracle - U_uniform)`` of the means;
* spillover as in the paper's Table 2: ``offtarget_change`` (mean change of the measured profile on
  off-target capabilities, points) and ``negative_transfer_rate`` (share of off-target capabilities that
  dropped); off-target = capabilities the task gives weight 0 (all outside the top-3 if none);
* ``wasted_budget``: share of the budget allocated to off-target capabilities;
* ``profiling_tokens``: extra tokens spent before the episode (:mod:`agents.policies.profiling`: grid, LinUCB, Aioli,
  Skill-It and the ReAD bandit, the same count at the same ``profile_fraction``), as a share of the budget.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.harness.stats import mean_ci
from read_env.registration import DEFAULT_ENV_ID, resolve_episode

EPISODES_FILE = "episodes.jsonl"


@dataclass
class CompareConfig:
    """A comparison; ``budgets`` (tokens) and ``num_steps`` left ``None`` are the environment's own (one budget)."""

    agents: Sequence[str]
    tasks: Sequence[str]
    budgets: Sequence[int] | None
    seeds: Sequence[int]
    env_id: str = DEFAULT_ENV_ID
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    num_steps: int | None = None
    out_dir: str = "runs/compare"
    workers: int = 1
    agent_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    backend: str = "local"  # "local" or "ray"
    address: str | None = None  # Ray cluster address (None: the running Ray, else a local one)
    gpus_per_episode: float = 0.0  # GPUs each Ray actor reserves
    devices: Sequence[str] | None = None  # torch devices of the local workers, round-robin (None: the environment's own)


def _env_key(config: CompareConfig) -> str:
    return json.dumps({"env_id": config.env_id, "env_kwargs": dict(config.env_kwargs), "num_steps": config.num_steps}, sort_keys=True, default=str)


def _job_key(agent: str, task: str, budget: int, seed: int, env_key: str) -> str:
    return json.dumps([agent, task, int(budget), int(seed), env_key])


def off_target_mask(requirement: np.ndarray, top_k: int = 3) -> np.ndarray:
    mask = requirement <= 1e-9
    if not mask.any():
        mask = np.ones_like(mask)
        mask[np.argsort(-requirement, kind="stable")[:top_k]] = False
    return mask


def episode_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """Per-episode metrics from a stored record (see the module docstring)."""
    requirement = np.array(record["requirement"])
    off = off_target_mask(requirement)
    change = np.array(record["final_profile"]) - np.array(record["initial_profile"])
    allocations = np.array(record["allocations"])
    tokens = np.array(record["tokens"], dtype=float)
    return {
        "utility": 100.0 * record["final_utility"],
        "utility_gain": 100.0 * (record["final_utility"] - record["initial_utility"]),
        "offtarget_change": 100.0 * float(change[off].mean()),
        "negative_transfer_rate": float((change[off] < 0).mean()),
        "wasted_budget": float((allocations[:, off].sum(axis=1) * tokens).sum() / tokens.sum()),
        "profiling_tokens": float(record.get("extra", {}).get("profiling_tokens", 0)) / float(record["budget_tokens"]),
    }


def _keeps_run_folders(env_id: str) -> bool:
    """Whether ``env_id`` is a real-distillation environment (``DistillationEnv`` or a subclass), which writes run folders."""
    from gymnasium.envs.registration import load_env_creator

    creator = load_env_creator(gym.spec(env_id).entry_point)
    distill = sys.modules.get("read_env.distill.env")  # imported by load_env_creator when the creator lives there; torch otherwise stays unloaded
    return distill is not None and isinstance(creator, type) and issubclass(creator, distill.DistillationEnv)


def _takes_device(env_id: str) -> bool:
    """Whether ``env_id``'s environment names a ``device`` parameter (``ReAD-v0`` does; ``ReAD-Mini-v0`` runs on the CPU)."""
    import inspect

    from gymnasium.envs.registration import load_env_creator

    return "device" in inspect.signature(load_env_creator(gym.spec(env_id).entry_point)).parameters


_worker_device: str | None = None  # this worker process's device (set by _init_worker)


def worker_device(devices: Sequence[str], index: int) -> str:
    """The device of local worker ``index`` (0-based): ``devices`` round-robin."""
    return devices[index % len(devices)]


def _run_job(job: tuple[str, str, int, int, dict[str, Any]]) -> dict[str, Any]:
    agent_name, task, budget, seed, ctx = job
    from agents.registry import make_agent
    from agents.harness.runner import ResumeError, run_episode

    overrides = ctx["overrides"].get(agent_name, {})
    env_kwargs = dict(ctx["env_kwargs"])
    if _worker_device is not None and ctx["takes_device"]:
        env_kwargs["device"] = _worker_device

    def play():
        return run_episode(lambda setting: make_agent(agent_name, setting, seed=seed, **overrides), ctx["env_id"], task, budget, ctx["num_steps"],
                           seed, env_kwargs)

    if ctx["keeps_run_folders"]:  # one run folder per episode; an interrupted one resumes
        folder = f"{agent_name}-{task}-{budget}-{seed}".replace("/", "_").replace(":", "_")
        run_dir = Path(env_kwargs.get("run_dir", Path(ctx["out_dir"]) / "env")) / folder
        env_kwargs.update(run_dir=str(run_dir), resume=True)
        try:
            episode, agent = play()
        except ResumeError as error:
            print(f"compare: {error}; running it again from its start", file=sys.stderr)
            shutil.rmtree(run_dir, ignore_errors=True)
            env_kwargs.update(resume=False)
            episode, agent = play()
    else:
        episode, agent = play()
    stderrs = [step["probe_stderr"] for step in episode.steps if "probe_stderr" in step]
    return {
        "key": _job_key(agent_name, task, budget, seed, ctx["env_key"]),
        "agent": agent_name,
        "task": task,
        "budget_tokens": int(budget),
        "seed": int(seed),
        "requirement": episode.requirement,
        "initial_profile": episode.initial_profile,
        "initial_utility": episode.initial_utility,
        "final_profile": episode.final_profile,
        "final_utility": episode.final_utility,
        "allocations": [np.round(step["allocation"], 5).tolist() for step in episode.steps],
        "profiles": [np.round(step["profile"], 5).tolist() for step in episode.steps],
        "utilities": [round(step["utility"], 7) for step in episode.steps],
        "rewards": [step["reward"] for step in episode.steps],
        "tokens": [step["tokens_used"] for step in episode.steps],
        "capabilities": list(agent.setting.capabilities),
        **({"probe_stderrs": np.round(stderrs, 5).tolist()} if len(stderrs) == len(episode.steps) else {}),
        "extra": episode.extra,
        "wall_time_s": episode.wall_time_s,
    }


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker(counter: Any = None, devices: Sequence[str] | None = None) -> None:
    """One torch thread; Ctrl-C is left to the main process (which ends the pool and keeps finished episodes); the
    worker's device from ``devices`` by its start order (``counter``: a shared ``multiprocessing.Value``)."""
    global _worker_device
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if devices:
        with counter.get_lock():
            index, counter.value = counter.value, counter.value + 1
        _worker_device = worker_device(devices, index)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def load_records(out_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / EPISODES_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by an interruption: that episode runs again
    return records


def _finished_episodes(jobs: list[tuple], config: CompareConfig) -> Iterator[dict[str, Any]]:
    """The records of ``jobs`` as they finish, on the configured backend."""
    if config.backend == "ray":
        from agents.harness.ray_backend import run_on_ray

        yield from run_on_ray(_run_job, jobs, config.address, config.gpus_per_episode)
    elif config.workers > 1:
        import multiprocessing

        saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
        os.environ.update({name: "1" for name in THREAD_VARIABLES})  # one BLAS thread per worker (set before spawn)
        context = multiprocessing.get_context("spawn")
        pool_context = context.Pool(config.workers, initializer=_init_worker, initargs=(context.Value("i", 0), list(config.devices or [])))
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
        with pool_context as pool:
            yield from pool.imap_unordered(_run_job, jobs, chunksize=1)
    else:
        global _worker_device
        _worker_device = config.devices[0] if config.devices else None
        try:
            for job in jobs:
                yield _run_job(job)
        finally:
            _worker_device = None


def check_devices(config: CompareConfig) -> None:
    """Raise ``ValueError`` naming the problem when ``config.devices`` cannot place local workers."""
    if config.backend == "ray":
        raise ValueError("devices places local workers; Ray places episodes on GPUs by gpus_per_episode")
    if not config.devices or len(set(config.devices)) != len(config.devices):
        raise ValueError(f"devices must be distinct torch devices, e.g. ['cuda:0', 'cuda:1'], got {list(config.devices)}")
    if not _takes_device(config.env_id):
        raise ValueError(f"{config.env_id} takes no device argument: leave devices out")
    from read_env.distill.models import torch_device

    for device in config.devices:
        torch_device(device)  # raises naming a device torch or this machine lacks


def check_out_dir(config: CompareConfig) -> None:
    """Raise ``ValueError`` if ``config.out_dir`` holds episodes of another environment set-up than ``config``'s."""
    env_key = _env_key(config)
    others = sorted({json.loads(record["key"])[-1] for record in load_records(config.out_dir)} - {env_key})
    if others:
        found = json.loads(others[0])
        raise ValueError(f"{config.out_dir} holds episodes of {found['env_id']} with {found['env_kwargs']} and {found['num_steps']} steps, "
                         f"not of {config.env_id} with {dict(config.env_kwargs)} and {config.num_steps} steps: use another output folder")


def run_compare(config: CompareConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the comparison, then write and return the tables; see the module docstring."""
    from agents.base import Setting
    from agents.policies.oracle import oracle_available

    if config.backend not in ("local", "ray"):
        raise ValueError(f"unknown backend {config.backend!r}; expected 'local' or 'ray'")
    if config.devices is not None:
        check_devices(config)
    budgets, num_steps = resolve_episode(config.env_id, config.env_kwargs, config.budgets, config.num_steps)
    config = replace(config, budgets=budgets, num_steps=num_steps)
    if not config.budgets:
        raise ValueError("budgets is empty: give at least one episode budget (tokens), or None for the environment's own")
    check_out_dir(config)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    agents = list(dict.fromkeys(["uniform", *config.agents]))
    if oracle_available(Setting(num_steps=config.num_steps, budget_tokens=int(config.budgets[0]), env_id=config.env_id,
                                env_kwargs=dict(config.env_kwargs))):
        agents += [name for name in ("oracle", "best_fixed") if name not in agents]
    env_key = _env_key(config)
    done = {record["key"] for record in load_records(out)}
    ctx = {"env_id": config.env_id, "env_kwargs": dict(config.env_kwargs), "num_steps": config.num_steps, "env_key": env_key, "out_dir": str(out),
           "overrides": {k: dict(v) for k, v in config.agent_overrides.items()}, "keeps_run_folders": _keeps_run_folders(config.env_id),
           "takes_device": config.devices is not None and _takes_device(config.env_id)}
    jobs = [(a, t, int(b), int(s), ctx) for b in config.budgets for t in config.tasks for s in config.seeds for a in agents
            if _job_key(a, t, int(b), int(s), env_key) not in done]
    (out / "config.json").write_text(json.dumps({"agents": agents, "tasks": list(config.tasks), "budgets": [int(b) for b in config.budgets],
                                                  "seeds": [int(s) for s in config.seeds], "env": json.loads(env_key),
                                                  "agent_overrides": ctx["overrides"]}, indent=2, default=str))
    if jobs:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc="compare", unit="episode", initial=0)
        path = out / EPISODES_FILE
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with open(path, "a") as handle:  # a line cut by an interruption: end it so new records start clean
                handle.write("\n")
        with open(path, "a") as handle:
            for record in _finished_episodes(jobs, config):
                if "truncated" in record["extra"]:  # a failed episode is no result: reported, not recorded, run again next time
                    print(f"compare: {record['agent']} {record['task']} {record['budget_tokens']} seed {record['seed']} was truncated and is not "
                          f"recorded: {record['extra']['truncated']}", file=sys.stderr)
                else:
                    handle.write(json.dumps(record) + "\n")
                    handle.flush()
                if bar is not None:
                    bar.update()
        if bar is not None:
            bar.close()
    wanted = {_job_key(a, t, int(b), int(s), env_key) for b in config.budgets for t in config.tasks for s in config.seeds for a in agents}
    records = [r for r in load_records(out) if r["key"] in wanted]
    records = list({r["key"]: r for r in records}.values())
    tables = summarize(records, agents)
    write_tables(tables, out)
    from agents.harness.plots import plot_all

    plot_all(records, tables, agents, out)
    return tables


def summarize(records: list[dict[str, Any]], agents: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Rows of ``summary`` (agent x budget) and ``per_task`` (agent x task x budget)."""
    by_key = {(r["agent"], r["task"], r["budget_tokens"], r["seed"]): episode_metrics(r) for r in records}
    budgets = sorted({r["budget_tokens"] for r in records})
    tasks = list(dict.fromkeys(r["task"] for r in records))
    seeds = sorted({r["seed"] for r in records})
    has_oracle = "oracle" in agents
    summary, per_task = [], []

    def row(agent: str, budget: int, task_list: list[str]) -> dict[str, Any]:
        cells = [(t, s) for t in task_list for s in seeds if (agent, t, budget, s) in by_key and (("uniform", t, budget, s) in by_key)]
        if not cells:
            return {}
        per_seed: dict[int, list[str]] = {}
        for t, s in cells:
            per_seed.setdefault(s, []).append(t)

        def seed_means(fn) -> np.ndarray:
            return np.array([np.mean([fn(t, s) for t in ts]) for s, ts in sorted(per_seed.items())])

        metric = lambda name: (lambda t, s: by_key[(agent, t, budget, s)][name])  # noqa: E731
        utility = seed_means(metric("utility"))
        diff = seed_means(lambda t, s: by_key[(agent, t, budget, s)]["utility"] - by_key[("uniform", t, budget, s)]["utility"])
        mean_u, _, std_u = mean_ci(utility)
        mean_d, half_d, _ = mean_ci(diff)
        out = {
            "agent": agent, "budget_M": budget / 1e6, "tasks": len(task_list), "seeds": len(per_seed),
            "utility": mean_u, "utility_sd": std_u,
            "gain": float(np.mean(seed_means(metric("utility_gain")))),
            "diff_vs_uniform": mean_d, "ci95_low": mean_d - half_d, "ci95_high": mean_d + half_d,
            "significant": bool(mean_d - half_d > 0 or mean_d + half_d < 0) if np.isfinite(half_d) else False,
        }
        for reference in PAIRED_REFERENCES:
            shared = [(t, s) for t, s in cells if (reference, t, budget, s) in by_key]
            per_reference: dict[int, list[float]] = {}
            for t, s in shared:
                per_reference.setdefault(s, []).append(by_key[(agent, t, budget, s)]["utility"] - by_key[(reference, t, budget, s)]["utility"])
            mean_r, half_r, _ = mean_ci(np.array([np.mean(v) for _, v in sorted(per_reference.items())])) if shared else (np.nan, np.nan, np.nan)
            out.update({f"diff_vs_{reference}": mean_r, f"{reference}_ci95_low": mean_r - half_r, f"{reference}_ci95_high": mean_r + half_r})
        oracle_cells = [(t, s) for t, s in cells if ("oracle", t, budget, s) in by_key]
        if has_oracle and oracle_cells:
            regret = np.mean([by_key[("oracle", t, budget, s)]["utility"] - by_key[(agent, t, budget, s)]["utility"] for t, s in oracle_cells])
            span = np.mean([by_key[("oracle", t, budget, s)]["utility"] - by_key[("uniform", t, budget, s)]["utility"] for t, s in oracle_cells])
            gained = np.mean([by_key[(agent, t, budget, s)]["utility"] - by_key[("uniform", t, budget, s)]["utility"] for t, s in oracle_cells])
            out.update({"regret": float(regret), "gap_closed": float(gained / span) if span > 0 else np.nan})
        else:
            out.update({"regret": np.nan, "gap_closed": np.nan})
        for name in ("offtarget_change", "negative_transfer_rate", "wasted_budget", "profiling_tokens"):
            out[name] = float(np.mean(seed_means(metric(name))))
        return out

    for budget in budgets:
        for agent in agents:
            r = row(agent, budget, tasks)
            if r:
                summary.append(r)
            for task in tasks:
                r = row(agent, budget, [task])
                if r:
                    per_task.append({"task": task, **r})
    return {"summary": summary, "per_task": per_task}


PAIRED_REFERENCES = ("task_static", "greedy", "best_fixed")
"""Besides uniform, every agent is also paired against these (when they ran): the value of learning is the
difference to ``task_static``; ``best_fixed`` (the best fixed allocation in hindsight, surrogates only)
against ``oracle`` is the value of adapting."""
PAIRED_COLUMNS = [f"{prefix}{reference}{suffix}" for reference in PAIRED_REFERENCES for prefix, suffix in (("diff_vs_", ""), ("", "_ci95_low"), ("", "_ci95_high"))]
COLUMNS = ["agent", "budget_M", "utility", "utility_sd", "gain", "diff_vs_uniform", "ci95_low", "ci95_high", "significant", "regret", "gap_closed",
           *PAIRED_COLUMNS, "offtarget_change", "negative_transfer_rate", "wasted_budget", "profiling_tokens", "tasks", "seeds"]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if not np.isfinite(value) else f"{value:.3f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_tables(tables: dict[str, list[dict[str, Any]]], out: Path) -> None:
    import csv

    for name, columns in (("summary", COLUMNS), ("per_task", ["task", *COLUMNS])):
        with open(out / f"{name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(tables[name])
    short = ["agent", "budget_M", "utility", "utility_sd", "diff_vs_uniform", "ci95_low", "ci95_high", "significant", "regret", "gap_closed",
             "diff_vs_task_static", "task_static_ci95_low", "task_static_ci95_high", "diff_vs_greedy", "greedy_ci95_low", "greedy_ci95_high",
             "offtarget_change", "negative_transfer_rate", "wasted_budget", "profiling_tokens"]
    text = ["# Comparison", "", "Utility in points (0-100); differences paired by seed (averaged over tasks), 95% t intervals.", "",
            "## Summary (over tasks)", "", markdown_table(tables["summary"], short), "",
            "## Per task", "", markdown_table(tables["per_task"], ["task", *short]), ""]
    (out / "results.md").write_text("\n".join(text))


def format_summary(tables: dict[str, list[dict[str, Any]]]) -> str:
    return markdown_table(tables["summary"], ["agent", "budget_M", "utility", "utility_sd", "diff_vs_uniform", "ci95_low", "ci95_high", "regret", "gap_closed",
                                              "offtarget_change", "negative_transfer_rate", "wasted_budget"])
