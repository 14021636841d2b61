"""Episodes per hour of ReAD-Mini: single episodes one at a time against one batched run of K (read_env.mini.batched).

    OMP_NUM_THREADS=1 python benchmarks/batched_students.py --members 8,32          # ReAD-Mini-v1 defaults: 80k tokens, 8 steps
    python benchmarks/batched_students.py --device cuda --members 256 --singles 2    # the GPU acceptance run: the same code

Members ``m = 0..K-1`` play fixed random schedules (logit actions uniform in [-1, 1], drawn from seed 0) on tasks
cycling through ``--tasks``, reset seed ``m``. The single rate is ``--singles`` of these episodes (the first
ones) played one after the other through ``gym.make`` on the CPU, as agents play them; the batched rate is K
over one :func:`~read_env.mini.batched.run_batched` of all K on ``--device``. Torch threads are what the
environment sets (``threads``, default 1). It also prints the largest difference between a single episode's
final utility and its batched twin. ``--env-kwarg key=JSON`` passes options to ``gym.make`` (e.g. a tiny
student, to try the script in seconds). The last line is ``ratio batched/single: X`` at the largest K.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import gymnasium as gym
import numpy as np
import torch

import read_env  # noqa: F401
from read_env.mini.batched import Member, run_batched


def members(count: int, tasks: list[str], steps: int, capabilities: int) -> list[Member]:
    """K members: task ``tasks[m % len(tasks)]``, seed ``m``, logit actions [steps, capabilities] uniform in [-1, 1]."""
    rng = np.random.default_rng(0)
    return [Member(tasks[m % len(tasks)], m, rng.uniform(-1, 1, (steps, capabilities)).astype(np.float32)) for m in range(count)]


def single(env_id: str, env_kwargs: dict, member: Member) -> float:
    """Play ``member`` as one episode through ``gym.make``; its final utility."""
    with tempfile.TemporaryDirectory() as run_dir:
        env = gym.make(env_id, **{**env_kwargs, "run_dir": run_dir})
        env.reset(seed=member.seed, options={"task": member.task})
        for action in member.schedule:
            _, _, _, _, info = env.step(action)
        env.close()
    return info["utility"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="ReAD-Mini-v1")
    parser.add_argument("--members", default="8,32", help="comma-separated K values of the batched runs")
    parser.add_argument("--singles", type=int, default=4, help="single episodes timed one at a time (their rate does not depend on K)")
    parser.add_argument("--tasks", default="math,coding_assistant,math_word_problems")
    parser.add_argument("--device", default="cpu", help="where the batched students compute (cpu, cuda, ...)")
    parser.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=JSON", help="an option of gym.make (repeatable)")
    args = parser.parse_args()
    env_kwargs = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.env_kwarg)}
    sizes = [int(size) for size in args.members.split(",")]
    probe = gym.make(args.env_id, **{**env_kwargs, "run_dir": tempfile.gettempdir()}).unwrapped
    steps, capabilities, budget = probe.num_steps, len(probe.capabilities), probe.budget_tokens
    everyone = members(max(sizes + [args.singles]), args.tasks.split(","), steps, capabilities)
    print(f"{args.env_id}: budget {budget:,} tokens, {steps} steps; batched on {args.device}")

    started = time.perf_counter()
    single_utility = [single(args.env_id, env_kwargs, member) for member in everyone[: args.singles]]
    single_rate = args.singles * 3600 / (time.perf_counter() - started)
    print(f"torch threads {torch.get_num_threads()}")
    print(f"single episodes one at a time: {args.singles}, {single_rate:,.1f} episodes/hour")
    for size in sizes:
        started = time.perf_counter()
        episodes = run_batched(everyone[:size], args.env_id, env_kwargs, args.device)
        rate = size * 3600 / (time.perf_counter() - started)
        difference = max((abs(u - episode.infos[-1]["utility"]) for u, episode in zip(single_utility, episodes)), default=float("nan"))
        print(f"batched K={size}: {rate:,.1f} episodes/hour, {rate / single_rate:.2f}x single; "
              f"largest |final utility single - batched| {difference:.2e}")
    print(f"ratio batched/single: {rate / single_rate:.2f}")


if __name__ == "__main__":
    main()
