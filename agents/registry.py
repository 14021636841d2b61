"""Agents by name: ``make_agent(name, setting, seed, **overrides)``; ``AGENTS`` lists the names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.policies.ado import AdoAgent
from agents.policies.aioli import AioliAgent
from agents.policies.bandit import PUBLIC_CODE, ReadBandit
from agents.base import Agent, Setting
from agents.policies.baselines import RandomAgent, SingleCapabilityAgent, TaskStaticAgent, UniformAgent
from agents.policies.exp3 import Exp3Agent
from agents.policies.grid import GridSearchAgent
from agents.policies.linucb import LinUCBAgent
from agents.policies.lookahead import ReadLookahead
from agents.policies.oracle import OracleAgent
from agents.policies.schedules import ScheduleAgent
from agents.policies.skill_it import SkillItAgent
from agents.policies.tscl import TSCLAgent


@dataclass(frozen=True)
class RegisteredAgent:
    """A registered agent: calling it builds ``cls(setting, seed, **{**fixed, **overrides})`` and names it ``name``."""

    cls: type[Agent]
    name: str
    fixed: Mapping[str, Any]

    def __call__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> Agent:
        agent = self.cls(setting, seed, **{**self.fixed, **overrides})
        agent.name = self.name
        return agent


def _named(cls: type[Agent], name: str, **fixed: Any) -> RegisteredAgent:
    return RegisteredAgent(cls, name, fixed)


AGENTS: dict[str, RegisteredAgent] = {
    "uniform": _named(UniformAgent, "uniform"),
    "task_static": _named(TaskStaticAgent, "task_static"),
    "single": _named(SingleCapabilityAgent, "single"),
    "random": _named(RandomAgent, "random"),
    "read_bandit": _named(ReadBandit, "read_bandit"),
    "read_bandit_code": _named(ReadBandit, "read_bandit_code", **PUBLIC_CODE),
    "read_bandit_identifier": _named(ReadBandit, "read_bandit_identifier", requirement_source="identifier"),
    "greedy": _named(ReadBandit, "greedy", kappa0=0.0),
    "read_lookahead": _named(ReadLookahead, "read_lookahead"),
    "read_bandit_thompson": _named(ReadBandit, "read_bandit_thompson", selection="thompson", prior_scale=1.0),
    "grid": _named(GridSearchAgent, "grid"),
    "exp3": _named(Exp3Agent, "exp3"),
    "aioli": _named(AioliAgent, "aioli"),
    "linucb": _named(LinUCBAgent, "linucb"),
    "ado": _named(AdoAgent, "ado"),
    "tscl": _named(TSCLAgent, "tscl"),
    "skill_it": _named(SkillItAgent, "skill_it"),
    "oracle": _named(OracleAgent, "oracle"),
    "best_fixed": _named(OracleAgent, "best_fixed", fixed=True),
    "schedule_mixture": _named(ScheduleAgent, "schedule_mixture", family="mixture"),
    "schedule_blocks": _named(ScheduleAgent, "schedule_blocks", family="blocks"),
    "schedule_phases": _named(ScheduleAgent, "schedule_phases", family="phases"),
}
DEFAULT_AGENTS = ("uniform", "task_static", "single", "random", "greedy", "grid", "exp3", "aioli", "linucb", "ado", "tscl", "skill_it", "read_bandit",
                  "read_lookahead", "oracle")


MODEL_PREFIXES = ("ppo:", "sb3:", "ppo_jax:")
"""Agent names that load a saved policy: ``ppo:PATH`` and ``sb3:ALGO:PATH`` (Stable-Baselines3), ``ppo_jax:PATH``."""


def is_known_agent(name: str) -> bool:
    """Whether :func:`make_agent` knows ``name``: a registered agent or a saved policy (:data:`MODEL_PREFIXES`)."""
    return name in AGENTS or name.startswith(MODEL_PREFIXES)


def make_agent(name: str, setting: Setting, seed: int | None = None, **overrides: Any) -> Agent:
    """Build a registered agent, or load an SB3 model from ``"ppo:path/to/model.zip"`` or a JAX PPO network
    from ``"ppo_jax:path/to/model.npz"`` (needs ``pip install 'read-env[jax]'``)."""
    if name.startswith("ppo_jax:"):
        from agents.policies.ppo_jax import load_agent

        return load_agent(name.partition(":")[2], setting, seed)
    if name.startswith(("ppo:", "sb3:")):
        from agents.policies.ppo import load_sb3_agent

        return load_sb3_agent(name.partition(":")[2], setting, seed)
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known: {sorted(AGENTS)}, 'ppo:PATH.zip' or 'ppo_jax:PATH.npz'")
    return AGENTS[name](setting, seed, **overrides)
