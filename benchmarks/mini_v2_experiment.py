"""The pre-registered experiment on ReAD-Mini-v2 (protocol: ``docs/results/mini_v2/protocol.md``).

    OMP_NUM_THREADS=1 python benchmarks/mini_v2_experiment.py run --worker 0/2 --out runs/mini-v2 &
    OMP_NUM_THREADS=1 python benchmarks/mini_v2_experiment.py run --worker 1/2 --out runs/mini-v2
    python benchmarks/mini_v2_experiment.py report --out runs/mini-v2 --docs docs/results/mini_v2

``run`` plays every episode of the plan (:func:`plan`) not yet in ``OUT/episodes-*.jsonl``: worker ``i/n`` takes
the episodes whose key hashes to ``i`` modulo ``n``, so ``n`` processes share the plan without talking to each
other. The episodes that need the grid's winner (``grid_best``, ``grid_best_fragile_late``) enter the plan once
every grid episode is recorded (a worker with nothing left waits for the others' grid episodes). ``--stage pilot``
plays only the pilot (uniform and task-static on 8 seeds of the two variance tasks). Resumable: a finished episode
is a line of its worker's ledger, and a killed one resumes from its run folder.

``report`` writes ``episodes.csv`` (one row per episode: task, method, seed, final utility in points and its
standard error, validation utility; every interval reproduces from it), ``methods.csv`` (each method's mean and 95%
t half-width over the evaluation seeds), ``grid.csv`` (each grid point's validation mean), ``contrasts.csv`` and ``results.txt``
(each pre-registered contrast: paired mean difference over seeds, 95% t interval, p-value, Holm-adjusted p-value,
the standard deviation of the paired differences and the smallest effect the seeds can detect).
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

import read_env  # noqa: F401
from read_env.capabilities import PAPER_CAPABILITIES
from read_env.distill.env import read_history
from read_env.tasks import TASKS

ENV_ID = "ReAD-Mini-v2"
K = len(PAPER_CAPABILITIES)


@dataclass(frozen=True)
class Design:
    """The protocol's numbers (its defaults); ``--eval-seeds`` and the like shrink it to try the script."""

    steps: int = 8
    eval_seeds: tuple[int, ...] = tuple(range(20))
    validation_seeds: tuple[int, ...] = (1000, 1001, 1002, 1003)
    pilot_seeds: tuple[int, ...] = tuple(range(100, 108))
    grid_step: int = 4  # grid allocations are multiples of 1/grid_step over the task's required capabilities
    bandit_seeds: tuple[int, ...] = tuple(range(10))  # read_bandit's episodes cost 5.5 others (15 profiling runs): amendment 2


PILOT_TASKS = ("math", "math_word_problems")
ORDER_TASKS = {
    # task: (prerequisite, dependent, fragile): pre-registered in the protocol
    "math_word_problems": ("math", "reasoning", "reasoning"),
    "multilingual_qa": ("multilingual", "steerability", "steerability"),
}
CONTROL_TASK = "math"


def requirement(task: str) -> np.ndarray:
    """The task card's requirement [K] over the paper's capabilities."""
    return TASKS[task].requirement(PAPER_CAPABILITIES)


def index(name: str) -> int:
    return PAPER_CAPABILITIES.index(name)


# ------------------------------------------------------------------------------------------ schedules [steps, K]
def fixed(allocation: np.ndarray, steps: int) -> np.ndarray:
    return np.tile(np.asarray(allocation, dtype=float) / np.sum(allocation), (steps, 1))


def ordered(totals: np.ndarray, first: int, second: int, steps: int) -> np.ndarray:
    """A schedule with the token shares ``totals`` [K] over the episode in which capability ``first`` takes all of
    the pair's tokens of the early steps and ``second`` all of the late ones; the other capabilities keep their
    share every step. ``ordered(t, b, a)`` is the reverse; :func:`fixed` (``totals``) the mixture."""
    schedule = fixed(totals, steps)
    pool = schedule[0, first] + schedule[0, second]  # the pair's share of every step
    left = totals[first] / totals.sum() * steps  # step-units of ``first`` still to place
    for step in range(steps):
        take = min(pool, left)
        schedule[step, first], schedule[step, second] = take, pool - take
        left -= take
    return schedule


