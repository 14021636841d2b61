"""``ReAD-Surrogate-v0``, ``-v1`` and ``-v2`` as gymnax environments: pure ``reset(key, params)`` and ``step(key, state,
action, params)``, ``jit``- and ``vmap``-able, the world and the task in ``params`` so a batch may mix them.

Everything is the numpy environments' (:class:`~read_env.surrogate.env.SurrogateEnv`,
:class:`~read_env.surrogate.path_dependent_env.PathSurrogateEnv`, v2 with its ``V2_OPTIONS``): the dynamics
(:mod:`read_env.jax.world`), the contract's action map, budget, reward (:mod:`read_env.contract`) and
observation, the utility and requirement of each family (:mod:`read_env.jax.utility`; v2's shortfalls from the
episode world's teacher), v2's per-episode probe bias. What differs, because a compiled program cannot raise
or hold strings:

* **Observation**: one float32 vector [4K + 1], the contract's ``Dict`` flattened as
  ``gymnasium.spaces.flatten`` does (keys in sorted order): ``budget_left`` [1], ``last_allocation`` [K],
  ``last_gain`` [K], ``profile`` [K], ``requirement`` [K]. :func:`observation_dict` splits it again.
* **Actions** the numpy forms reject (:func:`read_env.contract.allocation_from_action`: a non-finite entry, a logit
  outside [-1, 1] by more than ``LOGIT_SLACK``, a negative simplex entry, simplex entries not summing to 1
  within ``SIMPLEX_ATOL``) do not raise: the step runs on the clipped action (logits to [-1, 1]; simplex entries
  to >= 0, then renormalized, uniform if all are 0; a NaN entry stays NaN and so do the step's numbers) and its
  ``info["invalid_action"]`` is True (False on every step the numpy forms accept; the test is made in the
  action's precision, float32, where numpy sums simplex entries in float64). A caller that wants an error
  checks the flag outside ``jit``.
* **Noise** (training, probe and utility-reading noise, with ``noise=True``) is drawn from the step's key, v2's
  probe bias from the reset's key: the same distributions as the numpy environments', not the same numbers.
  With ``noise=False`` the two agree.
* **Random worlds and tasks** are drawn from the reset's key with the numpy priors (``World.random``,
  ``PathWorld.random``, ``Dirichlet(0.5)`` and the family's ``RANDOM_POWERS``).
* **Info** holds the contract's numbers (``allocation``, ``delta_profile``, ``gain``, ``spillover``, ``cost``,
  ``utility``, ``tokens_used``, ``tokens_used_total``, ``step``) and ``invalid_action``, but not the task's name; v1's and v2's
  ``final_utility`` and ``initial_utility`` are NaN until the last step.
* **Autoreset**: gymnax's (``Environment.step`` resets a finished episode in the same call; the last
  observation is ``info["final_observation"]``). Episodes terminate after ``num_steps`` steps, never truncate.

Static (the environment object): capabilities, ``num_steps``, action mode, ``top_k``, noise on or off,
whether each episode draws its own world, and ``probe_bias`` (v2: 0.5). Parameters (:class:`EnvParams`,
arrays): the world (or the prior it is drawn from), the task mixture, the budget, ``logit_temperature``,
``beta``, ``cost_weight`` and v1's and v2's ``utility_noise``. Budgets are int32 token counts (below 2^31).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from read_env.contract import LOGIT_SLACK
from read_env.jax import utility
from read_env.jax.world import World, WorldPrior, draw_world, from_numpy, prior_from_numpy, transition
from read_env.registration import SURROGATE_ID, SURROGATE_V1_ID, SURROGATE_V2_ID, V2_OPTIONS
from read_env.surrogate.env import SurrogateEnv as NumpySurrogateEnv
from read_env.surrogate.path_dependent_env import RANDOM_POWERS
from read_env.surrogate.path_dependent_env import PathSurrogateEnv as NumpyPathSurrogateEnv
from read_env.tasks import RANDOM_TASK, RANDOM_TASK_CONCENTRATION, SIMPLEX_ATOL, resolve_requirement

OBSERVATION_KEYS = ("budget_left", "last_allocation", "last_gain", "profile", "requirement")
"""The observation's blocks, in the order of the flat vector (``gymnasium.spaces.flatten``'s: sorted keys)."""
MAX_BUDGET_TOKENS = 2**31 - 1

if RANDOM_TASK_CONCENTRATION != 0.5:  # _random_weights draws Dirichlet(1/2) as normalized squared normals
    raise ImportError("read_env.jax draws random tasks from Dirichlet(0.5); tasks.RANDOM_TASK_CONCENTRATION changed")


@struct.dataclass
class EnvParams:
    """An environment's arrays: ``world`` (the episode's world; unused when each episode draws one), ``prior``
    (the calibration drawn worlds are perturbed from), the task mixture (``task_weights`` [T, K] and
    ``task_powers`` [T], one row drawn uniformly per episode, or with probability ``random_task_share`` a random
    task instead), ``budget_tokens`` (int32), and the contract's ``logit_temperature``, ``beta``,
    ``cost_weight``, with v1's and v2's ``utility_noise``."""

    world: World
    prior: WorldPrior
    task_weights: jax.Array
    task_powers: jax.Array
    random_task_share: jax.Array
    budget_tokens: jax.Array
    logit_temperature: jax.Array
    beta: jax.Array
    cost_weight: jax.Array
    utility_noise: jax.Array


@struct.dataclass
class EnvState(environment.EnvState):
    """An episode: ``time`` (steps taken), ``world`` (drawn for the episode, or ``None``: ``params.world``), the
    utility's ``weights`` [K] and ``power``, the observed ``requirement`` and its top-k part ``essential_weight``
    [K], the ``dynamics`` state [2K] (exposures, repaid harm), ``true_profile`` and measured ``profile`` [K],
    the last ``allocation`` and ``delta`` [K], ``tokens_used_total`` (int32), and ``probe_bias`` [K] (the
    episode's probe-suite bias ``b``, standard normal; ``None`` without one: noise off or ``probe_bias`` 0)."""

    world: World | None
    weights: jax.Array
    power: jax.Array
    requirement: jax.Array
    essential_weight: jax.Array
    dynamics: jax.Array
    true_profile: jax.Array
    profile: jax.Array
    allocation: jax.Array
    delta: jax.Array
    tokens_used_total: jax.Array
    probe_bias: jax.Array | None


class SurrogateEnv(environment.Environment[EnvState, EnvParams]):
    """``ReAD-Surrogate-v0`` in JAX (see the module docstring); build it with :func:`read_env.jax.make`.

    A later version subclasses this one and overrides the class attributes and the utility hooks, as
    :class:`PathSurrogateEnv` does for v1 and :class:`ShortfallSurrogateEnv` for v2.
    """

    env_id = SURROGATE_ID
    numpy_class: type[NumpySurrogateEnv] = NumpySurrogateEnv
    numpy_options: ClassVar[dict[str, Any]] = {}
    """The numpy id's registered options (``gym.make``'s kwargs before the caller's)."""
    utility_family = "scores"
    """The utility family of :mod:`read_env.utility` (v0's linear utility is both families' power 1)."""
    path_terms = False
    """Whether the dynamics have v1's prerequisites and repair (a drawn world then draws them too)."""

    def __init__(
        self, capabilities: Sequence[str], num_steps: int, action_mode: str, top_k: int, noise: bool, draws_world: bool, params: EnvParams,
        probe_bias: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.capabilities = tuple(capabilities)
        self.num_steps = int(num_steps)
        self.action_mode = action_mode
        self.top_k = int(top_k)
        self.noise = bool(noise)
        self.draws_world = bool(draws_world)
        self.probe_bias = float(probe_bias)
        self._default_params = params

    # ------------------------------------------------------------------------------ version hooks (v0)
    def task_utility(self, true_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
        """The task utility of a true profile [K] (``teacher`` [K]: the world's): linear, ``weights . s``, in v0."""
        return weights @ true_profile

    def observed_requirement(self, start_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
        """The requirement [K] the observation shows: the utility weights in v0."""
        return weights

    def random_power(self, key: jax.Array) -> jax.Array:
        """The utility power of a random task: 1 (linear) in v0."""
        return jnp.float32(1.0)

    def read_utility(self, key: jax.Array, utility_value: jax.Array, params: EnvParams) -> jax.Array:
        """The utility the info reports: the true one in v0."""
        return utility_value

    # -------------------------------------------------------------------------------------- gymnax API
    @property
    def name(self) -> str:
        return self.env_id

    @property
    def default_params(self) -> EnvParams:
        return self._default_params

    @property
    def num_actions(self) -> int:
        return len(self.capabilities)

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        """``Box(-1, 1, (K,))`` for logits, ``Box(0, 1, (K,))`` for simplex allocations."""
        return spaces.Box(-1.0 if self.action_mode == "logits" else 0.0, 1.0, (len(self.capabilities),), jnp.float32)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        """``Box`` [4K + 1]: the contract's bounds, flattened (see ``OBSERVATION_KEYS``)."""
        k = len(self.capabilities)
        low = np.concatenate([np.zeros(1 + k), -np.ones(k), np.zeros(2 * k)]).astype(np.float32)
        return spaces.Box(jnp.asarray(low), jnp.ones(4 * k + 1, jnp.float32), (4 * k + 1,), jnp.float32)

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        task_key, world_key, probe_key = jax.random.split(key, 3)
        weights, power = self._draw_task(task_key, params)
        world = draw_world(world_key, params.prior, self.path_terms) if self.draws_world else params.world
        requirement = self.observed_requirement(world.student, weights, power, world.teacher)
        bias, probe_key = self._draw_probe_bias(probe_key)
        k = len(self.capabilities)
        zeros = jnp.zeros(k, jnp.float32)
        state = EnvState(
            time=jnp.int32(0),
            world=world if self.draws_world else None,
            weights=weights,
            power=power,
            requirement=requirement,
            essential_weight=requirement * essential_mask(requirement, self.top_k),
            dynamics=jnp.zeros(2 * k, jnp.float32),
            true_profile=world.student,  # the profile of no exposure: s0 + sigma(0)
            profile=self._measure(probe_key, world, world.student, bias),
            allocation=zeros,
            delta=zeros,
            tokens_used_total=jnp.int32(0),
            probe_bias=bias,
        )
        return self.observation(state, params), state

    def step_env(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        train_key, probe_key, reading_key = jax.random.split(key, 3)
        world = state.world if self.draws_world else params.world
        allocation = self.allocation(action, params)
        tokens = step_tokens(params.budget_tokens, self.num_steps, state.time)
        train_noise = jax.random.normal(train_key, allocation.shape) if self.noise else None
        dynamics, true_profile = transition(world, state.dynamics, tokens.astype(jnp.float32), allocation, train_noise)
        profile = self._measure(probe_key, world, true_profile, state.probe_bias)
        delta = profile - state.profile
        gain = state.requirement @ delta
        spill = state.essential_weight @ jnp.maximum(0.0, -delta)
        cost = tokens / params.budget_tokens
        reward = gain - params.beta * spill - params.cost_weight * cost
        utility_value = self.task_utility(true_profile, state.weights, state.power, world.teacher)
        state = state.replace(
            time=state.time + 1, dynamics=dynamics, true_profile=true_profile, profile=profile, allocation=allocation, delta=delta,
            tokens_used_total=state.tokens_used_total + tokens,
        )  # fmt: skip
        terminated = state.time >= self.num_steps
        info = {
            "allocation": allocation, "delta_profile": delta, "gain": gain, "spillover": spill, "cost": cost,
            "utility": self.read_utility(reading_key, utility_value, params), "tokens_used": tokens,
            "tokens_used_total": state.tokens_used_total, "step": state.time, "invalid_action": self.invalid_action(action),
            **self._final_report(terminated, utility_value, world, state),
        }  # fmt: skip
        return self.observation(state, params), state, reward, terminated, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Never: episodes end when the budget is spent (``terminated``)."""
        return jnp.bool_(False)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= self.num_steps

    # --------------------------------------------------------------------------------------- the parts
    def allocation(self, action: jax.Array, params: EnvParams) -> jax.Array:
        """The contract's allocation [K] of an action [K] (invalid actions clipped, see the module docstring)."""
        if self.action_mode == "logits":
            return jax.nn.softmax(jnp.clip(action, -1.0, 1.0) / params.logit_temperature)
        weights = jnp.maximum(action, 0.0)
        total = weights.sum()
        return jnp.where(total > 0, weights / jnp.where(total > 0, total, 1.0), 1.0 / weights.shape[-1])

    def invalid_action(self, action: jax.Array) -> jax.Array:
        """Whether the numpy forms would reject ``action`` [K] (bool; see the module docstring)."""
        if self.action_mode == "logits":
            return ~(jnp.abs(action) <= 1.0 + LOGIT_SLACK).all()  # NaN compares False
        return ~(jnp.isfinite(action).all() & (action >= 0.0).all() & (jnp.abs(action.sum() - 1.0) <= SIMPLEX_ATOL))

    def observation(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The flat observation [4K + 1] (float32, ``OBSERVATION_KEYS`` order)."""
        budget_left = 1.0 - state.tokens_used_total / params.budget_tokens
        blocks = (budget_left[None], state.allocation, state.delta, state.profile, state.requirement)
        return jnp.concatenate([jnp.asarray(block, jnp.float32) for block in blocks])

    def _measure(self, key: jax.Array, world: World, true_profile: jax.Array, bias: jax.Array | None) -> jax.Array:
        """A probe reading of ``true_profile`` [K]: ``clip(s + probe_noise * xi, 0, 1)``, ``xi ~ N(0, 1)`` [K] with
        the episode's ``bias`` [K] mixed in, ``sqrt(1 - rho) * xi + sqrt(rho) * bias`` (``rho = probe_bias``;
        ``None``: no bias); the true profile with noise off."""
        if not self.noise:
            return true_profile
        noise = jax.random.normal(key, true_profile.shape)
        if bias is not None:
            noise = np.sqrt(1.0 - self.probe_bias) * noise + np.sqrt(self.probe_bias) * bias
        return jnp.clip(true_profile + world.probe_noise * noise, 0.0, 1.0)

    def _draw_probe_bias(self, key: jax.Array) -> tuple[jax.Array | None, jax.Array]:
        """(The episode's probe-suite bias ``b`` [K], standard normal, the key left for the first reading) from
        ``key``; ``(None, key)``, nothing drawn, with noise off or ``probe_bias`` 0 (so v0's and v1's draws are unchanged)."""
        if not (self.noise and self.probe_bias > 0.0):
            return None, key
        bias_key, key = jax.random.split(key)
        return jax.random.normal(bias_key, (len(self.capabilities),)), key

    def _draw_task(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, jax.Array]:
        """The episode's utility (weights [K], power): a uniform row of the task table, or a random task."""
        pick_key, row_key, weights_key, power_key = jax.random.split(key, 4)
        row = jax.random.randint(row_key, (), 0, params.task_weights.shape[0])
        squares = jnp.square(jax.random.normal(weights_key, (len(self.capabilities),)))  # Gamma(1/2) = Z^2 / 2
        is_random = jax.random.uniform(pick_key) < params.random_task_share
        weights = jnp.where(is_random, squares / squares.sum(), params.task_weights[row])
        return weights, jnp.where(is_random, self.random_power(power_key), params.task_powers[row])

    def _final_report(self, terminated: jax.Array, utility_value: jax.Array, world: World, state: EnvState) -> dict[str, jax.Array]:
        """Extra info of the last step (none in v0)."""
        return {}


class PathSurrogateEnv(SurrogateEnv):
    """``ReAD-Surrogate-v1`` in JAX: v0's environment with the path-dependent dynamics, the power-mean utility,
    its linearized requirement, noisy utility readings and the final report (see
    :mod:`read_env.surrogate.path_dependent_env`)."""

    env_id = SURROGATE_V1_ID
    numpy_class = NumpyPathSurrogateEnv
    path_terms = True

    def task_utility(self, true_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
        return utility.power_mean(true_profile, weights, power)

    def observed_requirement(self, start_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
        return utility.requirement_from_utility(start_profile, weights, power)

    def random_power(self, key: jax.Array) -> jax.Array:
        """One of the family's ``RANDOM_POWERS``, uniformly."""
        powers = RANDOM_POWERS[self.utility_family]
        return jnp.asarray(powers, jnp.float32)[jax.random.randint(key, (), 0, len(powers))]

    def read_utility(self, key: jax.Array, utility_value: jax.Array, params: EnvParams) -> jax.Array:
        """A dev-split reading ``clip(F + utility_noise * N(0, 1), 0, 1)`` (the true value with noise off)."""
        if not self.noise:
            return utility_value
        return jnp.clip(utility_value + params.utility_noise * jax.random.normal(key), 0.0, 1.0)

    def _final_report(self, terminated: jax.Array, utility_value: jax.Array, world: World, state: EnvState) -> dict[str, jax.Array]:
        """The noise-free ``final_utility`` and ``initial_utility`` on the last step, NaN before."""
        initial = self.task_utility(world.student, state.weights, state.power, world.teacher)
        return {"final_utility": jnp.where(terminated, utility_value, jnp.nan), "initial_utility": jnp.where(terminated, initial, jnp.nan)}


class ShortfallSurrogateEnv(PathSurrogateEnv):
    """``ReAD-Surrogate-v2`` in JAX: v1's environment with the shortfall utility ``a . t - M_q(t - s; a)`` (``t``
    the episode world's teacher), its requirement, and, with noise on, the per-episode probe bias (``probe_bias``
    0.5 unless the caller sets it; see :mod:`read_env.surrogate.path_dependent_env`)."""

    env_id = SURROGATE_V2_ID
    numpy_options = V2_OPTIONS
    utility_family = "shortfall"

    def task_utility(self, true_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
        return utility.shortfall_utility(true_profile, weights, power, teacher)

    def observed_requirement(self, start_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
        return utility.shortfall_requirement(start_profile, weights, power, teacher)


ENVIRONMENTS: dict[str, type[SurrogateEnv]] = {cls.env_id: cls for cls in (SurrogateEnv, PathSurrogateEnv, ShortfallSurrogateEnv)}
"""The JAX environments by id; a later version adds its class here."""


def essential_mask(requirement: jax.Array, top_k: int) -> jax.Array:
    """Boolean [K]: the ``top_k`` largest requirement weights, ties by lower index (``contract.essential_mask``);
    ranks by pairwise comparison, as :func:`read_env.jax.utility.project_to_simplex` orders."""
    return utility.descending_order(requirement).sum(axis=-1) <= top_k


def step_tokens(budget_tokens: jax.Array, num_steps: int, step: jax.Array) -> jax.Array:
    """Tokens (int32) of step ``step``: ``budget // num_steps``, one more for the first ``budget % num_steps`` steps."""
    return budget_tokens // num_steps + (step < budget_tokens % num_steps).astype(jnp.int32)


def observation_dict(observation: Any, num_capabilities: int) -> dict[str, Any]:
    """The contract's ``Dict`` observation from flat observations [..., 4K + 1] (jax or numpy arrays)."""
    k = num_capabilities
    if observation.shape[-1] != 4 * k + 1:
        raise ValueError(f"a flat observation for K={k} has {4 * k + 1} entries, got shape {observation.shape}")
    bounds = np.cumsum([0, 1, k, k, k, k])
    return {key: observation[..., start:stop] for key, start, stop in zip(OBSERVATION_KEYS, bounds[:-1], bounds[1:])}


def make(env_id: str, *, task: str | Sequence[str] = "math_word_problems", requirement: Any = None, **kwargs: Any) -> tuple[SurrogateEnv, EnvParams]:
    """The JAX form of ``gym.make(env_id, **kwargs)``: ``(env, params)``, as ``gymnax.make`` returns.

    Args:
        env_id: ``"ReAD-Surrogate-v0"``, ``"-v1"`` or ``"-v2"`` (``ENVIRONMENTS``).
        task: a task name, ``"random"``, or a sequence of them (each episode draws one uniformly).
        requirement: a custom requirement (vector [K] or ``{capability: weight}``): a linear task; wins over ``task``.
        **kwargs: the numpy environment's arguments (``world``, ``world_seed``, ``noise``, ``capabilities``,
            ``budget_tokens``, ``num_steps``, ``action_mode``, ``logit_temperature``, ``beta``, ``top_k``,
            ``cost_weight``, v1's and v2's ``utility_noise`` and ``probe_bias``), checked by it: the same errors
            for the same bad input. ``utility_family`` is the id's: another family is refused.
    """
    if env_id not in ENVIRONMENTS:
        raise ValueError(f"unknown JAX environment {env_id!r}; known: {sorted(ENVIRONMENTS)}")
    cls = ENVIRONMENTS[env_id]
    tasks = [task] if isinstance(task, str) else list(task)
    if not tasks:
        raise ValueError("task must name at least one task")
    reference = cls.numpy_class(task=tasks[0], **{**cls.numpy_options, **kwargs})  # checks every argument, resolves the world
    if reference.utility_family != cls.utility_family:
        others = [other for other, other_cls in ENVIRONMENTS.items() if other_cls.utility_family == reference.utility_family]
        raise ValueError(f"{env_id} in JAX has the {cls.utility_family!r} utility family, not utility_family={reference.utility_family!r} (use {' or '.join(others)})")
    if reference.budget_tokens > MAX_BUDGET_TOKENS:
        raise ValueError(f"budget_tokens={reference.budget_tokens} exceeds the JAX form's int32 budget ({MAX_BUDGET_TOKENS})")
    capabilities = reference.capabilities
    named = [resolve_requirement(None, requirement, capabilities)] if requirement is not None else [
        resolve_requirement(name, None, capabilities) for name in tasks if name != RANDOM_TASK
    ]  # fmt: skip
    share = 0.0 if requirement is not None else tasks.count(RANDOM_TASK) / len(tasks)
    weights = np.array([vector for _, vector in named]) if named else np.full((1, len(capabilities)), 1.0 / len(capabilities))
    powers = np.array([reference.draw_power(None, name) for name, _ in named] or [1.0])
    world = reference._fixed_world
    base = world if world is not None else reference.world_class.paper().subset(capabilities)
    params = EnvParams(
        world=from_numpy(base),
        prior=prior_from_numpy(base),
        task_weights=jnp.asarray(weights, jnp.float32),
        task_powers=jnp.asarray(powers, jnp.float32),
        random_task_share=jnp.float32(share),
        budget_tokens=jnp.int32(reference.budget_tokens),
        logit_temperature=jnp.float32(reference.logit_temperature),
        beta=jnp.float32(reference.beta),
        cost_weight=jnp.float32(reference.cost_weight),
        utility_noise=jnp.float32(getattr(reference, "utility_noise", 0.0)),
    )
    probe_bias = getattr(reference, "probe_bias", 0.0)
    env = cls(capabilities, reference.num_steps, reference.action_mode, reference.top_k, reference.noise, world is None, params, probe_bias)
    return env, params


def stack_params(params: Sequence[EnvParams]) -> EnvParams:
    """One :class:`EnvParams` with a leading batch axis [N, ...] (``vmap(..., in_axes=(0, ..., 0))``): N worlds,
    tasks or budgets side by side. All must share K and the number of task rows."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
