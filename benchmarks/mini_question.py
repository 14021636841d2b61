"""The paper's question on real learning (ReAD-Mini-v1): does a schedule beat the best fixed allocation?

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mini_question.py run --tasks math,math_word_problems,coding_assistant \
        --seeds 0,1,2,3,4 --episodes 40 --out runs/mini-v1-question
    # or in parallel processes: one per search (--stage search --kinds fixed, ...), then --stage evaluate
    python benchmarks/mini_question.py report --out runs/mini-v1-question --docs docs/results/mini_v1

For each task: a derivative-free search (Nelder-Mead, scipy, started at the task-static allocation; allocations
are ``softmax(z)`` of unconstrained logits ``z``) of ``--episodes`` episodes on a search seed (1000, never an
evaluation seed) for the best fixed allocation (8 parameters), the best two-phase schedule (16: two
allocations, half the steps each) and the best three-phase schedule (24: thirds); then, on every evaluation
seed (paired: the same seed gives every method the same item draws), uniform, task-static, the three found
schedules, and the agents of ``--agents`` (default the ReAD bandit and AIOLI). ``--env-kwarg key=JSON`` passes
options to ``gym.make`` (e.g. a tiny student to try the script in seconds). The final task utility is the
last step's ``info["utility"]`` (held-out evaluation items).

``report`` prints and writes ``question.csv`` (method, mean, 95% t interval over seeds, and the values in seed
order with their seeds), ``question_episodes.csv`` (task, method, seed, utility: every paired interval reproduces
from it), every method's paired difference to task-static, and the paired difference ``best schedule - best fixed`` (the better of the two- and three-phase schedules by its search
utility, so the evaluation seeds do not choose it) with its 95% t interval. ``power`` reads the paired 95% intervals
of ``question.txt`` back and prints, per contrast, the standard deviation of the paired differences they imply, the
smallest effect detectable at 80% power with those seeds, and the seeds a 1-point effect would need.

Resumable: every episode's final utility is appended to ``OUT/episodes.jsonl`` under a key naming its task,
method, schedule (digest of its allocations) or agent, and seed; a rerun reads it back instead of replaying
(the search is deterministic, so it proposes the same points again), a schedule already played on that seed
under another method's name is not played again, and an episode killed mid-way resumes from its run folder
(``resume=True``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import read_env  # noqa: F401
from read_env.capabilities import PAPER_CAPABILITIES
from read_env.distill.env import read_history
from read_env.tasks import TASKS

ENV_ID = "ReAD-Mini-v1"
SEARCH_SEED = 1000
PHASES = {"fixed": 1, "two_phase": 2, "three_phase": 3}
K = len(PAPER_CAPABILITIES)


def requirement(task: str) -> np.ndarray:
    return np.array([TASKS[task].weights.get(name, 0.0) for name in PAPER_CAPABILITIES])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def schedule(z: np.ndarray, steps: int) -> list[np.ndarray]:
    """Per-step allocations of phase logits ``z`` [phases * K]: phase p covers an equal share of the steps."""
    phases = z.reshape(-1, K)
    bounds = np.linspace(0, steps, len(phases) + 1).round().astype(int)
    return [softmax(phases[p]).astype(np.float32) for p in range(len(phases)) for _ in range(bounds[p], bounds[p + 1])]


class Ledger:
    """``OUT/episodes.jsonl``: key (``task|method|schedule digest|seed``) -> record of every finished episode;
    ``utility_of(task, digest, seed)`` finds the same schedule played under another method's name."""

    def __init__(self, out: Path) -> None:
        self.path = out / "episodes.jsonl"
        out.mkdir(parents=True, exist_ok=True)
        self.done: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    self._index(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn last line

    def _index(self, record: dict) -> None:
        self.done[record["key"]] = record

    def utility_of(self, task: str, digest: str, seed: int) -> float | None:
        for key, record in self.done.items():
            parts = key.split("|")
            if parts[0] == task and parts[2] == digest and parts[3] == str(seed):
                return record["utility"]
        return None

    def add(self, record: dict) -> None:
        self._index(record)
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")


ENV_KWARGS: dict = {}
"""Options for ``gym.make`` (``--env-kwarg``)."""


def play_schedule(ledger: Ledger, out: Path, task: str, label: str, allocations: list[np.ndarray], seed: int, budget: int) -> float:
    digest = hashlib.sha256(np.round(np.array(allocations), 6).tobytes()).hexdigest()[:12]
    key = f"{task}|{label}|{digest}|{seed}"
    if key in ledger.done:
        return ledger.done[key]["utility"]
    utility = ledger.utility_of(task, digest, seed)
    if utility is not None:  # the same schedule and seed under another name (e.g. every search starts at task-static)
        ledger.add({"key": key, "task": task, "method": label, "seed": seed, "utility": utility, "allocations": np.array(allocations).tolist()})
        return utility
    run_dir = out / task / f"{label}-{digest}-seed{seed}"
    env = gym.make(ENV_ID, task=task, budget_tokens=budget, num_steps=len(allocations), run_dir=str(run_dir), action_mode="simplex", **ENV_KWARGS)
    _, info = env.reset(seed=seed)  # continues a killed episode from its last completed step
    for allocation in allocations[info["step"] :]:
        _, _, _, truncated, info = env.step(allocation)
        if truncated:
            raise RuntimeError(f"{run_dir}: {info.get('error')}")
    if "utility" not in info or info["step"] != len(allocations):
        info = read_history(env.unwrapped.episode_dir)[-1]
    ledger.add({"key": key, "task": task, "method": label, "seed": seed, "utility": float(info["utility"]), "allocations": np.array(allocations).tolist()})
    print(f"{task} {label} seed {seed}: {info['utility']:.4f}", flush=True)
    return float(info["utility"])


def play_agent(ledger: Ledger, out: Path, task: str, agent: str, seed: int, budget: int, steps: int) -> float:
    from agents.harness.runner import run_episode
    from agents.registry import make_agent

    key = f"{task}|{agent}|agent|{seed}"
    if key in ledger.done:
        return ledger.done[key]["utility"]
    folder = "".join(c if c.isalnum() or c in "_-." else "_" for c in agent)  # ppo:runs/x/model.zip -> ppo_runs_x_model.zip
    env_kwargs = {**ENV_KWARGS, "run_dir": str(out / task / f"{folder}-seed{seed}"), "resume": False}
    episode, _ = run_episode(lambda setting: make_agent(agent, setting, seed=seed), ENV_ID, task, budget, steps, seed, env_kwargs)
    if "truncated" in episode.extra:
        raise RuntimeError(f"{agent} on {task}: {episode.extra['truncated']}")
    ledger.add({"key": key, "task": task, "method": agent, "seed": seed, "utility": episode.steps[-1]["utility"],
                "allocations": [step["allocation"] for step in episode.steps]})
    print(f"{task} {agent} seed {seed}: {episode.steps[-1]['utility']:.4f}", flush=True)
    return episode.steps[-1]["utility"]


def search(ledger: Ledger, out: Path, task: str, kind: str, episodes: int, budget: int, steps: int) -> tuple[np.ndarray, float]:
    """Nelder-Mead over phase logits, ``episodes`` evaluations on the search seed: (best logits, its utility)."""
    from scipy.optimize import minimize

    phases = PHASES[kind]
    start = np.tile(np.log(requirement(task) + 0.05), phases)
    simplex = np.vstack([start] + [start + 1.5 * np.eye(len(start))[i] for i in range(len(start))])
    trials: list[tuple[float, np.ndarray]] = []

    def loss(z: np.ndarray) -> float:
        if len(trials) >= episodes:
            return 0.0  # beyond the budget of episodes: never chosen (utilities are >= 0)
        utility = play_schedule(ledger, out, task, f"search-{kind}", schedule(z, steps), SEARCH_SEED, budget)
        trials.append((utility, z.copy()))
        return -utility

    minimize(loss, start, method="Nelder-Mead", options={"maxfev": episodes, "initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-4})
    utility, best = max(trials, key=lambda trial: trial[0])
    return best, utility


def run(args: argparse.Namespace) -> None:
    """``--stage search``: the searches of ``--kinds``, each writing ``found-<task>-<kind>.json``;
    ``evaluate``: every method on every seed (the found schedules whose search has finished; a rerun adds the
    others); ``all``: both."""
    out = Path(args.out)
    ledger = Ledger(out)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    for task in args.tasks.split(","):
        if args.stage in ("search", "all"):
            for kind in args.kinds.split(","):
                best, utility = search(ledger, out, task, kind, args.episodes, args.budget, args.steps)
                (out / f"found-{task}-{kind}.json").write_text(json.dumps({"logits": best.tolist(), "search_utility": utility, "episodes": args.episodes,
                                                                           "phase_allocations": [softmax(z).round(4).tolist() for z in best.reshape(-1, K)]}, indent=1))
                print(f"{task} best {kind}: search utility {utility:.4f}", flush=True)
        if args.stage in ("evaluate", "all"):
            files = {kind: out / f"found-{task}-{kind}.json" for kind in PHASES}
            found = {kind: np.array(json.loads(path.read_text())["logits"]) for kind, path in files.items() if path.is_file()}
            if len(found) < len(PHASES):
                print(f"{task}: no search result yet for {sorted(set(PHASES) - set(found))}: those schedules are left for a rerun", flush=True)
            for seed in seeds:
                play_schedule(ledger, out, task, "uniform", [np.full(K, 1 / K, dtype=np.float32)] * args.steps, seed, args.budget)
                play_schedule(ledger, out, task, "task_static", [(requirement(task) / requirement(task).sum()).astype(np.float32)] * args.steps, seed, args.budget)
                for kind, logits in found.items():
                    play_schedule(ledger, out, task, f"best_{kind}", schedule(logits, args.steps), seed, args.budget)
                for agent in args.agents.split(","):
                    play_agent(ledger, out, task, agent, seed, args.budget, args.steps)


def report(out: Path, docs: Path) -> None:
    from agents.harness.stats import mean_ci

    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines() if line.strip()]
    found = {f"{path.stem.split('-')[1]}|{path.stem.split('-')[2]}": json.loads(path.read_text()) for path in out.glob("found-*-*.json")}
    rows = ["task,method,seeds,mean,ci95,values,value_seeds"]
    episodes = ["task,method,seed,utility"]
    lines = []
    for task in dict.fromkeys(record["task"] for record in records):
        mine = [record for record in records if record["task"] == task and not record["method"].startswith("search-")]
        by_method: dict[str, dict[int, float]] = {}
        for record in mine:
            by_method.setdefault(record["method"], {})[record["seed"]] = 100 * record["utility"]
        for method, values in by_method.items():
            mean, half, _ = mean_ci(np.array(list(values.values())))
            seeds = sorted(values)
            rows.append(f"{task},{method},{len(values)},{mean:.2f},{half:.2f},{' '.join(f'{values[s]:.1f}' for s in seeds)},{' '.join(map(str, seeds))}")
            episodes += [f"{task},{method},{seed},{values[seed]:.4f}" for seed in seeds]
        if "task_static" in by_method:  # every method against task-static, paired by seed
            for method, values in by_method.items():
                seeds = sorted(set(values) & set(by_method["task_static"]))
                if method != "task_static" and len(seeds) > 1:
                    mean, half, _ = mean_ci(np.array([values[s] - by_method["task_static"][s] for s in seeds]))
                    lines.append(f"{task}: {method} - task_static = {mean:+.2f} points, 95% CI [{mean - half:+.2f}, {mean + half:+.2f}] over {len(seeds)} paired seeds")
        searches = {kind: sum(record["method"] == f"search-{kind}" for record in records if record["task"] == task) for kind in PHASES}
        lines.append(f"{task}: search episodes {searches}")
        phased = [kind for kind in ("two_phase", "three_phase") if f"{task}|{kind}" in found]
        if phased and f"best_{phased[0]}" in by_method and "best_fixed" in by_method:
            kind = max(phased, key=lambda k: found[f"{task}|{k}"]["search_utility"])
            seeds = sorted(set(by_method[f"best_{kind}"]) & set(by_method["best_fixed"]))
            difference = np.array([by_method[f"best_{kind}"][s] - by_method["best_fixed"][s] for s in seeds])
            mean, half, _ = mean_ci(difference)
            lines.append(f"{task}: best schedule ({kind}) - best fixed = {mean:+.2f} points, 95% CI [{mean - half:+.2f}, {mean + half:+.2f}] over {len(seeds)} paired seeds")
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "question.csv").write_text("\n".join(rows) + "\n")
    (docs / "question_episodes.csv").write_text("\n".join(episodes) + "\n")
    (docs / "question.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(rows + lines))


def power(docs: Path) -> None:
    """Per paired contrast of ``docs/question.txt``: the sd its 95% t interval implies, the smallest effect
    detectable at 80% power (two-sided 5%) with its seeds, and the seeds a 1-point effect needs."""
    import re

    from scipy import stats

    print("contrast,seeds,sd,detectable,seeds_for_1_point")
    pattern = re.compile(r"^(.*?) = ([-+.\d]+) points, 95% CI \[([-+.\d]+), ([-+.\d]+)\] over (\d+) paired seeds")
    for line in (docs / "question.txt").read_text().splitlines():
        match = pattern.match(line)
        if not match:
            continue
        n, half = int(match[5]), (float(match[4]) - float(match[3])) / 2
        sd = half * np.sqrt(n) / stats.t.ppf(0.975, n - 1)
        needed = next(m for m in range(2, 10_000) if (stats.t.ppf(0.975, m - 1) + stats.t.ppf(0.8, m - 1)) * sd / np.sqrt(m) <= 1.0)
        print(f"{match[1]},{n},{sd:.2f},{(stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / np.sqrt(n):.2f},{needed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("run", "report", "power"))
    parser.add_argument("--tasks", default="math,math_word_problems,coding_assistant")
    parser.add_argument("--stage", choices=("search", "evaluate", "all"), default="all")
    parser.add_argument("--kinds", default=",".join(PHASES), help="searches to run (fixed, two_phase, three_phase)")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--episodes", type=int, default=40, help="episodes of each search")
    parser.add_argument("--agents", default="read_bandit,aioli")
    parser.add_argument("--budget", type=int, default=80_000)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default="runs/mini-v1-question")
    parser.add_argument("--docs", default="docs/results/mini_v1")
    parser.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=JSON", help="an option for gym.make (repeatable)")
    args = parser.parse_args()
    ENV_KWARGS.update({key: json.loads(value) for key, value in (item.split("=", 1) for item in args.env_kwarg)})
    if args.kind == "report":
        report(Path(args.out), Path(args.docs))
    elif args.kind == "power":
        power(Path(args.docs))
    else:
        run(args)


if __name__ == "__main__":
    main()
