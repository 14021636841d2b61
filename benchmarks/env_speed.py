"""Environment steps per second: the surrogates (v0, v1, v2) and ``ReAD-Fitted-v0`` against CartPole-v1, and their native vector forms.

Both single environments go through ``gym.make`` with their default wrappers and take a fixed action, so
the timing is the environment's. ``--num-threads 2`` also times v1's vector form with its rows split over
two of numba's threads (any other work on the machine then slows every step down). ``--breakdown`` also
times v1's and v2's parts: a single environment's step (and the compiled call in it: numba's dispatch of the
step's arrays and one row's computation) and reset, and per row of the vector form, its compiled step and its
reset (the per-episode draws).
``--fitted-world FILE`` times ``ReAD-Fitted-v0`` on that world (default: the shipped one), with 20 steps per
episode as the surrogates (resets are part of the timing).
Run: ``python benchmarks/env_speed.py [--seconds 3] [--num-envs 1024] [--num-threads 2] [--breakdown] [--fitted-world FILE]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np

import read_env  # noqa: F401  (registers the environments)


def single_steps_per_second(env_id: str, seconds: float, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=env.action_space.dtype) if env.action_space.shape else 0
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        steps += 1000
    return steps / (time.perf_counter() - start)


def vector_steps_per_second(env_id: str, num_envs: int, seconds: float, **kwargs) -> float:
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    env.reset(seed=0)
    actions = np.zeros((num_envs, 8), dtype=np.float32)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            env.step(actions)
        calls += 20
    return calls * num_envs / (time.perf_counter() - start)


def seconds_per_call(call, seconds: float) -> float:
    call()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        calls += 1
    return (time.perf_counter() - start) / calls


def breakdown(env_id: str, num_envs: int, seconds: float) -> None:
    """Microseconds of a compiled surrogate's parts (v1, v2): single step and reset; the vector form's compiled step and reset, per row."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)

    def step() -> None:
        env.step(action)
        env._step = 0  # the same step again: the timing leaves out resets

    arguments = (action[None], env.state[None], np.zeros(1, dtype=np.int64), env.profile[None], *env._kernel_groups, env.output_block(1), 0)
    compiled_call = seconds_per_call(lambda: env.compiled_step(*arguments), seconds)
    step_time, reset_time = seconds_per_call(step, seconds), seconds_per_call(env.reset, seconds)
    print(f"{env_id} single: step {1e6 * step_time:.2f} us (of which the compiled call {1e6 * compiled_call:.2f} us), "
          f"reset {1e6 * reset_time:.2f} us")
    vector = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point").unwrapped
    vector.reset(seed=0)
    actions = np.zeros((num_envs, env.action_space.shape[0]), dtype=np.float32)
    first_step = vector.template.step_tokens[np.zeros(num_envs, dtype=int)]
    rows = np.arange(num_envs)
    compiled = seconds_per_call(lambda: vector._advance(actions, first_step), seconds)
    reset = seconds_per_call(lambda: vector._reset_rows(rows, [None] * num_envs, vector._autoreset_options), seconds)
    print(f"{env_id} vector, per row: compiled step {1e6 * compiled / num_envs:.3f} us, reset {1e6 * reset / num_envs:.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--breakdown", action="store_true", help="also time the parts of a v1 and a v2 step and reset")
    parser.add_argument("--num-threads", type=int, default=1, help="also time v1's vector form with this many numba threads")
    parser.add_argument("--fitted-world", default="default", help="the world of ReAD-Fitted-v0 (a fit-world --model file)")
    args = parser.parse_args()
    cartpole = single_steps_per_second("CartPole-v1", args.seconds)
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}, gymnasium {gym.__version__}")
    print(f"CartPole-v1 (gym.make)               {cartpole:12,.0f} steps/s")
    for env_id, kwargs in (("ReAD-Surrogate-v0", {}), ("ReAD-Surrogate-v1", {}), ("ReAD-Surrogate-v2", {}), ("ReAD-Fitted-v0", {"world": args.fitted_world, "num_steps": 20})):
        single = single_steps_per_second(env_id, args.seconds, **kwargs)
        vector = vector_steps_per_second(env_id, args.num_envs, args.seconds, **kwargs)
        print(f"{env_id} (gym.make)         {single:12,.0f} steps/s   ratio to CartPole {single / cartpole:.2f}")
        print(f"{env_id} vector, {args.num_envs} envs {vector:12,.0f} env-steps/s   ratio to CartPole's single env {vector / cartpole:.1f}")
    for env_id in ("ReAD-Surrogate-v1", "ReAD-Surrogate-v2"):
        if args.num_threads > 1:
            vector = vector_steps_per_second(env_id, args.num_envs, args.seconds, num_threads=args.num_threads)
            print(f"{env_id} vector, {args.num_envs} envs, {args.num_threads} threads {vector:12,.0f} env-steps/s   ratio to CartPole's single env {vector / cartpole:.1f}")
        if args.breakdown:
            breakdown(env_id, args.num_envs, args.seconds)


if __name__ == "__main__":
    main()
