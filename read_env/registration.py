"""Registration of the ReAD environments with Gymnasium (idempotent; runs on ``import read_env``), the default id,
and each id's own episode budget and steps (:func:`episode_defaults`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from read_env.specs import SurrogateSpec

SURROGATE_ID = "ReAD-Surrogate-v0"
SURROGATE_V1_ID = "ReAD-Surrogate-v1"
SURROGATE_V2_ID = "ReAD-Surrogate-v2"
FITTED_ID = "ReAD-Fitted-v0"
FITTED_V1_ID = "ReAD-Fitted-v1"
MINI_ID = "ReAD-Mini-v0"
MINI_V1_ID = "ReAD-Mini-v1"
MINI_V2_ID = "ReAD-Mini-v2"
REAL_ID = "ReAD-v0"
REAL_V1_ID = "ReAD-v1"
DEFAULT_ENV_ID = SURROGATE_V2_ID
"""The id of every default: the library's (``Setting``, ``run_episode``, ``CompareConfig``, SB3 and JAX PPO), the
command line's and the examples'. The newest surrogate, so Gymnasium's out-of-date warning never prints on a
default path; code that reproduces published v0 or v1 numbers names its id."""


SURROGATE_SPECS: dict[str, SurrogateSpec] = {
    SURROGATE_ID: SurrogateSpec("calibrated", "linear"),
    SURROGATE_V1_ID: SurrogateSpec("path_dependent", "scores"),
    # probe_bias 0.5: the paper does not measure it; half is a modelling choice between v1's fresh noise (0) and a
    # deterministic probe of a fixed suite, whose whole error is the suite's (1)
    SURROGATE_V2_ID: SurrogateSpec("path_dependent", "shortfall", probe_bias=0.5),
    FITTED_ID: SurrogateSpec("fitted", "linear"),
    FITTED_V1_ID: SurrogateSpec("fitted", "linear", world="mini_v1"),  # the world fitted to ReAD-Mini-v1
}
"""Every surrogate id's parts (:mod:`read_env.specs`; see :mod:`read_env.surrogate.path_dependent_env` for v1 and v2,
:mod:`read_env.fitted.env` for the fitted ids)."""
V2_OPTIONS = SURROGATE_SPECS[SURROGATE_V2_ID].options()
"""What ``ReAD-Surrogate-v2`` sets on v1's code: ``{"utility_family": "shortfall", "probe_bias": 0.5}``."""

REAL_V1_OPTIONS = {
    # measurement: clean, decontaminated items, enough of them for a 1-point standard error of utility wherever the
    # installed data holds them (docs/evaluation.md), and a probe that scores answers rather than imitation
    "item_source": "full_splits", "clip_items": True, "eval_items": 2500, "probe_score": "correctness", "probe_items": 64,
    "max_new_tokens": 512, "eval_max_new_tokens": 512,  # room for chain-of-thought and code
    # training: padding-free packed steps, bf16 where the device computes it natively, warm-up + cosine over the budget
    "packed": True, "bf16": "auto", "lr_schedule": "warmup_cosine",
    # teacher: answers generated once in a pool shared by every episode, seed, agent and profiling run (prompt streams
    # common to all allocations); every capability's prompts in the same engine calls, its native bf16, references
    # from the engine
    "prompt_streams": True, "teacher_pool": "auto",
    "batch_capabilities": True, "teacher_dtype": "auto", "engine_references": True,
    # checkpoints: written while the student is measured, no copy of the untrained weights
    "checkpoint_async": True, "checkpoint_start_weights": False,
}
"""What ``ReAD-v1`` sets on ReAD-v0's code (:class:`~read_env.distill.config.DistillerConfig` options; a
``distiller_config`` dict applies on top). Sized for a GPU: on a CPU pass smaller ``eval_items`` / ``probe_items``.
Where each value comes from: ``docs/real-distillation.md`` (section "ReAD-v1")."""

REGISTRATIONS: dict[str, dict[str, Any]] = {
    **{env_id: spec.registration() for env_id, spec in SURROGATE_SPECS.items()},
    MINI_ID: {"entry_point": "read_env.mini.env:MiniEnv"},  # bit-exact under a seed on CPU (threads fixed)
    MINI_V1_ID: {"entry_point": "read_env.mini.env:MiniV1Env"},  # MiniEnv with V1_DEFAULTS under the caller's options
    MINI_V2_ID: {"entry_point": "read_env.mini.env:MiniV2Env"},  # MiniEnv with V2_DEFAULTS under the caller's options
    REAL_ID: {"entry_point": "read_env.distill.env:DistillationEnv", "nondeterministic": True},
    REAL_V1_ID: {"entry_point": "read_env.distill.env:DistillationEnv", "nondeterministic": True,
                 "kwargs": {"preset": REAL_V1_OPTIONS, "run_dir": "runs/ReAD-v1"}},  # v0's code with the v1 options
}
"""``gym.register``'s keywords of every id."""
ENV_IDS = tuple(REGISTRATIONS)
"""Every registered ReAD id."""


def register_envs() -> None:
    """Register every ReAD environment id once; a second call changes nothing and warns nothing."""
    for env_id, options in REGISTRATIONS.items():
        if env_id not in gym.registry:
            gym.register(env_id, **options)


def episode_defaults(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """``(budget_tokens, num_steps)`` of ``env_id`` made with ``env_kwargs`` and neither of the two: the environment's
    own defaults (the surrogates' 20M tokens in 20 steps, ReAD-Mini-v1's 80k in 8, a fitted world's token scale).

    Read from an instance built by the id's entry point with its registered options: no episode starts, no model
    loads, nothing is written, no out-of-date warning; bad ``env_kwargs`` raise the environment's own error."""
    from gymnasium.envs.registration import load_env_creator

    spec = gym.spec(env_id)
    env = load_env_creator(spec.entry_point)(**{**spec.kwargs, **(env_kwargs or {})})
    try:
        return int(env.budget_tokens), int(env.num_steps)
    finally:
        env.close()


def resolve_episode(env_id: str, env_kwargs: Mapping[str, Any] | None, budgets: Sequence[int] | None,
                    num_steps: int | None) -> tuple[Sequence[int], int]:
    """``(budgets, num_steps)``: those given, and for a ``None`` the environment's own (:func:`episode_defaults`;
    its one budget, in tokens, as a one-item list). Builds the environment only when one is ``None``."""
    if budgets is None or num_steps is None:
        own_budget, own_steps = episode_defaults(env_id, env_kwargs)
        budgets = [own_budget] if budgets is None else budgets
        num_steps = own_steps if num_steps is None else num_steps
    return budgets, num_steps
