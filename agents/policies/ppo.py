"""PPO (and any SB3 algorithm) on the surrogate: train on random worlds and tasks, evaluate anywhere.

Training environment: ``env_id`` (default :data:`read_env.registration.DEFAULT_ENV_ID`) with ``world="random"`` (a fresh
world per episode drawn from the prior around the paper's) and the default logits action space; each episode's task is drawn from
``TRAIN_TASKS`` (the named tasks plus ``"random"`` Dirichlet requirements); half the parallel environments
spend 20M tokens, half 150M. Held-out evaluation: ``world="random"`` with ``world_seed`` >= ``HELD_OUT_WORLD_SEED``
(never drawn by seed in training), ``world="paper"``, or the real ``ReAD-v0`` through the runner.

A saved model (``model.zip``) plays through the runner as ``make_agent("ppo:path/model.zip", setting)``
or directly ``run_episode(PPO.load(path))``: the SB3 model is wrapped automatically.
The same hyperparameters as an rl-zoo3 entry: ``agents/hyperparams/ppo.yml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import read_env  # noqa: F401
from agents.base import SB3Agent, Setting
from read_env.registration import DEFAULT_ENV_ID
from read_env.tasks import TASKS

TRAIN_TASKS: tuple[str, ...] = (*TASKS, "random")
HELD_OUT_WORLD_SEED = 1_000_000

PPO_HYPERPARAMS: dict[str, Any] = {
    "policy": "MultiInputPolicy",  # Dict observation
    "n_steps": 128,  # per environment: 6.4 episodes of 20 steps; x n_envs = 512 per update
    "batch_size": 128,
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gamma": 0.99,  # 20-step episodes: near-undiscounted
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -1.0},
}
N_ENVS = 4
TRAIN_BUDGETS = (20_000_000, 150_000_000)


class TaskSampler(gym.Wrapper):
    """Draws the episode's task from ``tasks`` (with the env's generator) unless ``reset`` names one."""

    def __init__(self, env: gym.Env, tasks: Sequence[str] = TRAIN_TASKS) -> None:
        super().__init__(env)
        self.tasks = tuple(tasks)
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = dict(options or {})
        options.setdefault("task", self.tasks[int(self._rng.integers(len(self.tasks)))])
        return self.env.reset(seed=seed, options=options)


def make_train_env(
    n_envs: int = N_ENVS,
    seed: int = 0,
    tasks: Sequence[str] = TRAIN_TASKS,
    budgets: Sequence[int] = TRAIN_BUDGETS,
    world: str = "random",
    num_steps: int = 20,
    env_id: str = DEFAULT_ENV_ID,
    env_kwargs: dict[str, Any] | None = None,
):
    """``n_envs`` training environments (SB3 ``DummyVecEnv``): ``world`` is one world spec or a comma list of
    them (e.g. worlds fitted to several students), spread over the environments as ``budgets`` are (``n_envs``
    must then be a multiple of their number); ``env_kwargs`` go to every ``gym.make`` (e.g. a fitted world's
    ``uncertainty_penalty``)."""
    worlds = world.split(",")
    if n_envs % len(worlds):
        raise ValueError(f"{len(worlds)} worlds need a number of environments that is a multiple of {len(worlds)}, got {n_envs}")
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    def factory(index: int):
        def build() -> gym.Env:
            env = gym.make(env_id, world=worlds[index % len(worlds)], budget_tokens=int(budgets[index % len(budgets)]), num_steps=num_steps,
                           **(env_kwargs or {}))
            return Monitor(TaskSampler(env, tasks))

        return build

    venv = DummyVecEnv([factory(i) for i in range(n_envs)])
    venv.seed(seed)
    return venv


def train(algo: str = "ppo", total_timesteps: int = 100_000, seed: int = 0, out_dir: str | Path = "runs/ppo", tensorboard: bool = True,
          checkpoint_every: int = 0, hyperparams: dict[str, Any] | None = None, n_envs: int = N_ENVS, progress: bool = False, **env_options: Any):
    """Train an SB3 algorithm on the surrogate; saves ``OUT/model.zip`` (and checkpoints); returns the model.
    ``env_options`` go to :func:`make_train_env`; with a comma list of worlds, ``n_envs`` rounds up to a multiple of
    their number.

    On ``KeyboardInterrupt`` (Ctrl-C) the policy trained so far is saved to ``OUT/model.zip``, the progress bar
    and logs are closed, and the interrupt is raised again.
    """
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import CheckpointCallback, ProgressBarCallback

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cls = getattr(sb3, algo.upper())
    params = dict(PPO_HYPERPARAMS) if algo.lower() == "ppo" else {"policy": "MultiInputPolicy"}
    params.update(hyperparams or {})
    policy = params.pop("policy")
    worlds = len(str(env_options.get("world", "")).split(","))
    n_envs = worlds * -(-n_envs // worlds)  # every world the same number of environments
    venv = make_train_env(n_envs, seed, **env_options)
    model = cls(policy, venv, seed=seed, verbose=0, tensorboard_log=str(out / "tb") if tensorboard else None, device="cpu", **params)
    callbacks = [CheckpointCallback(max(1, checkpoint_every // n_envs), str(out / "checkpoints"), name_prefix=algo.lower())] if checkpoint_every else []
    bar = ProgressBarCallback() if progress else None
    try:
        model.learn(total_timesteps=total_timesteps, callback=callbacks + [bar] if bar else callbacks or None)
    except KeyboardInterrupt:
        if bar is not None and getattr(bar, "pbar", None) is not None:
            bar.pbar.close()
        raise
    finally:
        model.save(out / "model.zip")
        if getattr(model, "_logger", None) is not None:  # set once learn() has started
            model.logger.close()
        venv.close()
    return model


def load_sb3_agent(spec: str, setting: Setting, seed: int | None = None) -> SB3Agent:
    """``"PATH"`` (PPO) or ``"ALGO:PATH"`` -> an :class:`SB3Agent` around the loaded model."""
    import stable_baselines3 as sb3

    algo, _, path = spec.rpartition(":") if spec.count(":") and not Path(spec).exists() else ("ppo", "", spec)
    model = getattr(sb3, (algo or "ppo").upper()).load(path, device="cpu")
    return SB3Agent(model, setting, seed)
