"""Agents for the ReAD environments: the ReAD bandit, PPO and the literature's baselines behind one interface.

Public API::

    from agents import Agent, Setting, make_agent, run_episode, AGENTS, load_agent
    episode, agent = run_episode(lambda setting: make_agent("read_bandit", setting, seed=0), task="math")

See :mod:`agents.base` for the interface and the action-mode convention, :mod:`agents.harness.compare` for the
comparison harness and :mod:`agents.cli` for the ``read-env`` command line.
"""

from agents.base import Agent, SB3Agent, Setting, as_agent, check_observation, load_agent
from agents.registry import AGENTS, DEFAULT_AGENTS, make_agent
from agents.harness.runner import Episode, run_episode

__all__ = ["AGENTS", "DEFAULT_AGENTS", "Agent", "Episode", "SB3Agent", "Setting", "as_agent", "check_observation", "load_agent", "make_agent", "run_episode"]