def late(totals: np.ndarray, fragile: int, steps: int) -> np.ndarray:
    """The token shares ``totals`` [K] with capability ``fragile``'s tokens as late as possible: it fills the last
    steps whole, then part of the step before; every other capability splits the rest of each step in proportion
    to its total, so each keeps its share of the episode."""
    shares = totals / totals.sum()
    schedule = np.zeros((steps, K))
    left = shares[fragile] * steps
    for step in reversed(range(steps)):
        schedule[step, fragile] = min(1.0, left)
        left -= schedule[step, fragile]
    others = shares.copy()
    others[fragile] = 0.0
    if others.sum() > 0:
        schedule += (1.0 - schedule[:, [fragile]]) * others / others.sum()
    return schedule


def grid(task: str, grid_step: int) -> list[np.ndarray]:
    """Every allocation over the task's required capabilities in multiples of 1/``grid_step`` (zeros allowed)."""
    required = np.flatnonzero(requirement(task) > 0)
    points: list[np.ndarray] = []

    def fill(prefix: list[int]) -> None:
        if len(prefix) == len(required) - 1:
            counts = prefix + [grid_step - sum(prefix)]
            allocation = np.zeros(K)
            allocation[required] = np.array(counts) / grid_step
            points.append(allocation)
            return
        for count in range(grid_step - sum(prefix) + 1):
            fill(prefix + [count])

    fill([])
    return points


# ------------------------------------------------------------------------------------------ the plan
def plan(records: dict[str, dict], stage: str, design: Design, ppo_jax: str | None = None) -> list[tuple[str, str, str, int, np.ndarray | str]]:
    """Every episode of the experiment: (key, task, method, seed, schedule [steps, K] or agent name). Episodes
    that need the grid's winner appear once every grid episode of their task is in ``records``; the agents' come
    after every fixed schedule's, ``read_bandit``'s (the costliest) last. ``stage="ppo_jax"``: only stage 2, the
    ``ppo_jax:PATH`` policy on every task and evaluation seed."""
    jobs: list[tuple[str, str, str, int, np.ndarray | str]] = []

    def add(task: str, method: str, seed: int, what: np.ndarray | str) -> None:
        jobs.append((f"{task}|{method}|{seed}", task, method, seed, what))

    steps = design.steps
    if stage == "ppo_jax":
        return [(f"{task}|ppo_jax|{seed}", task, "ppo_jax", seed, f"ppo_jax:{ppo_jax}") for seed in design.eval_seeds for task in (*ORDER_TASKS, CONTROL_TASK)]
    for task in PILOT_TASKS:
        for seed in design.pilot_seeds:
            add(task, "uniform", seed, fixed(np.ones(K), steps))
            add(task, "task_static", seed, fixed(requirement(task), steps))
    if stage == "pilot":
        return jobs
    for task, (first, second, fragile) in ORDER_TASKS.items():
        r = requirement(task)
        points = grid(task, design.grid_step)
        for number, point in enumerate(points):
            for seed in design.validation_seeds:
                add(task, f"grid{number:02d}", seed, fixed(point, steps))
        best = grid_best(records, task, points, design.validation_seeds)
        for seed in design.eval_seeds:
            add(task, "uniform", seed, fixed(np.ones(K), steps))
            add(task, "task_static", seed, fixed(r, steps))
            add(task, "prerequisite_first", seed, ordered(r, index(first), index(second), steps))
            add(task, "prerequisite_last", seed, ordered(r, index(second), index(first), steps))
            if best is not None:
                add(task, "grid_best", seed, fixed(best, steps))
                add(task, "grid_best_fragile_late", seed, late(best, index(fragile), steps))
    for seed in design.eval_seeds:
        add(CONTROL_TASK, "uniform", seed, fixed(np.ones(K), steps))
        add(CONTROL_TASK, "task_static", seed, fixed(requirement(CONTROL_TASK), steps))
    for agent, seeds in (("read_lookahead", design.eval_seeds), ("read_bandit", design.bandit_seeds)):
        for seed in seeds:
            for task in (*ORDER_TASKS, CONTROL_TASK):
                add(task, agent, seed, agent)
    return jobs


