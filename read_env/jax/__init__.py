"""``ReAD-Surrogate-v0``, ``-v1`` and ``-v2`` as JAX (gymnax) environments: ``pip install 'read-env[jax]'``.

``env, params = read_env.jax.make("ReAD-Surrogate-v2", world="random")`` returns what ``gymnax.make`` returns;
``obs, state = env.reset(key, params)`` and ``obs, state, reward, terminated, truncated, info = env.step(key,
state, action, params)`` are pure and compile with ``jax.jit``; ``jax.vmap`` steps a batch, and
:func:`stack_params` puts different worlds, tasks or budgets in one batch. The ids are also registered with
gymnax, so ``gymnax.make("ReAD-Surrogate-v2")`` works once this package is imported. See
:mod:`read_env.jax.env` for what differs from the numpy environments (the flat observation, clipped actions,
JAX's own noise draws).
"""

import gymnax

from read_env.jax.env import ENVIRONMENTS, OBSERVATION_KEYS, EnvParams, EnvState, SurrogateEnv, make, observation_dict, stack_params

__all__ = ["ENVIRONMENTS", "OBSERVATION_KEYS", "EnvParams", "EnvState", "SurrogateEnv", "make", "observation_dict", "stack_params"]

for _env_id in ENVIRONMENTS:
    if _env_id not in gymnax.registered_envs:
        gymnax.register(_env_id, lambda _id=_env_id, **kwargs: make(_id, **kwargs)[0])
