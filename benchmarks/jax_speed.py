"""The JAX surrogate and PPO compiled with JAX, beside CartPole-v1 through ``gym.make`` and SB3's PPO, in one run.

Speed (always):

* ``CartPole-v1`` steps/s through ``gym.make`` (one environment, a fixed action; ``env_speed.py``'s timing);
* ``ReAD-Surrogate-v1`` in JAX at each ``--num-envs``: env-steps/s of ``jit(scan(vmap(env.step)))`` with
  gymnax's autoreset on the paper world (the default), and with a random world per episode reset once per
  episode (``reset_env`` then ``num_steps`` of ``step_env``, as ``ppo_jax`` runs; gymnax's autoreset would
  draw a world at every step: ``--random-autoreset`` times that too);
* PPO training steps/s: ``ppo_jax`` (the compiled run; compile seconds apart) and SB3's PPO on
  ``ReAD-Surrogate-v1`` (``agents.policies.ppo.train``, 4 environments, random worlds) on one torch thread and
  on all cores, with the ratio to SB3's faster one; then ``ppo_jax`` with SB3's update (its ``n_epochs`` and
  minibatch size: the same gradient work per step, the default config does less).

Quality (``--quality OUT``): trains ``ppo_jax`` (``--ppo-timesteps``), then SB3's PPO for the same wall time
(compile included, at the rate just measured), and runs ``compare`` on v1 (paper world, 15 tasks, 20M and
150M, ``--seeds`` seeds) with ``task_static``; prints the paired differences (per seed, averaged over tasks).

Run: ``python benchmarks/jax_speed.py [--seconds 3] [--num-envs 1024,4096,16384,65536] [--ppo-timesteps 2000000]
[--sb3-timesteps 8192] [--random-autoreset] [--quality runs/jax_quality --seeds 10]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from env_speed import single_steps_per_second

from agents.harness.compare import EPISODES_FILE, CompareConfig, run_compare
from agents.harness.stats import mean_ci
from agents.policies import ppo_jax
from agents.policies.ppo import PPO_HYPERPARAMS
from agents.policies.ppo import train as train_sb3
from read_env import jax as read_jax
from read_env.registration import SURROGATE_V1_ID
from read_env.tasks import MULTI_CAPABILITY_TASKS, SINGLE_CAPABILITY_TASKS

BUDGETS = (20_000_000, 150_000_000)


def timed(function, *args) -> float:
    """Seconds of one call of a compiled ``function`` (after a first call that compiles it)."""
    jax.block_until_ready(function(*args))
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    return time.perf_counter() - start


def autoreset_steps_per_second(num_envs: int, seconds: float, **make_kwargs) -> float:
    """gymnax's ``step`` (autoreset) of ``num_envs`` v1 environments (default: the paper world), a fixed action."""
    env, params = read_jax.make(SURROGATE_V1_ID, **make_kwargs)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), num_envs), params)

    def run(state, params, action, key, steps):
        def one(state, key):
            _, state, reward, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(key, num_envs), state, action, params)
            return state, reward.sum()

        return jax.lax.scan(one, state, jax.random.split(key, steps))[1]

    return _rate(run, (state, params, jnp.zeros((num_envs, env.num_actions))), num_envs, seconds)


