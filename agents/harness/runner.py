"""Play an agent on any ReAD environment id (surrogate or real) through the public Gymnasium API only.

The runner makes the environment with ``action_mode`` equal to the agent's (``"simplex"`` for allocation
agents, ``"logits"`` for SB3 policies trained on the default environment), resets it with ``seed``, and
loops ``act -> env.step -> observe`` until the budget is spent. ``agent`` may be an :class:`Agent`, an SB3
model (wrapped automatically), or a factory ``Setting -> Agent`` (called once the environment exists).

When the reset resumes an interrupted episode (``info["resumed"]``: ``ReAD-v0`` and ``ReAD-Mini-v0`` with
``resume=True``), the agent first replays the episode's committed steps from the environment's history
(:meth:`~read_env.distill.env.DistillationEnv.replay`): it acts on each recorded observation and observes the
recorded result, so its state, and the episode, continue as if never interrupted. An agent whose replayed
action differs from the recorded allocation raises :class:`ResumeError` (the episode cannot be continued).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.base import Agent, Setting, as_agent, is_sb3_model, make_env, sb3_action_mode
from read_env.records import step_record
from read_env.registration import DEFAULT_ENV_ID

AgentLike = Agent | Callable[[Setting], Agent] | Any


class ResumeError(RuntimeError):
    """A resumed episode's recorded step is not what the agent does now (it is not deterministic under its seed)."""


@dataclass
class Episode:
    """One played episode. ``steps[t]`` holds the step's allocation, reward, gain, spillover, cost, utility,
    measured profile and delta profile (lists of floats), tokens."""

    agent: str
    task: str
    budget_tokens: int
    seed: int
    requirement: list[float]
    initial_profile: list[float]
    initial_utility: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def final_utility(self) -> float:
        """The noise-free final utility where the environment reports one (v1), else the last reading."""
        return self.steps[-1].get("final_utility", self.steps[-1]["utility"]) if self.steps else self.initial_utility

    @property
    def final_profile(self) -> list[float]:
        return self.steps[-1]["profile"] if self.steps else self.initial_profile


def run_episode(
    agent: AgentLike,
    env_id: str = DEFAULT_ENV_ID,
    task: str | None = "math_word_problems",
    budget_tokens: int | None = None,
    num_steps: int | None = None,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    reset_options: Mapping[str, Any] | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    agent_seed: int | None = None,
) -> tuple[Episode, Agent]:
    """Play one episode; returns the :class:`Episode` record and the (possibly wrapped or built) agent.

    ``task``, ``budget_tokens`` (tokens) and ``num_steps`` left ``None`` are the environment's own."""
    start = time.perf_counter()
    if isinstance(agent, Agent):
        mode = agent.action_mode
    elif is_sb3_model(agent):
        mode = sb3_action_mode(agent)
    else:
        mode = "simplex"
    env = make_env(env_id, mode, task, budget_tokens, num_steps, env_kwargs)
    setting = Setting.from_env(env, env_id, env_kwargs)
    if not isinstance(agent, Agent) and not is_sb3_model(agent):
        agent = agent(setting)
        if agent.action_mode != mode:
            env.close()
            env = make_env(env_id, agent.action_mode, task, budget_tokens, num_steps, env_kwargs)
    agent = as_agent(agent, setting, agent_seed)
    try:
        observation, info = env.reset(seed=seed, options=dict(reset_options or {}) or None)
        replayed = []
        if info.get("resumed"):
            observation, info, replayed = env.unwrapped.replay()
        agent.reset(observation, info)
        episode = Episode(agent.name, str(info.get("task", task)), setting.budget_tokens, int(seed),
                          observation["requirement"].astype(float).tolist(),
                          observation["profile"].astype(float).tolist(), float(info["utility"]))
        done = False
        while not done:
            action = agent.act(observation)
            env_action = action.astype(np.float32) if mode == "logits" else action
            if replayed:
                next_observation, reward, terminated, truncated, info = replayed.pop(0)
                allocation, recorded = env.unwrapped.allocation_of(env_action), np.asarray(info["allocation"])
                if not np.array_equal(allocation, recorded):
                    raise ResumeError(f"agent {agent.name} allocates {allocation.tolist()} at step {len(episode.steps) + 1} of the resumed "
                                      f"episode, which recorded {recorded.tolist()}: start it afresh (resume=False)")
            else:
                next_observation, reward, terminated, truncated, info = env.step(env_action)
            agent.observe(observation, action, float(reward), next_observation, info)
            row = {**step_record(info), "reward": float(reward), "profile": next_observation["profile"].astype(float).tolist()}
            if "probe_stderr" in info:  # real backends: the probe's binomial standard errors [K]
                row["probe_stderr"] = np.asarray(info["probe_stderr"], dtype=float).tolist()
            episode.steps.append(row)
            if on_step is not None:
                on_step(len(episode.steps), row)
            observation = next_observation
            done = terminated or truncated
            if truncated:  # the backend failed: the episode is incomplete
                episode.extra["truncated"] = str(info.get("error", "truncated by the environment"))
        if episode.steps and "initial_utility" in episode.steps[-1]:
            episode.initial_utility = episode.steps[-1]["initial_utility"]  # v1: noise-free, reported at the end
        episode.extra.update(agent.report())
    finally:
        env.close()
    episode.wall_time_s = time.perf_counter() - start
    return episode, agent
