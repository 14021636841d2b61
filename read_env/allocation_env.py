"""``AllocationEnv``: the Gymnasium environment contract; a backend (surrogate or real) supplies the dynamics.

A backend subclass implements these hooks:

* ``_prepare(options) -> prepared``: check the reset options (raise before any state changes) and
  return what ``_begin`` needs; the base version checks the task and requirement options.
* ``_begin(prepared) -> (profile, utility)``: start an episode of the task in ``task_name`` and ``requirement``
  (its weights), fixing the requirement the observation shows with ``_set_task`` (the weights themselves, or
  what the backend derives from them); return the measured start profile [K] in [0, 1] and the task utility
  of the student.
* ``_distill(allocation, tokens) -> (profile, utility, extra_info)``: spend ``tokens`` with ``allocation``
  [K] and return the measured profile [K] in [0, 1], the task utility of the student now, and extra info.
  A compiled backend that maps the action and prices the step in the same call as its dynamics overrides
  ``_transition(action, tokens) -> Transition`` instead (the default maps the action and calls ``_distill``).
* ``_commit(result) -> result`` (optional): persist a booked step (``ReAD-v0``'s history); may turn it into a
  truncated one.

Everything else (spaces, action map, budget, reward, info, rendering) lives here, and :meth:`AllocationEnv.step`
is the one step of every single ReAD environment, so every one keeps one contract; see :mod:`read_env.contract`
for the formulas.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, SupportsFloat

import gymnasium as gym
import numpy as np

from read_env import contract
from read_env.capabilities import PAPER_CAPABILITIES, resolve_capabilities
from read_env.tasks import RANDOM_TASK, resolve_requirement

RESET_OPTIONS = ("task", "requirement")
DEFAULT_BUDGET_TOKENS = 20_000_000
DEFAULT_NUM_STEPS = 20
StepResult = tuple[dict[str, np.ndarray], SupportsFloat, bool, bool, dict[str, Any]]
"""``step()``'s result: observation, reward, terminated, truncated, info."""


class Transition(NamedTuple):
    """What a backend's step did (:meth:`AllocationEnv._transition`): the executed ``allocation`` [K] (on the
    simplex), the measured ``profile`` [K] in [0, 1] after it, the reported task ``utility``, the backend's
    ``extra`` info (``extra["truncated"]``: it failed and changed nothing), and, from a backend that computes
    them with its dynamics, the measured change ``delta`` [K] and ``feedback`` ``(reward, gain, spillover,
    cost)`` of :func:`read_env.contract.step_feedback` (``None``: :meth:`AllocationEnv.step` computes them)."""

    allocation: np.ndarray
    profile: np.ndarray
    utility: float
    extra: dict[str, Any]
    delta: np.ndarray | None = None
    feedback: tuple[Any, ...] | None = None


