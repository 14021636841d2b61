"""The native vector form of the surrogates (``ReAD-Surrogate-v0``, ``-v1``, ``-v2``, ``ReAD-Fitted``): N episodes in
lockstep, each step one call of the single environment's compiled step (:mod:`read_env.step_kernel`) over N rows.

``gym.make_vec("ReAD-Surrogate-v0", num_envs=N, vectorization_mode="vector_entry_point", **kwargs)`` takes the
single environment's kwargs. Sub-environment ``i`` seeded ``seed + i`` draws exactly what a single
``SurrogateEnv`` reset with that seed draws, and every row of the computation is bit-identical to the single
environment's, so results equal N single environments'.

Autoreset: ``AutoresetMode.SAME_STEP`` (as SB3's vector environments): when episodes end, the returned
observation rows are the new episodes' first observations; ``info["final_obs"]`` holds the last
observations and ``info["final_info"]`` the step's info, with boolean masks ``info["_final_obs"]`` and
``info["_final_info"]`` marking the rows that ended. Every other info key holds the step's values for all
rows.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from read_env import contract
from read_env.step_kernel import Episodes, outputs_of
from read_env.surrogate import path_dependent_kernel
from read_env.surrogate.env import SurrogateEnv, draw_episode
from read_env.surrogate.probe import measure
from read_env.surrogate.path_dependent_env import PathSurrogateEnv
from read_env.surrogate.world import World
from read_env.tasks import RANDOM_TASK, resolve_requirement


class SurrogateVectorEnv(VectorEnv):
    """N ``SurrogateEnv`` episodes in lockstep arrays [N, K]; same kwargs as :class:`SurrogateEnv`, and:

    Args:
        num_threads: split the rows of a step over this many of numba's threads (1: the calling thread only).
            Every row is computed by the same code either way, so results do not change.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    env_class: type[SurrogateEnv] = SurrogateEnv

    def __init__(self, num_envs: int = 1, num_threads: int = 1, **kwargs: Any) -> None:
        most = numba.config.NUMBA_NUM_THREADS
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or not 1 <= num_threads <= most:
            raise ValueError(f"num_threads must be an integer from 1 to {most} (numba's threads), got {num_threads!r}")
        self.num_threads = int(num_threads)
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if kwargs.get("render_mode") is not None:
            raise ValueError("the vector surrogate does not render; use single environments to render")
        kwargs.pop("max_episode_steps", None)  # episodes end when the budget is spent
        self.template = self.env_class(**kwargs)  # validates every argument once
        self.num_envs = int(num_envs)
        self.single_observation_space = self.template.observation_space
        self.single_action_space = self.template.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._autoreset_options = self.template._prepare({})
        self._rows = np.arange(self.num_envs)
        self._steps = np.full(self.num_envs, self.template.num_steps)
        k = len(self.template.capabilities)
        self._worlds: list[World | None] = [None] * self.num_envs
        self.requirement = np.zeros((self.num_envs, k))
        self._essential_weight = np.zeros((self.num_envs, k))
        self._noise = np.zeros((self.num_envs, 2 * self.template.num_steps + 1, k))
        self._utility_readings = np.zeros((self.num_envs, self.template.num_steps + 1))
        self.utility_weights = np.zeros((self.num_envs, k))
        self.utility_power = np.ones(self.num_envs)
        self.utility_teacher = np.ascontiguousarray(self.template.utility_family.teacher_columns(np.zeros((self.num_envs, k))))
        self.state = np.zeros((self.num_envs, self.template.world_class.STATE_BLOCKS * k))
        self.profile = np.zeros((self.num_envs, k))
        self.allocation = np.zeros((self.num_envs, k))
        self.delta = np.zeros((self.num_envs, k))
        self.tokens_used_total = np.zeros(self.num_envs, dtype=np.int64)
        self.task_names = np.full(self.num_envs, "", dtype=object)
        # the compiled step's episodes: these arrays are only ever written in place, so the views stay current
        noise, readings = self._noise, self._utility_readings
        if not self.template.noise:
            noise, readings = noise[:, :0], readings[:, :0]
        task = (self.requirement, self._essential_weight, self.utility_weights, self.utility_power, self.utility_teacher)
        episodes = Episodes(noise, readings, *task)
        self._kernel_groups = (tuple(episodes), tuple(self.template.kernel_contract))

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset all sub-environments (or those in ``options["reset_mask"]``); seeds ``seed + i`` or a list."""
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=bool)), dtype=bool)
        if mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
        if isinstance(seed, (int, np.integer)):
            seed = [int(seed) + index for index in range(self.num_envs)]
        elif seed is None:
            seed = [None] * self.num_envs
        if len(seed) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds, got {len(seed)}")
        self._reset_rows(np.flatnonzero(mask), seed, self.template._prepare(options))
        return self._observation(), {"task": self.task_names.copy(), "step": self._steps.copy(), "tokens_used_total": self.tokens_used_total.copy()}

    def _reset_rows(self, rows: np.ndarray, seeds: list[int | None], prepared: dict[str, Any]) -> None:
        """Reset ``rows`` with options already checked by ``SurrogateEnv._prepare``, drawing as it would."""
        template = self.template
        shared = prepared.get("_requirement")  # None: the task is random, drawn per row
        spec, world_seed, world = prepared["_world"]
        if shared:  # a named task or a custom requirement: the same weights and power for every row, nothing drawn
            self.task_names[rows], self.utility_weights[rows] = shared
            self.utility_power[rows] = template.utility_family.power(shared[0], None)
        biased, biases = [], []  # rows with a probe-suite bias (v2), and their biases
        for row in rows:
            if seeds[row] is not None or self._rngs[row] is None:
                self._rngs[row], _ = seeding.np_random(seeds[row])
            rng = self._rngs[row]
            if not shared:
                self.task_names[row], self.utility_weights[row] = resolve_requirement(RANDOM_TASK, None, template.capabilities, rng)
                self.utility_power[row] = template.utility_family.power(RANDOM_TASK, rng)
            self._worlds[row], _ = draw_episode(rng, world, spec, world_seed, template.capabilities, template.noise, template.num_steps, template.world_class, self._noise[row])
            template.probe.draw_utility_readings(rng, template.num_steps, self._utility_readings[row])
            bias = template.probe.draw_bias(rng, len(template.capabilities))
            if bias is not None:
                biased.append(row)
                biases.append(bias)
        if biased:  # mixed for all rows at once (a copy, then written back: faster than indexing in place)
            probe = self._noise[biased, template.num_steps :]
            template.probe.mix_bias(probe, np.array(biases))
            self._noise[biased, template.num_steps :] = probe
        self.world = template.world_class.stack(self._worlds)
        teacher = np.broadcast_to(self.world.teacher, self.requirement.shape)
        self.utility_teacher[rows] = template.utility_family.teacher_columns(teacher[rows])
        if shared and world is not None:  # one task in one world: every row starts from the same requirement
            first = rows[0]
            weights, power = self.utility_weights[first], self.utility_power[first]
            self.requirement[rows] = template.utility_family.requirement(self.world.student, weights, power, self.world.teacher)
        else:
            start_profile = np.broadcast_to(self.world.student, self.requirement.shape)[rows]
            weights, power = self.utility_weights[rows], self.utility_power[rows]
            self.requirement[rows] = template.utility_family.requirement(start_profile, weights, power, teacher[rows])
        self._essential_weight[rows] = self.requirement[rows] * contract.essential_mask(self.requirement[rows], template.top_k)
        # Fresh arrays, not in-place writes: the last step's info still refers to the old ones.
        for name in ("state", "allocation", "delta", "_steps", "tokens_used_total"):
            values = getattr(self, name).copy()
            values[rows] = self._start_states(rows) if name == "state" else 0
            setattr(self, name, values)
        self.true_profile = self.world.profile(self.state)
        self.profile = self.profile.copy()
        self.profile[rows] = self._measure(self.true_profile, self._steps)[rows]

    def _start_states(self, rows: np.ndarray) -> np.ndarray:
        """The start states [len(rows), S] of the rows' new episodes, after every other draw of theirs."""
        return self.world.initial_state()

    def _measure(self, true_profile: np.ndarray, readings: np.ndarray) -> np.ndarray:
        """Probe readings [N, K] of ``true_profile``: reading ``readings[i]`` of row ``i``."""
        if not self.template.noise:
            return true_profile
        return measure(self.world.probe_noise, true_profile, self._noise[self._rows, self.template.num_steps + readings])

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment with ``actions`` [N, K]; see the module docstring for autoreset."""
        template = self.template
        if (self._steps >= template.num_steps).any():
            raise RuntimeError("some episodes were never started: call reset() first")
        tokens = template.step_tokens[self._steps]
        allocation, profile, delta, utility, reading, feedback = self._advance(actions, tokens)
        extra = self.template.extra_info(self._uncertainty)  # the template's extra info of the rows' steps
        reward, gain, spill, cost = feedback
        self._steps = self._steps + 1
        self.profile, self.allocation, self.delta = profile, allocation, delta
        self.tokens_used_total = self.tokens_used_total + tokens
        terminated = self._steps == template.num_steps
        info = contract.step_info(allocation, delta, gain, spill, cost, reading, tokens, self.tokens_used_total, self._steps, self.task_names.copy())
        info.update(extra)
        observation = self._observation()
        if terminated.any():
            info["final_obs"], info["_final_obs"] = observation, terminated
            info["final_info"], info["_final_info"] = dict(info), terminated
            if self.template.reports_final_utility:
                info["final_info"]["final_utility"] = utility
                info["final_info"]["initial_utility"] = self._start_utility()
            rows = np.flatnonzero(terminated)
            self._reset_rows(rows, [None] * self.num_envs, self._autoreset_options)
            observation = self._observation()
        return observation, reward, terminated, np.zeros(self.num_envs, dtype=bool), info

    def _start_utility(self) -> np.ndarray:
        """True utility [N] of each row's start profile."""
        return self.template.utility_family.value(self.world.student, self.utility_weights, self.utility_power, self.world.teacher)

    def _advance(self, actions: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, ...]:
        template = self.template
        k = len(template.capabilities)
        action_rows = np.ascontiguousarray(contract.action_array(actions, (self.num_envs, k)))
        block = template.output_block(self.num_envs)  # fresh every step: the last step's info still refers to the old one
        arguments = (action_rows, self.state, self._steps, self.profile, *self._kernel_groups, tuple(self.kernel_world()), block, 0)
        if self.num_threads == 1:
            accepted = template.compiled_step(*arguments)
        else:
            accepted = path_dependent_kernel.env_step_threads(self.num_threads, *arguments)
        if not accepted:
            template.reject_action(actions)
        out = outputs_of.py_func(block, k, self.state.shape[1])
        self.state, self.true_profile = np.ascontiguousarray(out.state), np.ascontiguousarray(out.true_profile)
        self._uncertainty = out.uncertainty  # read by the template's extra_info
        return np.ascontiguousarray(out.allocation), np.ascontiguousarray(out.profile), out.delta, out.utility, out.reading, (
            out.reward, out.gain, out.spillover, tokens / template.budget_tokens)

    def kernel_world(self) -> tuple[Any, ...]:
        """The rows' world group of the template's compiled step (a named tuple of the kernel's module)."""
        return self.world._kernel_parameters

    def _observation(self) -> dict[str, np.ndarray]:
        return {
            "profile": self.profile.astype(np.float32),
            "requirement": self.requirement.astype(np.float32),
            "budget_left": (1.0 - self.tokens_used_total / self.template.budget_tokens).astype(np.float32)[:, None],
            "last_allocation": self.allocation.astype(np.float32),
            "last_gain": self.delta.astype(np.float32),
        }


class PathSurrogateVectorEnv(SurrogateVectorEnv):
    """The native vector form of ``ReAD-Surrogate-v1`` and ``-v2``: N :class:`PathSurrogateEnv` episodes in lockstep
    (:class:`SurrogateVectorEnv` with its environment class)."""

    env_class = PathSurrogateEnv