def grid_best(records: dict[str, dict], task: str, points: list[np.ndarray], seeds: tuple[int, ...]) -> np.ndarray | None:
    """The grid allocation with the highest mean final validation utility over the validation seeds (ties: the
    first), or ``None`` until every grid episode of ``task`` is recorded."""
    means = []
    for number in range(len(points)):
        values = [records.get(f"{task}|grid{number:02d}|{seed}") for seed in seeds]
        if any(value is None for value in values):
            return None
        means.append(np.mean([value["validation_utility"] for value in values]))
    return points[int(np.argmax(means))]


# ------------------------------------------------------------------------------------------ episodes
def read_records(out: Path) -> dict[str, dict]:
    records: dict[str, dict] = {}
    for path in sorted(out.glob("episodes-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed worker
            records[record["key"]] = record
    return records


def play(out: Path, key: str, task: str, seed: int, what: np.ndarray | str, steps: int, env_kwargs: dict) -> dict:
    """One episode of a fixed schedule or an agent: its record (final info and allocations)."""
    folder = out / "runs" / key.replace("|", "-")
    is_agent = isinstance(what, str)  # an agent's episode restarts after a kill: it cannot be replayed into the middle
    options = {"task": task, "num_steps": steps, "run_dir": str(folder), **env_kwargs, "resume": not is_agent}
    env = gym.make(ENV_ID, action_mode="simplex", **options)
    agent = None
    if is_agent:
        from agents.base import Setting
        from agents.registry import make_agent

        agent = make_agent(what, Setting.from_env(env, ENV_ID, env_kwargs), seed=seed)
        if agent.action_mode != "simplex":  # ppo_jax acts in logits
            env.close()
            env = gym.make(ENV_ID, action_mode=agent.action_mode, **options)
    observation, info = env.reset(seed=seed)
    if agent is not None:
        agent.reset(observation, info)
    done = info.get("step", 0) >= steps
    while not done:
        action = agent.act(observation) if agent is not None else what[info["step"]]
        next_observation, reward, terminated, truncated, info = env.step(np.asarray(action, dtype=np.float32))
        if truncated:
            raise RuntimeError(f"{key}: {info.get('error')}")
        if agent is not None:
            agent.observe(observation, action, float(reward), next_observation, info)
        observation, done = next_observation, terminated
    history = read_history(env.unwrapped.episode_dir)
    if "final_utility" not in info:  # a resumed episode whose last step was already recorded
        info = history[-1]
    allocations = [record["allocation"] for record in history if "allocation" in record]
    env.close()
    return {"key": key, "task": task, "method": key.split("|")[1], "seed": seed, "final_utility": float(info["final_utility"]),
            "final_utility_stderr": float(info["final_utility_stderr"]), "validation_utility": float(info["utility"]),
            "final_scores": [None if np.isnan(x) else float(x) for x in info["final_scores"]], "profile": [float(x) for x in observation["profile"]],
            "allocations": allocations}


def run(out: Path, worker: str, stage: str, design: Design, env_kwargs: dict, ppo_jax: str | None = None) -> None:
    mine, workers = (int(part) for part in worker.split("/"))
    if stage == "ppo_jax" and not (ppo_jax and Path(ppo_jax).is_file()):
        raise FileNotFoundError(f"--stage ppo_jax needs --ppo-jax PATH of a saved ppo_jax network, got {ppo_jax!r}")
    out.mkdir(parents=True, exist_ok=True)
    ledger = out / (f"episodes-{mine}.jsonl" if stage != "ppo_jax" else f"episodes-ppo_jax-{mine}.jsonl")
    while True:
        records = read_records(out)
        pending = [job for job in plan(records, stage, design, ppo_jax) if job[0] not in records]
        todo = [job for job in pending if zlib.crc32(job[0].encode()) % workers == mine]
        if not todo:
            if not pending:
                return
            time.sleep(10)  # the others' grid episodes decide the rest of the plan
            continue
        key, task, _, seed, what = todo[0]
        start = time.perf_counter()
        record = play(out, key, task, seed, what, design.steps, env_kwargs)
        with open(ledger, "a") as file:
            file.write(json.dumps(record) + "\n")
        print(f"{key}: final {100 * record['final_utility']:.2f} validation {100 * record['validation_utility']:.2f} "
              f"({time.perf_counter() - start:.0f} s, {len(pending) - 1} left)", flush=True)


# ------------------------------------------------------------------------------------------ analysis
CONTRASTS = [  # (task, method, baseline, question): pre-registered in the protocol
    *[(task, a, b, question) for task in ORDER_TASKS for a, b, question in (
        ("task_static", "uniform", "static allocation"),
        ("grid_best", "task_static", "composition"),
        ("prerequisite_first", "prerequisite_last", "order"),
        ("prerequisite_first", "task_static", "order vs mixture"),
        ("grid_best_fragile_late", "grid_best", "fragile late"),
        ("read_bandit", "grid_best", "adaptivity"),
        ("read_lookahead", "grid_best", "adaptivity"),
    )],
    (CONTROL_TASK, "task_static", "uniform", "static allocation"),
    (CONTROL_TASK, "read_bandit", "task_static", "adaptivity"),
    (CONTROL_TASK, "read_lookahead", "task_static", "adaptivity"),
]


STAGE2_CONTRASTS = [*[(task, "ppo_jax", "grid_best", "adaptivity (stage 2)") for task in ORDER_TASKS],
                    (CONTROL_TASK, "ppo_jax", "task_static", "adaptivity (stage 2)")]
"""Stage 2's contrasts: their own Holm family (the protocol reports them separately)."""


def paired(records: dict[str, dict], task: str, method: str, baseline: str, seeds: tuple[int, ...]) -> np.ndarray:
    """Paired differences [n] in points of final utility, over the seeds both have."""
    pairs = [(records.get(f"{task}|{method}|{s}"), records.get(f"{task}|{baseline}|{s}")) for s in seeds]
    return np.array([100 * (a["final_utility"] - b["final_utility"]) for a, b in pairs if a and b])


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    order = np.argsort(p_values)
    adjusted, running = np.empty(len(p_values)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


def summarize(differences: np.ndarray) -> dict[str, float]:
    """Mean, 95% t interval half-width, two-sided p-value (paired t test), sd and the smallest effect detectable
    at 80% power (two-sided 5%, the t approximation: (t_0.975 + t_0.8) sd / sqrt(n))."""
    from scipy import stats

    n = len(differences)
    mean, sd = float(differences.mean()), float(differences.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n))
    p = float(2 * stats.t.sf(abs(mean) / (sd / np.sqrt(n)), n - 1)) if sd > 0 else float(mean == 0)
    detectable = float((stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / np.sqrt(n))
    return {"n": n, "mean": mean, "half": half, "p": p, "sd": sd, "detectable": detectable}


def report(out: Path, docs: Path, design: Design) -> None:
    from scipy import stats

    records = read_records(out)
    docs.mkdir(parents=True, exist_ok=True)
    rows = ["task,method,seed,final_utility,final_utility_stderr,validation_utility"]
    for record in sorted(records.values(), key=lambda r: (r["task"], r["method"], r["seed"])):
        rows.append(f"{record['task']},{record['method']},{record['seed']},{100 * record['final_utility']:.4f},"
                    f"{100 * record['final_utility_stderr']:.4f},{100 * record['validation_utility']:.4f}")
    (docs / "episodes.csv").write_text("\n".join(rows) + "\n")
    lines = []
    for task in PILOT_TASKS:
        differences = paired(records, task, "task_static", "uniform", design.pilot_seeds)
        if differences.size > 1:
            pilot = summarize(differences)
            lines.append(f"pilot {task}: task_static - uniform = {pilot['mean']:+.2f} points, sd of paired differences {pilot['sd']:.2f} over {pilot['n']} seeds")
    found, grid_rows = [], ["task,point,allocation,validation_seeds,validation_mean"]
    for task in ORDER_TASKS:
        points = grid(task, design.grid_step)
        for number, point in enumerate(points):
            values = [records[key]["validation_utility"] for s in design.validation_seeds if (key := f"{task}|grid{number:02d}|{s}") in records]
            shares = " ".join(f"{PAPER_CAPABILITIES[k]}={point[k]:.2f}" for k in np.flatnonzero(point))
            grid_rows.append(f"{task},grid{number:02d},{shares},{len(values)},{100 * np.mean(values):.3f}" if values else f"{task},grid{number:02d},{shares},0,")
        best = grid_best(records, task, points, design.validation_seeds)
        if best is not None:
            found.append(f"{task}: grid_best = " + ", ".join(f"{PAPER_CAPABILITIES[k]} {best[k]:.2f}" for k in np.flatnonzero(best)))
    (docs / "grid.csv").write_text("\n".join(grid_rows) + "\n")
    method_rows = ["task,method,seeds,mean,ci95"]
    for task, method in dict.fromkeys((r["task"], r["method"]) for r in sorted(records.values(), key=lambda r: (r["task"], r["method"]))):
        values = np.array([100 * records[key]["final_utility"] for s in design.eval_seeds if (key := f"{task}|{method}|{s}") in records])
        if len(values) > 1:
            half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
            method_rows.append(f"{task},{method},{len(values)},{values.mean():.3f},{half:.3f}")
    (docs / "methods.csv").write_text("\n".join(method_rows) + "\n")
    results, adjusted = [], []
    for family in (CONTRASTS, STAGE2_CONTRASTS):
        measured = [(task, a, b, question, summarize(d)) for task, a, b, question in family if (d := paired(records, task, a, b, design.eval_seeds)).size > 1]
        results += measured
        adjusted += holm([result[4]["p"] for result in measured]) if measured else []
    table = ["task,question,contrast,seeds,mean,ci95_low,ci95_high,p,p_holm,sd,detectable"]
    for (task, a, b, question, s), p_holm in zip(results, adjusted):
        table.append(f"{task},{question},{a} - {b},{s['n']},{s['mean']:.3f},{s['mean'] - s['half']:.3f},{s['mean'] + s['half']:.3f},"
                     f"{s['p']:.4f},{p_holm:.4f},{s['sd']:.3f},{s['detectable']:.3f}")
        lines.append(f"{task} ({question}): {a} - {b} = {s['mean']:+.2f} points, 95% CI [{s['mean'] - s['half']:+.2f}, {s['mean'] + s['half']:+.2f}], "
                     f"p {s['p']:.3f} (Holm {p_holm:.3f}), sd {s['sd']:.2f}, detectable {s['detectable']:.2f}, {s['n']} seeds")
    (docs / "contrasts.csv").write_text("\n".join(table) + "\n")
    (docs / "results.txt").write_text("\n".join(found + lines) + "\n")
    print("\n".join(found + lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("run", "report"))
    parser.add_argument("--out", default="runs/mini-v2")
    parser.add_argument("--docs", default="docs/results/mini_v2")
    parser.add_argument("--worker", default="0/1", help="i/n: this process plays the episodes whose key hashes to i modulo n")
    parser.add_argument("--stage", choices=("pilot", "all", "ppo_jax"), default="all", help="ppo_jax: stage 2, the policy of --ppo-jax")
    parser.add_argument("--ppo-jax", help="stage 2: a ppo_jax network (model.npz) trained on a world fitted to the pilot and grid episodes")
    parser.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=JSON", help="an option for gym.make (repeatable)")
    protocol = Design()
    parser.add_argument("--steps", type=int, default=protocol.steps)
    parser.add_argument("--eval-seeds", type=int, default=len(protocol.eval_seeds), help="seeds 0..N-1")
    parser.add_argument("--validation-seeds", type=int, default=len(protocol.validation_seeds), help="seeds 1000..")
    parser.add_argument("--pilot-seeds", type=int, default=len(protocol.pilot_seeds), help="seeds 100..")
    parser.add_argument("--grid-step", type=int, default=protocol.grid_step)
    parser.add_argument("--bandit-seeds", type=int, default=len(protocol.bandit_seeds), help="read_bandit on seeds 0..N-1")
    args = parser.parse_args()
    design = Design(args.steps, tuple(range(args.eval_seeds)), tuple(range(1000, 1000 + args.validation_seeds)), tuple(range(100, 100 + args.pilot_seeds)),
                    args.grid_step, tuple(range(args.bandit_seeds)))
    env_kwargs = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.env_kwarg)}
    if args.kind == "report":
        report(Path(args.out), Path(args.docs), design)
    else:
        run(Path(args.out), args.worker, args.stage, design, env_kwargs, args.ppo_jax)


if __name__ == "__main__":
    main()
