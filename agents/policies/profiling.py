"""Profiling runs before an episode, shared by every agent that profiles (grid, LinUCB, Aioli, Skill-It, the ReAD bandit).

The paper trains the bandit's reward model on a profiling split and grid-searches fixed allocations on it;
both are spent outside the distillation budget. Here, before an episode of ``B`` tokens in ``T`` steps:

1. the profiling allocations are the static candidate set ``A(tau)`` of the requirement (no previous
   allocation: ``r``, uniform, the one-hots and weighted pairs among the top-k, the top-k triple;
   :func:`agents.policies.candidates.candidate_set`);
2. ``P = round(profile_fraction * B)`` profiling tokens are split over the M allocations as the contract
   splits a budget (``P // M`` each, the first ``P % M`` one more), so every agent with the same
   ``profile_fraction`` spends exactly ``P`` tokens whatever M is;
3. each allocation is run for one step in its own fresh episode of the same environment id and arguments,
   with the episode's requirement (a reset option), so its proxy reward is the episode's reward formula;
   the environment class may add arguments for such throwaway episodes (``PROFILING_KWARGS``: ``ReAD-v0``
   runs them as scratch episodes that keep nothing on disk and reuse the episode's loaded models and start
   measurement);
4. the measured change and the reward are brought to the scale of one episode step (``B / T`` tokens) to
   first order: ``ds_step = ratio * ds`` and ``R_step = ratio * (gain - beta * spill) - cost_weight / T`` with
   ``ratio = (B / T) / tokens_run`` (gains and spillover are linear in tokens for small steps; the
   measurement noise is scaled by ``ratio`` too).

With ``world="random"`` and no ``world_seed`` the profiling episodes draw their own worlds from the prior:
the agent cannot see the episode's world through the Gymnasium API.

:func:`fit_transfer` turns (allocation, change) pairs into the transfer matrix the mixers of Aioli and
Skill-It read (how training on each capability changes every capability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator
from tqdm import tqdm

from agents.base import Setting, make_env
from agents.policies.candidates import candidate_set
from read_env import contract

DEFAULT_PROFILE_FRACTION = 0.1
"""Profiling tokens as a fraction of the episode budget (the paper's 10% profiling split)."""


@dataclass
class ProfilingRun:
    """One profiling run: its start observation, allocation [K], tokens, and the step-scale ``ds`` [K] and reward."""

    observation: dict[str, np.ndarray]
    allocation: np.ndarray
    tokens: int
    delta_profile: np.ndarray
    reward: float


def check_profile_fraction(value: float, allow_zero: bool = True) -> float:
    """``value`` as a float in [0, 1) (or (0, 1) when ``allow_zero`` is False), else ``ValueError``."""
    number = not isinstance(value, bool) and isinstance(value, (int, float)) and bool(np.isfinite(value))
    if not (number and (value >= 0 if allow_zero else value > 0) and value < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"profile_fraction must be a number in {interval} (a share of the episode budget), got {value!r}")
    return float(value)


def profiling_kwargs(env_id: str) -> dict[str, Any]:
    """The extra keyword arguments ``env_id``'s class asks profiling runs to be made with (``PROFILING_KWARGS``)."""
    entry_point = gym.spec(env_id).entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    return dict(getattr(creator, "PROFILING_KWARGS", {}))


def profile(setting: Setting, requirement: np.ndarray, profile_fraction: float, rng: np.random.Generator, top_k: int = 3,
            max_candidates: int = 50, agent_requirement: np.ndarray | None = None) -> list[ProfilingRun]:
    """Profile the static candidates of ``agent_requirement`` (default ``requirement``) [K]; see the module docstring.

    ``requirement`` [K] is the episode's observed one (it sets the profiling rewards).
    """

    check_profile_fraction(profile_fraction, allow_zero=False)
    source = requirement if agent_requirement is None else agent_requirement
    allocations = candidate_set(source, None, top_k, max_candidates=max_candidates)
    total = int(round(profile_fraction * setting.budget_tokens))
    if total < len(allocations):
        raise ValueError(f"profile_fraction={profile_fraction} gives {total} profiling tokens, fewer than the {len(allocations)} profiling runs")
    step_tokens = setting.budget_tokens / setting.num_steps
    kwargs = {**{key: value for key, value in setting.env_kwargs.items() if key != "task"}, "capabilities": list(setting.capabilities),
              **profiling_kwargs(setting.env_id)}
    envs = {}
    runs = []
    try:
        # the bar shows only when profiling takes more than a few seconds (real distillation, a first compile)
        pairs = tqdm(list(zip(allocations, contract.step_tokens(total, len(allocations)).tolist())), desc="profiling runs", unit="run", delay=3, leave=False)
        for allocation, tokens in pairs:
            if tokens not in envs:
                envs[tokens] = make_env(setting.env_id, "simplex", None, tokens, 1, kwargs)
            env = envs[tokens]
            observation, _ = env.reset(seed=int(rng.integers(2**31)), options={"requirement": requirement})
            _, _, _, _, info = env.step(allocation)
            ratio = step_tokens / tokens
            base = env.unwrapped
            reward = ratio * (info["gain"] - base.beta * info["spillover"]) - base.cost_weight / setting.num_steps
            start = {key: np.asarray(value, dtype=np.float64) for key, value in observation.items()}
            runs.append(ProfilingRun(start, np.asarray(allocation, dtype=np.float64), tokens, ratio * np.asarray(info["delta_profile"], dtype=np.float64), float(reward)))
    finally:
        for env in envs.values():
            env.close()
    return runs


def fit_transfer(allocations: np.ndarray, changes: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge fit of ``ds_t ~ A^T w_t``: the transfer matrix ``A`` [K trained, K measured].

    ``allocations`` [N, K] and ``changes`` [N, K] (measured profile changes); ``A = (W^T W + ridge I)^-1 W^T dS``.
    """
    w, ds = np.asarray(allocations, dtype=np.float64), np.asarray(changes, dtype=np.float64)
    return np.linalg.solve(w.T @ w + ridge * np.eye(w.shape[1]), w.T @ ds)
