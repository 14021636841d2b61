"""The agent interface every read-env agent implements, and the adapter that makes an SB3 model an agent.

An agent plays one episode at a time::

    agent.reset(observation, info)            # start of an episode (first observation)
    allocation = agent.act(observation)       # [K] on the simplex (or env action for logits agents)
    agent.observe(observation, action, reward, next_observation, info)   # after env.step
    agent.save(path); agent.load(path)

Action space convention: agents act in *simplex space* (``action_mode = "simplex"``): ``act`` returns the
allocation ``w`` [K] itself, and the runner makes the environment with ``action_mode="simplex"``. An agent
whose ``action_mode`` is ``"logits"`` (an SB3 policy trained on the default logits environment) returns the
env's logit action in [-1, 1]^K and the runner makes the environment with ``action_mode="logits"``.

Subclasses implement ``begin``, ``policy`` and ``update``; the public methods validate every observation
against the environment the agent was built for (:class:`Setting`) and raise ``ValueError`` naming the
mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import read_env  # noqa: F401  (registers the environment ids)
from read_env import contract
from read_env.capabilities import PAPER_CAPABILITIES
from read_env.registration import DEFAULT_ENV_ID, resolve_episode

Observation = Mapping[str, np.ndarray]
OBS_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Setting:
    """What an agent is built for: the environment id and its arguments, capabilities, budget and steps.

    ``env_kwargs`` holds the remaining environment arguments (``world``, ``world_seed``, ``noise``, ``beta``,
    ...); agents that need a model of the environment (the oracle, the grid search's profiling runs) use
    them, the others only use ``capabilities`` (K) and ``num_steps``. ``num_steps`` and ``budget_tokens``
    (tokens) left ``None`` become the environment's own (:func:`read_env.registration.resolve_episode`).
    """

    capabilities: tuple[str, ...] = PAPER_CAPABILITIES
    num_steps: int | None = None
    budget_tokens: int | None = None
    env_id: str = DEFAULT_ENV_ID
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = None if self.budget_tokens is None else [self.budget_tokens]
        budgets, num_steps = resolve_episode(self.env_id, self.env_kwargs, given, self.num_steps)
        object.__setattr__(self, "num_steps", num_steps)
        object.__setattr__(self, "budget_tokens", budgets[0])

    @property
    def num_capabilities(self) -> int:
        return len(self.capabilities)

    @classmethod
    def from_env(cls, env: Any, env_id: str | None = None, env_kwargs: Mapping[str, Any] | None = None) -> Setting:
        """The setting of a made environment (reads its public ``capabilities``, ``num_steps``, ``budget_tokens``)."""
        base = env.unwrapped
        env_id = env_id or (env.spec.id if getattr(env, "spec", None) is not None else DEFAULT_ENV_ID)
        return cls(tuple(base.capabilities), int(base.num_steps), int(base.budget_tokens), env_id, dict(env_kwargs or {}))


def check_observation(observation: object, setting: Setting) -> dict[str, np.ndarray]:
    """``observation`` as a dict of float64 arrays, or ``ValueError`` saying how it differs from ``setting``'s env."""
    space = contract.observation_space(setting.num_capabilities)
    where = f"the environment this agent was built for ({setting.env_id}, K={setting.num_capabilities})"
    if not isinstance(observation, Mapping):
        raise ValueError(f"observation must be a dict with keys {sorted(space.spaces)} as returned by {where}, got {type(observation).__name__}")
    keys, expected = set(observation), set(space.spaces)
    if keys != expected:
        raise ValueError(f"observation keys {sorted(keys)} do not match {where}: expected {sorted(expected)}")
    out = {}
    for key, box in space.spaces.items():
        value = np.asarray(observation[key])
        if value.dtype.kind not in "fiu":
            raise ValueError(f"observation[{key!r}] must be numeric, got dtype {value.dtype}")
        if value.shape != box.shape:
            raise ValueError(f"observation[{key!r}] has shape {value.shape}, but {where} gives shape {box.shape}")
        value = value.astype(np.float64)
        if not np.isfinite(value).all():
            raise ValueError(f"observation[{key!r}] must be finite, got {value.tolist()}")
        if (value < box.low - OBS_TOLERANCE).any() or (value > box.high + OBS_TOLERANCE).any():
            raise ValueError(f"observation[{key!r}] = {value.tolist()} lies outside [{box.low.min()}, {box.high.max()}] of {where}")
        out[key] = value
    return out


class Agent:
    """Base class of every agent: validation, seeding, save/load; subclasses implement the algorithm.

    Args:
        setting: the environment the agent is built for.
        seed: seeds the agent's own generator ``self.rng`` (exploration, bootstraps, initialization).
    """

    name: str = "agent"
    action_mode: str = "simplex"

    def __init__(self, setting: Setting, seed: int | None = None) -> None:
        self.setting = setting
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.t = 0  # steps taken in the current episode
        self.name = type(self).name  # an instance's own (the registry names each agent it builds)

    # ------------------------------------------------------------------------------------ public API
    def reset(self, observation: Observation, info: Mapping[str, Any] | None = None) -> None:
        """Start an episode from its first observation (and the reset info)."""
        self.t = 0
        self.begin(self.check_observation(observation), dict(info or {}))

    def act(self, observation: Observation) -> np.ndarray:
        """The allocation [K] (simplex agents) or env action [K] (logits agents) for ``observation``."""
        action = np.asarray(self.policy(self.check_observation(observation)), dtype=np.float64)
        if self.action_mode == "simplex":
            action = np.maximum(action, 0.0)
            action = action / action.sum()
        return action

    def observe(self, observation: Observation, action: np.ndarray, reward: float, next_observation: Observation, info: Mapping[str, Any]) -> None:
        """Learn from one transition (``info`` is the env's step info)."""
        self.update(self.check_observation(observation), np.asarray(action, dtype=np.float64), float(reward), self.check_observation(next_observation), dict(info))
        self.t += 1

    def report(self) -> dict[str, Any]:
        """Per-episode facts worth recording (for instance the grid search's profiling tokens)."""
        return {}

    def save(self, path: str | Path) -> None:
        """Write the whole agent state (parameters, buffers, generator state) to ``path``, an ``.npz`` file read
        without pickle (:mod:`agents.saving`); ``TypeError`` naming a field of a type that file cannot hold."""
        from agents.saving import write_agent

        write_agent(self, path)

    def load(self, path: str | Path) -> Agent:
        """Restore the state written by :meth:`save` into this agent (of the same class); returns ``self``."""
        from agents.saving import read_agent

        loaded = read_agent(path)
        if type(loaded) is not type(self):
            raise ValueError(f"{path} holds a {type(loaded).__name__}, not a {type(self).__name__}")
        vars(self).clear()
        vars(self).update(vars(loaded))
        return self

    def check_observation(self, observation: object) -> dict[str, np.ndarray]:
        return check_observation(observation, self.setting)

    # ----------------------------------------------------------------------------- subclass hooks
    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        pass

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def update(self, observation: dict[str, np.ndarray], action: np.ndarray, reward: float, next_observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        pass


def load_agent(path: str | Path, *, allow_pickle: bool = False) -> Agent:
    """Rebuild any agent saved with :meth:`Agent.save` (its class, one of the registered agents', is recorded in the file).

    Reads no pickle and runs no code the file names; any other file is a ``ValueError`` saying why.
    ``allow_pickle=True`` also reads a pickle written by an older read-env's ``Agent.save``, which runs whatever
    code the pickle names: only for a file you trust, to convert it once (``load_agent(old, allow_pickle=True).save(new)``).
    """
    from agents.saving import read_agent

    return read_agent(path, allow_pickle=allow_pickle)


class SB3Agent(Agent):
    """Any SB3 model (``model.predict(obs, deterministic)``) as an agent; made automatically by :func:`as_agent`.

    The action mode follows the model's action space: ``Box(-1, 1)`` -> ``"logits"`` (a policy trained on the
    default environment), ``Box(0, 1)`` -> ``"simplex"`` (its output is clipped and renormalized).
    """

    name = "sb3"

    def __init__(self, model: Any, setting: Setting, seed: int | None = None, deterministic: bool = True) -> None:
        super().__init__(setting, seed)
        self.model = model
        self.deterministic = deterministic
        self.action_mode = sb3_action_mode(model)
        self.name = type(model).__name__.lower()

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        obs = {key: value.astype(np.float32) for key, value in observation.items()}
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)

    def save(self, path: str | Path) -> None:
        self.model.save(path)

    def load(self, path: str | Path) -> Agent:
        self.model = type(self.model).load(path)
        return self


def sb3_action_mode(model: Any) -> str:
    low = np.asarray(model.action_space.low)
    return "logits" if (low < 0).any() else "simplex"


def is_sb3_model(obj: object) -> bool:
    return not isinstance(obj, Agent) and hasattr(obj, "predict") and hasattr(obj, "action_space")


def as_agent(obj: object, setting: Setting, seed: int | None = None) -> Agent:
    """``obj`` if it is an :class:`Agent`; an SB3 model wrapped as :class:`SB3Agent`; else ``TypeError``."""
    if isinstance(obj, Agent):
        return obj
    if is_sb3_model(obj):
        return SB3Agent(obj, setting, seed)
    raise TypeError(f"{type(obj).__name__} is neither an agents.Agent nor an SB3 model (an object with predict and action_space)")


def make_env(env_id: str, action_mode: str, task: str | None, budget_tokens: int | None, num_steps: int | None,
             env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """``gym.make`` an environment id with the contract's episode keywords (``None`` keeps the id's own task, budget, steps)."""
    kwargs = dict(env_kwargs or {})
    if task is not None:
        kwargs["task"] = task
    for name, value in (("budget_tokens", budget_tokens), ("num_steps", num_steps)):
        if value is not None:
            kwargs[name] = int(value)
    return gym.make(env_id, action_mode=action_mode, **kwargs)
