"""``ReAD-Surrogate-v0``, ``-v1`` and ``-v2`` as gymnax environments: pure ``reset(key, params)`` and ``step(key, state,
action, params)``, ``jit``- and ``vmap``-able, the world and the task in ``params`` so a batch may mix them.

Everything is the numpy environments' (:class:`~read_env.surrogate.env.SurrogateEnv`,
:class:`~read_env.surrogate.path_dependent_env.PathSurrogateEnv`; each id's parts are its spec,
:data:`read_env.registration.SURROGATE_SPECS`, read here as by the numpy registration): the dynamics
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
  ``PathWorld.random``, ``Dirichlet(0.5)`` and the family's ``random_powers``).
* **Info** holds the contract's numbers (``allocation``, ``delta_profile``, ``gain``, ``spillover``, ``cost``,
  ``utility``, ``tokens_used``, ``tokens_used_total``, ``step``) and ``invalid_action``, but not the task's name; v1's and v2's
  ``final_utility`` and ``initial_utility`` are NaN until the last step.
* **Autoreset**: gymnax's (``Environment.step`` resets a finished episode in the same call; the last
  observation is ``info["final_observation"]``). Episodes terminate after ``num_steps`` steps, never truncate.

Static (the environment object): the id's spec with the caller's utility family and ``probe_bias`` (v2: 0.5),
capabilities, ``num_steps``, action mode, ``top_k``, noise on or off, and whether each episode draws its own world. Parameters (:class:`EnvParams`,
arrays): the world (or the prior it is drawn from), the task mixture, the budget, ``logit_temperature``,
``beta``, ``cost_weight`` and v1's and v2's ``utility_noise``. Budgets are int32 token counts (below 2^31).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from read_env import contract
from read_env.allocation_env import DEFAULT_BUDGET_TOKENS, DEFAULT_NUM_STEPS, check_keywords
from read_env.capabilities import resolve_capabilities
from read_env.contract import LOGIT_SLACK
from read_env.jax import utility
from read_env.jax.world import World, WorldPrior, draw_world, from_numpy, prior_from_numpy, transition
from read_env.registration import SURROGATE_SPECS
from read_env.specs import SurrogateSpec
from read_env.surrogate.env import SurrogateEnv as NumpySurrogateEnv
from read_env.surrogate.env import check_probe_options, fixed_world
from read_env.surrogate.path_dependent_env import DEFAULT_UTILITY_NOISE, PathSurrogateEnv
from read_env.surrogate.path_dependent_world import PathWorld
from read_env.surrogate.world import World as NumpyWorld
from read_env.tasks import RANDOM_TASK, RANDOM_TASK_CONCENTRATION, SIMPLEX_ATOL, resolve_requirement
from read_env.utility import UTILITIES, resolve_utility

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
    """A ReAD surrogate id in JAX (see the module docstring), assembled from its spec's parts
    (:class:`~read_env.registration.SurrogateSpec`): the dynamics (v0's calibrated world, or v1's and v2's
    path-dependent one with its noisy utility readings and final report), the utility family and the probe bias.
    Build it with :func:`read_env.jax.make`."""

    def __init__(
        self, env_id: str, spec: SurrogateSpec, capabilities: Sequence[str], num_steps: int, action_mode: str, top_k: int, noise: bool,
        draws_world: bool, params: EnvParams, reads_utility: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.env_id, self.spec = env_id, spec
        self.capabilities = tuple(capabilities)
        self.num_steps = int(num_steps)
        self.action_mode = action_mode
        self.top_k = int(top_k)
        self.noise = bool(noise)
        self.draws_world = bool(draws_world)
        self.path_dependent = spec.dynamics == "path_dependent"
        """v1's and v2's dynamics: prerequisites and repair (a drawn world draws them too)."""
        self.reads_utility = bool(reads_utility)
        """Whether the info reports noisy utility readings and, on the last step, the noise-free final report (v1, v2)."""
        self.utility_family = UTILITIES[spec.utility]
        self.probe_bias = float(spec.probe_bias)
        self._default_params = params

    # ------------------------------------------------------------------------------------ the utility
    def task_utility(self, true_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
        """The task utility of a true profile [K] (``teacher`` [K]: the world's), in the spec's family."""
        return utility.FAMILIES[self.utility_family.name][0](true_profile, weights, power, teacher)

    def observed_requirement(self, start_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
        """The requirement [K] the observation shows, in the spec's family."""
        return utility.FAMILIES[self.utility_family.name][1](start_profile, weights, power, teacher)

    def random_power(self, key: jax.Array) -> jax.Array:
        """The utility power of a random task: one of the family's ``random_powers``, uniformly (none: 1, linear)."""
        powers = self.utility_family.random_powers
        if not powers:
            return jnp.float32(1.0)
        return jnp.asarray(powers, jnp.float32)[jax.random.randint(key, (), 0, len(powers))]

    def read_utility(self, key: jax.Array, utility_value: jax.Array, params: EnvParams) -> jax.Array:
        """The utility the info reports: v1's and v2's dev-split reading ``clip(F + utility_noise * N(0, 1), 0, 1)``
        with noise on; else the true one."""
        if not (self.reads_utility and self.noise):
            return utility_value
        return jnp.clip(utility_value + params.utility_noise * jax.random.normal(key), 0.0, 1.0)

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
        world = draw_world(world_key, params.prior, self.path_dependent) if self.draws_world else params.world
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
        """v1's and v2's noise-free ``final_utility`` and ``initial_utility`` on the last step, NaN before (none in v0)."""
        if not self.reads_utility:
            return {}
        initial = self.task_utility(world.student, state.weights, state.power, world.teacher)
        return {"final_utility": jnp.where(terminated, utility_value, jnp.nan), "initial_utility": jnp.where(terminated, initial, jnp.nan)}


ENVIRONMENTS: dict[str, SurrogateSpec] = {
    env_id: spec for env_id, spec in SURROGATE_SPECS.items() if spec.dynamics in ("calibrated", "path_dependent")
}
"""The ids with a JAX form, and their specs (the fitted worlds' dynamics have none)."""


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
    """The JAX form of ``gym.make(env_id, **kwargs)``: ``(env, params)``, as ``gymnax.make`` returns, built from the id's
    spec (:data:`read_env.registration.SURROGATE_SPECS`) and the caller's options.

    Args:
        env_id: ``"ReAD-Surrogate-v0"``, ``"-v1"`` or ``"-v2"`` (``ENVIRONMENTS``).
        task: a task name, ``"random"``, or a sequence of them (each episode draws one uniformly).
        requirement: a custom requirement (vector [K] or ``{capability: weight}``): a linear task; wins over ``task``.
        **kwargs: the numpy environment's arguments (``world``, ``world_seed``, ``noise``, ``capabilities``,
            ``budget_tokens``, ``num_steps``, ``action_mode``, ``logit_temperature``, ``beta``, ``top_k``,
            ``cost_weight``, v1's and v2's ``utility_noise``, ``probe_bias`` and ``utility_family``), checked by the
            same functions as the numpy environment's: the same errors for the same bad input.
    """
    if env_id not in ENVIRONMENTS:
        raise ValueError(f"unknown JAX environment {env_id!r}; known: {sorted(ENVIRONMENTS)}")
    spec = ENVIRONMENTS[env_id]
    path_dependent = spec.dynamics == "path_dependent"
    check_keywords(PathSurrogateEnv if path_dependent else NumpySurrogateEnv, kwargs)
    tasks = [task] if isinstance(task, str) else list(task)
    if not tasks:
        raise ValueError("task must name at least one task")
    options = {**spec.options(), **kwargs}
    utility_noise = options.get("utility_noise", DEFAULT_UTILITY_NOISE if path_dependent else None)  # the numpy classes' defaults
    check_probe_options(utility_noise, options.get("probe_bias", 0.0))
    family = resolve_utility(options.get("utility_family", spec.utility))
    spec = replace(spec, utility=family.name, probe_bias=float(options.get("probe_bias", 0.0)))
    world_class = PathWorld if path_dependent else NumpyWorld
    world = fixed_world(options.get("world", "paper"), options.get("world_seed"), options.get("capabilities"), world_class)
    capabilities = resolve_capabilities(options.get("capabilities"), (world or world_class.paper()).capabilities)
    settings = {"budget_tokens": DEFAULT_BUDGET_TOKENS, "num_steps": DEFAULT_NUM_STEPS, "action_mode": "logits",
                "logit_temperature": contract.DEFAULT_LOGIT_TEMPERATURE, "beta": contract.DEFAULT_BETA, "top_k": contract.DEFAULT_TOP_K,
                "cost_weight": contract.DEFAULT_COST_WEIGHT}  # fmt: skip
    settings.update((name, options[name]) for name in settings if name in options)
    contract.check_config(*settings.values())
    if settings["budget_tokens"] > MAX_BUDGET_TOKENS:
        raise ValueError(f"budget_tokens={settings['budget_tokens']} exceeds the JAX form's int32 budget ({MAX_BUDGET_TOKENS})")
    named = [resolve_requirement(None, requirement, capabilities)] if requirement is not None else [
        resolve_requirement(name, None, capabilities, np.random.default_rng(0)) for name in tasks
    ]  # fmt: skip
    named = [(name, vector) for name, vector in named if name != RANDOM_TASK]
    share = 0.0 if requirement is not None else tasks.count(RANDOM_TASK) / len(tasks)
    family = UTILITIES[spec.utility]
    weights = np.array([vector for _, vector in named]) if named else np.full((1, len(capabilities)), 1.0 / len(capabilities))
    powers = np.array([family.power(name, None) for name, _ in named] or [1.0])
    base = world if world is not None else world_class.paper().subset(capabilities)
    params = EnvParams(
        world=from_numpy(base),
        prior=prior_from_numpy(base),
        task_weights=jnp.asarray(weights, jnp.float32),
        task_powers=jnp.asarray(powers, jnp.float32),
        random_task_share=jnp.float32(share),
        budget_tokens=jnp.int32(int(settings["budget_tokens"])),
        logit_temperature=jnp.float32(settings["logit_temperature"]),
        beta=jnp.float32(settings["beta"]),
        cost_weight=jnp.float32(settings["cost_weight"]),
        utility_noise=jnp.float32(0.0 if utility_noise is None else utility_noise),
    )
    env = SurrogateEnv(env_id, spec, capabilities, int(settings["num_steps"]), settings["action_mode"], int(settings["top_k"]),
                       bool(options.get("noise", True)), world is None, params, utility_noise is not None)  # fmt: skip
    return env, params


def stack_params(params: Sequence[EnvParams]) -> EnvParams:
    """One :class:`EnvParams` with a leading batch axis [N, ...] (``vmap(..., in_axes=(0, ..., 0))``): N worlds,
    tasks or budgets side by side. All must share K and the number of task rows."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