@functools.cache
def keywords(cls: type) -> frozenset[str]:
    """The keyword arguments ``cls(...)`` takes: the named parameters of each ``__init__`` along the method
    resolution order, down to the first one without ``**kwargs`` (read once per class: every construction asks)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
            names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
            if all(p.kind is not p.VAR_KEYWORD for p in parameters):
                break
    return frozenset(names)


def check_keywords(cls: type, kwargs: Mapping[str, Any]) -> None:
    """``TypeError`` for a keyword that ``cls(...)`` does not take, naming the close ones (``gym.make(..., budget=...)``:
    did you mean ``budget_tokens``?)."""
    accepted = keywords(cls)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        named = [f"{name!r}" + "".join(f" (did you mean {close!r}?)" for close in difflib.get_close_matches(name, accepted, n=1)) for name in unknown]
        raise TypeError(f"{cls.__name__} takes no keyword {', '.join(named)}; its keywords: {', '.join(sorted(accepted))}")


class AllocationEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Allocate a token budget across capabilities, step by step, to maximise a task's utility.

    Observation (``Dict``, float32): ``profile`` [K] in [0, 1] (measured capability scores), ``requirement``
    [K] (the task's ``r_tau`` on the simplex), ``budget_left`` [1] (fraction of the budget not yet spent),
    ``last_allocation`` [K] and ``last_gain`` [K] in [-1, 1] (the previous step's allocation and measured
    profile change: the paper's record ``rho_t``; zeros after reset).

    Action: see :mod:`read_env.contract` (``action_mode`` "logits" or "simplex").

    Reward: ``r . ds - beta * spill - cost_weight * cost`` (see :mod:`read_env.contract`).

    Episode end: ``terminated`` once the whole budget is spent (after ``num_steps`` steps); never truncated
    by the contract. A backend may truncate on an unrecoverable failure (``extra["truncated"]``): that step
    spends nothing and changes no state (``tokens_used`` 0, reward 0), and ``step()`` raises until ``reset()``.

    Info after ``step``: ``allocation`` [K] (executed), ``delta_profile`` [K], ``gain``, ``spillover``,
    ``cost``, ``utility`` (task utility of the student now), ``tokens_used`` (this step),
    ``tokens_used_total``, ``step`` (steps taken), ``task``. After ``reset``: ``task``, ``utility``,
    ``tokens_used_total`` = 0, ``step`` = 0.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __new__(cls, *args: Any, **kwargs: Any) -> AllocationEnv:
        """Refuse a keyword that no constructor of ``cls`` takes before any work (:func:`check_keywords`)."""
        check_keywords(cls, kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        capabilities: Sequence[str] | None = None,
        task: str = "math_word_problems",
        budget_tokens: int = DEFAULT_BUDGET_TOKENS,
        num_steps: int = DEFAULT_NUM_STEPS,
        action_mode: str = "logits",
        logit_temperature: float = contract.DEFAULT_LOGIT_TEMPERATURE,
        beta: float = contract.DEFAULT_BETA,
        top_k: int = contract.DEFAULT_TOP_K,
        cost_weight: float = contract.DEFAULT_COST_WEIGHT,
        render_mode: str | None = None,
        known_capabilities: Sequence[str] = PAPER_CAPABILITIES,
    ) -> None:
        self.capabilities = resolve_capabilities(capabilities, known_capabilities)
        k = len(self.capabilities)
        contract.check_config(budget_tokens, num_steps, action_mode, logit_temperature, beta, top_k, cost_weight)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; supported: {self.metadata['render_modes']}")
        resolve_requirement(task, None, self.capabilities, np.random.default_rng(0))  # fail early on a bad task (a random one draws)
        self.task = task
        self.budget_tokens = int(budget_tokens)
        self.num_steps = int(num_steps)
        self.action_mode = action_mode
        self.logit_temperature = float(logit_temperature)
        self.beta = float(beta)
        self.top_k = int(top_k)
        self.cost_weight = float(cost_weight)
        self.render_mode = render_mode
        self.observation_space = contract.observation_space(k)
        self.action_space = contract.action_space(k, action_mode)
        self.step_tokens = contract.step_tokens(self.budget_tokens, self.num_steps)
        self._action_shape = (k,)
        self._zeros = np.zeros(k, dtype=np.float32)
        self.task_name = ""
        self.requirement = np.full(k, 1.0 / k)
        self._step = self.num_steps  # no episode yet: step() before reset() is refused
        self._truncated = False

    # --------------------------------------------------------------------------------- backend hooks
    def _prepare(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self._reset_options()))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; supported: {list(self._reset_options())}")
        task = options.get("task", self.task)
        if task != RANDOM_TASK or "requirement" in options:
            options["_requirement"] = resolve_requirement(task, options.get("requirement"), self.capabilities)  # draws nothing
        return options

    def _begin(self, prepared: dict[str, Any]) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def _distill(self, allocation: np.ndarray, tokens: int) -> tuple[np.ndarray, float, dict[str, Any]]:
        raise NotImplementedError

    def _reset_options(self) -> tuple[str, ...]:
        return RESET_OPTIONS

    # ----------------------------------------------------------------------------------- Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        prepared = self._prepare(dict(options or {}))  # raises on bad options before any state changes
        super().reset(seed=seed)
        task_name, requirement = prepared.get("_requirement") or resolve_requirement(RANDOM_TASK, None, self.capabilities, self.np_random)
        self.task_name, self.requirement = task_name, requirement  # _begin observes the requirement (_set_task), once
        self.profile, self.utility = self._begin(prepared)
        self.allocation = np.zeros(len(self.capabilities))
        self.delta = np.zeros(len(self.capabilities))
        self._step = 0
        self._truncated = False
        self.tokens_used_total = 0
        info = {"task": task_name, "utility": self.utility, "tokens_used_total": 0, "step": 0}
        return self._observation(), info

    def step(self, action: np.ndarray) -> StepResult:
        self._check_running()
        tokens = int(self.step_tokens[self._step])
        transition = self._transition(action, tokens)
        if transition.extra.get("truncated", False):
            return self._commit(self._truncated_step(transition.allocation, transition.extra))
        return self._commit(self._book(tokens, transition))

    def _transition(self, action: np.ndarray, tokens: int) -> Transition:
        """Spend ``tokens`` with ``action``: the contract's action map, then the backend's ``_distill``."""
        allocation = self.allocation_of(action)
        return Transition(allocation, *self._distill(allocation, tokens))

    def _commit(self, result: StepResult) -> StepResult:
        """Persist the step just booked and return its result (nothing to persist here)."""
        return result

    def allocation_of(self, action: np.ndarray) -> np.ndarray:
        """The allocation [C] (on the simplex) that :meth:`step` makes of ``action`` (``ValueError`` on a bad action)."""
        return contract.allocation_from_action(action, self.action_mode, self.logit_temperature, self._action_shape)

    def record_step(self, allocation: np.ndarray, tokens: int, profile: np.ndarray, utility: float, extra: dict[str, Any]) -> StepResult:
        """Book a step of ``allocation`` [C] that spent ``tokens`` and measured ``profile`` [C] and ``utility`` (with
        ``extra`` info), and return ``step()``'s result without ``_commit``: for a caller that distills outside the
        environment (:mod:`read_env.mini.batched`)."""
        return self._book(tokens, Transition(allocation, profile, utility, extra))

    def _book(self, tokens: int, transition: Transition) -> StepResult:
        """Book a transition that spent ``tokens``: its reward and info (the contract's, unless the backend computed
        them), the new state, and ``step()``'s result."""
        allocation, profile, utility, extra, delta, feedback = transition
        if feedback is None:
            delta = profile - self.profile
            feedback = contract.step_feedback(self.requirement, self._essential_weight, delta, tokens, self.budget_tokens, self.beta, self.cost_weight)
        return self._record_step(allocation, tokens, profile, delta, utility, feedback, extra)

    def _truncated_step(self, allocation: np.ndarray, extra: dict[str, Any]) -> StepResult:
        """``step()``'s result when the backend failed and rolled back (``extra["truncated"]``): nothing spent,
        nothing changed, reward 0."""
        delta = np.zeros(len(self.capabilities))
        feedback = contract.step_feedback(self.requirement, self._essential_weight, delta, 0, self.budget_tokens, self.beta, self.cost_weight)
        return self._record_step(allocation, 0, self.profile, delta, self.utility, feedback, extra)

    def _check_running(self) -> None:
        if self._step >= self.num_steps or self._truncated:
            raise RuntimeError("the episode is over (budget spent or truncated) or was never started: call reset() first")

    def _record_step(
        self, allocation: np.ndarray, tokens: int, profile: np.ndarray, delta: np.ndarray, utility: float, feedback: tuple[Any, ...], extra: dict[str, Any]
    ) -> StepResult:
        """Book a step's numbers (``feedback``: reward, gain, spillover, cost) and return ``step()``'s result."""
        reward, gain, spill, cost = feedback
        self._truncated = bool(extra.get("truncated", False))
        if not self._truncated:
            self.profile, self.allocation, self.delta, self.utility = profile, allocation, delta, utility
            self._step += 1
            self.tokens_used_total += tokens
        terminated = self._step == self.num_steps and not self._truncated
        info = contract.step_info(allocation, delta, float(gain), float(spill), cost, utility, tokens, self.tokens_used_total, self._step, self.task_name)
        if extra:
            info.update(extra)
        return self._observation(), float(reward), terminated, self._truncated, info

    def episode_state(self) -> dict[str, Any]:
        """The episode's booked state after the last step: ``profile``, ``allocation``, ``delta`` [C], ``utility``,
        ``step`` and ``tokens_used_total`` (the keys of a ``ReAD-v0`` history line that hold them)."""
        return {"profile": self.profile, "allocation": self.allocation, "delta": self.delta, "utility": self.utility, "step": self._step,
                "tokens_used_total": self.tokens_used_total}

    def restore_episode_state(self, state: Mapping[str, Any]) -> None:
        """Return to an :meth:`episode_state` (arrays may be given as lists)."""
        self.profile, self.allocation, self.delta = (np.array(state[key]) for key in ("profile", "allocation", "delta"))
        self.utility, self._step, self.tokens_used_total = state["utility"], state["step"], state["tokens_used_total"]

    def _set_task(self, task_name: str, requirement: np.ndarray) -> None:
        self.task_name, self.requirement = task_name, requirement
        self._essential_weight = requirement * contract.essential_mask(requirement, self.top_k)
        self._requirement32 = requirement.astype(np.float32)

    def _observation(self) -> dict[str, np.ndarray]:
        return self._observation_of(self.profile, self.allocation, self.delta, self.tokens_used_total)

    def _observation_of(self, profile: np.ndarray, allocation: np.ndarray, delta: np.ndarray,
                        tokens_used_total: int) -> dict[str, np.ndarray]:
        """The observation of the current task at a state: ``profile``, ``allocation``, ``delta`` [C], tokens used so far."""
        return {
            "profile": np.asarray(profile).astype(np.float32),
            "requirement": self._requirement32.copy(),
            "budget_left": np.array([1.0 - tokens_used_total / self.budget_tokens], dtype=np.float32),
            "last_allocation": np.asarray(allocation).astype(np.float32),
            "last_gain": np.asarray(delta).astype(np.float32),
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        width = max(len(name) for name in self.capabilities)
        lines = [
            f"task {self.task_name}  step {self._step}/{self.num_steps}  tokens {self.tokens_used_total:,}/{self.budget_tokens:,}  utility {self.utility:.4f}",
            f"{'capability':<{width}}  {'need':>5}  {'profile':>7}  {'change':>7}  {'alloc':>5}",
        ]
        for index, name in enumerate(self.capabilities):
            lines.append(
                f"{name:<{width}}  {self.requirement[index]:5.2f}  {self.profile[index]:7.4f}  {self.delta[index]:+7.4f}  {self.allocation[index]:5.2f}"
            )
        return "\n".join(lines)
