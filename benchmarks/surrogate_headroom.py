"""Where adaptive allocation can gain on a surrogate: fixed schedules against the oracle, noise off.

For every task and budget it measures the utility (points) of uniform, task-static (``w = r``), grid-searched
(best fixed allocation of the paper's candidate set), best fixed (the oracle's continuous search over fixed
allocations, :func:`read_env.surrogate.oracle.best_fixed_allocation`) and the oracle schedule, then the paper's ratios: ``(grid - uniform) / (task_static - uniform)`` (paper: 1.22 at 20M, 1.37
at 150M) and the headroom ``(oracle - best fixed) / (task_static - uniform)`` (the paper's ReAD gain over grid
in the same units: 1.51, 1.77). ``--ablate`` repeats the v1 measurement with each mechanism switched off;
``--prerequisite-scales 2,5,10`` with the prerequisite gains multiplied (beyond the sourced range, to find
the magnitude the paper's headroom would need).
It also prints the one-hot calibration error and the order effect of two one-hot phases. ``--fine-check``
solves every task's best fixed allocation again finely (10x the Dirichlet draws, 32 starts, steps down to 1e-7)
and prints the largest shortfall of the default search.

    python benchmarks/surrogate_headroom.py --version v1 --ablate --prerequisite-scales 2,5,10,20
    python benchmarks/surrogate_headroom.py --version v1 --per-task --fine-check
    python benchmarks/surrogate_headroom.py --version v2 --per-task
    python benchmarks/surrogate_headroom.py --budgets 20 --steps 4 --tasks math,chat_assistant --ablate   # the tests' size
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agents.cli import parse_tasks
from agents.policies.candidates import candidate_set
from read_env import contract
from read_env.surrogate import path_dependent_world
from read_env.surrogate.oracle import final_profiles, final_utilities, oracle_schedule
from read_env.surrogate.path_dependent_world import PathWorld
from read_env.surrogate.world import World
from read_env.surrogate.path_dependent_env import named_task
from read_env.tasks import TASKS

FAMILIES = {"v0": None, "v1": "scores", "v2": "shortfall"}
"""The utility family of each version (v0: linear in the scores, v0's world)."""
PAPER_RATIOS = {20_000_000: (1.22, 1.51), 150_000_000: (1.37, 1.77)}


FINE_SEARCH = {"draws": 20_000, "starts": 32, "min_step": 1e-7}


def task_rows(world: World, budget: int, num_steps: int, family: str | None, tasks: list[str], fine_check: bool = False
              ) -> list[tuple[str, np.ndarray]]:
    """Per task of ``tasks``: utilities (points) of uniform, task-static, grid, best fixed, oracle (and the finely solved
    best fixed); ``family`` None: v0's linear utility."""
    tokens = contract.step_tokens(budget, num_steps)
    path = family is not None
    rows = []
    for name in tasks:
        card = TASKS[name]
        if path:
            objective, requirement = named_task(world, name, family)
        else:
            requirement = card.requirement(world.capabilities)

            def objective(profile: np.ndarray, weights: np.ndarray = requirement) -> np.ndarray:
                return profile @ weights

        def fixed(allocations: np.ndarray) -> np.ndarray:
            return final_utilities(world, objective, np.repeat(allocations[:, None], num_steps, axis=1), tokens)

        uniform, static = fixed(np.array([np.full(len(requirement), 1 / len(requirement)), requirement]))
        grid = fixed(candidate_set(requirement, None, 3)).max()
        result = oracle_schedule(world, requirement, budget, num_steps, objective=objective, phase_starts=path)
        best_fixed = max(grid, result.best_fixed_utility)  # the continuous search starts from a superset of the grid
        values = [uniform, static, grid, best_fixed, result.utility]
        if fine_check:
            values.append(oracle_schedule(world, requirement, budget, num_steps, max_sweeps=0, objective=objective, **FINE_SEARCH).best_fixed_utility)
        rows.append((name, 100 * np.array(values)))
    return rows


def report(world: World, budgets: list[int], num_steps: int, family: str | None, tasks: list[str], per_task: bool,
           fine_check: bool = False) -> None:
    for budget in budgets:
        rows = task_rows(world, budget, num_steps, family, tasks, fine_check)
        mean = np.mean([values for _, values in rows], axis=0)
        span = mean[1] - mean[0]
        grid_ratio, headroom = (mean[2] - mean[0]) / span, (mean[4] - mean[3]) / span
        paper = PAPER_RATIOS.get(budget, (float("nan"), float("nan")))
        print(f"{budget / 1e6:.0f}M  uniform {mean[0]:.2f}  task_static {mean[1]:.2f}  grid {mean[2]:.2f}  best_fixed {mean[3]:.2f}  oracle {mean[4]:.2f}"
              f"  | grid ratio {grid_ratio:.2f} (paper {paper[0]})  headroom {headroom:.2f} (paper {paper[1]})  oracle - best fixed {mean[4] - mean[3]:.2f} points")
        if per_task:
            for name, values in rows:
                print(f"    {name:20s} " + " ".join(f"{value:6.2f}" for value in values[:5]) + f"   headroom {values[4] - values[3]:+.2f}")
        if fine_check:
            shortfall = max(values[5] - values[3] for _, values in rows)
            print(f"    fine search of the best fixed allocation: largest shortfall of the default search {shortfall:.2e} points")


def calibration_error(world: World, num_steps: int) -> None:
    k = len(world.capabilities)
    errors = []
    for index, budget in enumerate(world.calibration_budgets):
        schedules = np.repeat(np.eye(k)[:, None], num_steps, axis=1)
        change = final_profiles(world, schedules, contract.step_tokens(int(budget), num_steps)) - world.student
        errors.append(np.abs(change - world.transfer[index]) * 100)
    errors = np.array(errors)
    print(f"one-hot calibration over {num_steps} steps: mean error {errors.mean():.2e}, max {errors.max():.2e} points")


def order_effect(world: World, budget: int, num_steps: int, pairs: list[tuple[str, str]]) -> None:
    """True profile change (points) of A then B, B then A and the 50/50 mixture, on A's and B's scores."""
    names = list(world.capabilities)
    tokens = contract.step_tokens(budget, num_steps)
    half = num_steps // 2
    for first, second in pairs:
        a, b = np.eye(len(names))[names.index(first)], np.eye(len(names))[names.index(second)]
        schedules = np.array([[a] * half + [b] * (num_steps - half), [b] * half + [a] * (num_steps - half), [(a + b) / 2] * num_steps])
        change = 100 * (final_profiles(world, schedules, tokens) - world.student)
        columns = [names.index(first), names.index(second)]
        cells = "  ".join(f"{label} {change[row, columns[0]]:+6.2f}/{change[row, columns[1]]:+6.2f}" for row, label in enumerate(("A->B", "B->A", "mix")))
        print(f"  {budget / 1e6:.0f}M  A={first:13s} B={second:13s} (change of A/B)  {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", choices=tuple(FAMILIES), default="v1")
    parser.add_argument("--budgets", default="20,150", help="budgets in millions of tokens")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--per-task", action="store_true")
    parser.add_argument("--ablate", action="store_true", help="v1 and v2: also without prerequisites, without repair, without both")
    parser.add_argument("--fine-check", action="store_true", help="solve each best fixed allocation finely and print the default search's shortfall")
    parser.add_argument("--prerequisite-scales", default="", help="v1 and v2: comma list of factors on the prerequisite gains")
    parser.add_argument("--tasks", type=parse_tasks, default="all", help="comma list of task names or groups (all, single, multi)")
    args = parser.parse_args()
    budgets = [int(float(value) * 1e6) for value in args.budgets.split(",")]
    start = time.perf_counter()
    family = FAMILIES[args.version]
    path = family is not None
    world = PathWorld.paper() if path else World.paper()
    calibration_error(world, args.steps)
    report(world, budgets, args.steps, family, args.tasks, args.per_task, args.fine_check)
    if path:
        print("order of two one-hot phases (half the budget each):")
        for budget in budgets:
            order_effect(world, budget, args.steps, [("reasoning", "math"), ("code", "tool_use"), ("math", "steerability"), ("code", "steerability")])
    if path and args.ablate:
        data = world.to_calibration()
        no_repair = 1e30  # repair never happens: harm is permanent, as in v0
        for label, change in (("no prerequisites", {"prerequisites": {}}), ("no repair", {"repair_tokens": no_repair}), ("neither", {"prerequisites": {}, "repair_tokens": no_repair})):
            print(f"ablation: {label}")
            report(PathWorld.from_calibration({**data, **change}), budgets, args.steps, family, args.tasks, False)
    if path and args.prerequisite_scales:
        path_dependent_world.MAX_PREREQUISITE_GAIN = np.inf  # outside the range the source supports: a diagnostic only
        for scale in (float(value) for value in args.prerequisite_scales.split(",")):
            print(f"prerequisite gains x{scale:g} (largest gain {scale * world.prerequisites.max():g})")
            scaled = PathWorld.from_calibration({**world.to_calibration(), "prerequisites": scaled_prerequisites(world, scale)})
            report(scaled, budgets, args.steps, family, args.tasks, False)
    print(f"seconds {time.perf_counter() - start:.1f}")


def scaled_prerequisites(world: PathWorld, scale: float) -> dict[str, dict[str, float]]:
    names = world.capabilities
    return {names[i]: {names[j]: scale * world.prerequisites[i, j] for j in range(len(names)) if world.prerequisites[i, j] > 0} for i in range(len(names))}


if __name__ == "__main__":
    main()