def episode_reset_steps_per_second(num_envs: int, seconds: float) -> float:
    """v1 with a random world and task per episode: ``reset_env`` once per episode, then ``num_steps`` of ``step_env``."""
    env, params = read_jax.make(SURROGATE_V1_ID, world="random", task="random")

    def run(params, action, key, steps):
        def episode(_, key):
            reset_key, step_key = jax.random.split(key)
            _, state = jax.vmap(env.reset_env, in_axes=(0, None))(jax.random.split(reset_key, num_envs), params)

            def one(state, key):
                _, state, reward, *_ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(jax.random.split(key, num_envs), state, action, params)
                return state, reward.sum()

            return None, jax.lax.scan(one, state, jax.random.split(step_key, env.num_steps))[1]

        return jax.lax.scan(episode, None, jax.random.split(key, steps // env.num_steps))[1]

    return _rate(run, (params, jnp.zeros((num_envs, env.num_actions))), num_envs, seconds, multiple=env.num_steps)


def _rate(run, arguments: tuple, num_envs: int, seconds: float, multiple: int = 1) -> float:
    """Env-steps/s of the second call of ``jit(run)(*arguments, key, steps)`` (the first compiles), ``steps`` a
    multiple of ``multiple`` worth about ``seconds`` at two million env-steps/s. The arrays are arguments, not
    constants, so XLA cannot fold them into the program."""
    steps = max(1, round(seconds * 2e6 / num_envs / multiple)) * multiple
    return steps * num_envs / timed(jax.jit(run, static_argnums=len(arguments) + 1), *arguments, jax.random.key(1), steps)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block on ``threads`` torch threads (SB3's PPO), then restore the count."""
    import torch

    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(default)


def sb3_steps_per_second(timesteps: int, threads: int) -> tuple[float, float]:
    """(steps/s, seconds) of ``agents.policies.ppo.train`` on v1 for ``timesteps`` steps (set-up and saving included)
    on ``threads`` torch threads, after a first call of one update that imports torch and SB3."""
    with torch_threads(threads), tempfile.TemporaryDirectory() as out:
        train_sb3("ppo", 512, seed=0, out_dir=out, tensorboard=False, env_id=SURROGATE_V1_ID)
        start = time.perf_counter()
        train_sb3("ppo", timesteps, seed=0, out_dir=out, tensorboard=False, env_id=SURROGATE_V1_ID)
        elapsed = time.perf_counter() - start
    return timesteps / elapsed, elapsed


def paired_differences(out: Path, agent: str, others: list[str]) -> None:
    """Print ``agent`` minus each of ``others``: final utility in points, paired per (budget, seed) over tasks."""
    records = [json.loads(line) for line in (out / EPISODES_FILE).read_text().splitlines()]
    utility = {(r["agent"], r["budget_tokens"], r["seed"], r["task"]): 100 * r["final_utility"] for r in records}
    for budget in BUDGETS:
        seeds = sorted({r["seed"] for r in records})
        tasks = sorted({r["task"] for r in records})
        mean = {name: np.array([np.mean([utility[name, budget, seed, task] for task in tasks]) for seed in seeds]) for name in [agent, *others]}
        for other in others:
            diff, half, _ = mean_ci(mean[agent] - mean[other])
            print(f"  {budget // 1_000_000}M: {agent.split(':')[0]} - {other.split(':')[0]} = {diff:+.2f} points [{diff - half:+.2f}, {diff + half:+.2f}] "
                  f"({mean[agent].mean():.2f} vs {mean[other].mean():.2f}; {len(seeds)} seeds x {len(tasks)} tasks)")  # fmt: skip


def quality(out: Path, config: ppo_jax.PPOConfig, sb3_rate: float, sb3_threads: int, seeds: int) -> None:
    """Train both PPOs for about the same wall time (SB3 on ``sb3_threads`` torch threads), compare them and
    task_static on v1 (paired)."""
    start = time.perf_counter()
    network, report = ppo_jax.train(config, out / "ppo_jax")
    jax_wall = time.perf_counter() - start
    sb3_timesteps = max(512, int(sb3_rate * jax_wall) // 512 * 512)
    start = time.perf_counter()
    with torch_threads(sb3_threads):
        train_sb3("ppo", sb3_timesteps, seed=0, out_dir=out / "ppo_sb3", tensorboard=False, env_id=SURROGATE_V1_ID)
    sb3_wall = time.perf_counter() - start
    print(f"ppo_jax: {report['steps']:,} steps in {jax_wall:.0f} s (compile {report['compile_s']:.0f} s); "
          f"SB3 PPO: {sb3_timesteps:,} steps in {sb3_wall:.0f} s")  # fmt: skip
    agents = [f"ppo_jax:{out / 'ppo_jax' / 'model.npz'}", f"ppo:{out / 'ppo_sb3' / 'model.zip'}", "task_static"]
    tasks = [*SINGLE_CAPABILITY_TASKS, *MULTI_CAPABILITY_TASKS]
    run_compare(CompareConfig(agents, tasks, list(BUDGETS), list(range(seeds)), SURROGATE_V1_ID, out_dir=str(out / "compare")), progress=False)
    print(f"read-env compare on {SURROGATE_V1_ID} (paper world), final utility, paired:")
    paired_differences(out / "compare", agents[0], agents[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--num-envs", default="1024,4096,16384,65536", help="comma list of batch sizes")
    parser.add_argument("--ppo-timesteps", type=int, default=2_000_000, help="ppo_jax training steps (default config otherwise)")
    parser.add_argument("--sb3-timesteps", type=int, default=8192, help="SB3 PPO steps timed for its rate")
    parser.add_argument("--quality", type=Path, default=None, metavar="OUT", help="also train both PPOs for the same wall time and compare them")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--random-autoreset", action="store_true", help="also time gymnax's autoreset with a random world and task per episode")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, gymnasium {gym.__version__}")  # fmt: skip
    cartpole = single_steps_per_second("CartPole-v1", args.seconds)
    print(f"CartPole-v1 (gym.make)                                   {cartpole:14,.0f} steps/s")
    best = (0.0, "")
    for num_envs in (int(n) for n in args.num_envs.split(",")):
        autoreset = autoreset_steps_per_second(num_envs, args.seconds)
        print(f"ReAD-Surrogate-v1 JAX, {num_envs:6d} envs, paper world, autoreset {autoreset:14,.0f} env-steps/s  {autoreset / cartpole:6.1f}x CartPole")
        episodes = episode_reset_steps_per_second(num_envs, args.seconds)
        print(f"ReAD-Surrogate-v1 JAX, {num_envs:6d} envs, random worlds, resets  {episodes:14,.0f} env-steps/s  {episodes / cartpole:6.1f}x CartPole")
        best = max(best, (autoreset, f"{num_envs} envs, paper world, autoreset"), (episodes, f"{num_envs} envs, random worlds, resets"))
        if args.random_autoreset:
            drawn = autoreset_steps_per_second(num_envs, args.seconds, world="random", task="random")
            print(f"ReAD-Surrogate-v1 JAX, {num_envs:6d} envs, random worlds, autoreset {drawn:12,.0f} env-steps/s  {drawn / cartpole:6.1f}x CartPole")
    print(f"best: {best[1]}, {best[0] / cartpole:.1f}x CartPole")
    config = ppo_jax.PPOConfig(env_id=SURROGATE_V1_ID, total_timesteps=args.ppo_timesteps)
    _, report = ppo_jax.train(config)
    print(f"ppo_jax training ({config.num_envs} envs, random v1 worlds)        {report['steps_per_second']:14,.0f} steps/s  "
          f"({report['steps']:,} steps in {report['train_s']:.1f} s after {report['compile_s']:.1f} s compiling)")  # fmt: skip
    sb3_rates = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        sb3_rates[threads], seconds = sb3_steps_per_second(args.sb3_timesteps, threads)
        print(f"SB3 PPO training (read-env train --algo ppo, v1), {threads} torch thread(s) {sb3_rates[threads]:10,.0f} steps/s  "
              f"({args.sb3_timesteps:,} steps in {seconds:.1f} s)")  # fmt: skip
    sb3_threads = max(sb3_rates, key=sb3_rates.get)  # SB3 at its best: two torch threads beside a busy process can run ~17x slower
    sb3_rate = sb3_rates[sb3_threads]
    end_to_end = report["steps"] / (report["train_s"] + report["compile_s"])
    print(f"ratio ppo_jax / SB3: {report['steps_per_second'] / sb3_rate:.0f}x compiled run, {end_to_end / sb3_rate:.0f}x with compiling")
    epochs, minibatch = PPO_HYPERPARAMS["n_epochs"], PPO_HYPERPARAMS["batch_size"]
    like_sb3 = dataclasses.replace(config, update_epochs=epochs, num_minibatches=config.batch_size // minibatch)
    _, report = ppo_jax.train(like_sb3)
    print(f"ppo_jax with SB3's update ({epochs} epochs, minibatches of {minibatch}) {report['steps_per_second']:12,.0f} steps/s: "
          f"{report['steps_per_second'] / sb3_rate:.0f}x SB3 (the default does {config.update_epochs} epochs of minibatches of "
          f"{config.batch_size // config.num_minibatches})")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    if args.quality is not None:
        quality(args.quality, config, sb3_rate, sb3_threads, args.seeds)


if __name__ == "__main__":
    main()
