"""One table of cases (utility families, action modes, edge budgets, noise) run through every form of a step:
the single environment, its native vector form and, where one exists, the JAX form, each held to
read_env/contract.py, and the compiled step itself through its named inputs and outputs (read_env/step_kernel.py);
and one table of invalid actions, which the numpy forms reject, the compiled step refuses and the JAX form flags."""

import importlib.util
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import pytest

from read_env import contract
from read_env.step_kernel import Contract, Episodes, outputs_of

HAS_JAX = importlib.util.find_spec("jax") is not None and importlib.util.find_spec("gymnax") is not None
JAX_IDS = ("ReAD-Surrogate-v0", "ReAD-Surrogate-v1", "ReAD-Surrogate-v2")
TOLERANCE = 1e-5  # JAX computes in float32
INFO_KEYS = ("allocation", "delta_profile", "gain", "spillover", "cost", "utility", "tokens_used", "tokens_used_total", "step")


class Case(NamedTuple):
    env_id: str
    action_mode: str
    kwargs: dict
    noise: bool = False

    def make_kwargs(self) -> dict:
        return {"action_mode": self.action_mode, "noise": self.noise, **self.kwargs}


CASES = [
    Case("ReAD-Surrogate-v0", "logits", {"task": "code", "num_steps": 5}),  # linear utility, numpy step
    Case("ReAD-Surrogate-v1", "logits", {"task": "math_word_problems", "num_steps": 5}),  # scores family
    Case("ReAD-Surrogate-v1", "simplex", {"task": "chat_assistant", "budget_tokens": 150_000_000, "num_steps": 4}),
    Case("ReAD-Surrogate-v1", "logits", {"task": "science_qa", "num_steps": 1, "beta": 2.0, "top_k": 1, "cost_weight": 0.5, "logit_temperature": 0.5}),
    Case("ReAD-Surrogate-v2", "logits", {"task": "math_word_problems", "budget_tokens": 4, "num_steps": 4}),  # shortfall; one token a step
    Case("ReAD-Surrogate-v2", "simplex", {"task": "coding_assistant", "budget_tokens": 1_000_003, "num_steps": 4}),  # 3 steps a token more
    Case("ReAD-Surrogate-v2", "logits", {"task": "random", "num_steps": 4}, noise=True),
    Case("ReAD-Fitted-v1", "logits", {"task": "math_word_problems"}),
    Case("ReAD-Fitted-v0", "simplex", {"task": "code", "budget_tokens": 1_000_003, "num_steps": 4}, noise=True),
    Case("ReAD-Fitted-v1", "logits", {"task": "random", "world": "mini_v1_students", "uncertainty": True, "uncertainty_penalty": 0.5},
         noise=True),  # a prior over students, the members' spread and its penalty
]


def actions(case: Case, k: int, steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if case.action_mode == "logits":
        return rng.uniform(-1, 1, (steps, k)).astype(np.float32)
    return rng.dirichlet(np.ones(k), steps).astype(np.float32)


def single_episode(case: Case, plan: np.ndarray, seed: int):
    """Observations (before autoreset), rewards, infos of one episode, each step checked against contract.py."""
    env = gym.make(case.env_id, **case.make_kwargs())
    observation, _ = env.reset(seed=seed)
    inner = env.unwrapped
    budget, steps = inner.budget_tokens, inner.num_steps
    tokens = contract.step_tokens(budget, steps)
    observations, rewards, infos = [observation], [], []
    for t, action in enumerate(plan):
        requirement, essential = inner.requirement.copy(), inner._essential_weight.copy()
        observation, reward, terminated, truncated, info = env.step(action)
        allocation = contract.allocation_from_action(action, case.action_mode, inner.logit_temperature, action.shape)
        np.testing.assert_allclose(info["allocation"], allocation, rtol=1e-12)
        assert info["tokens_used"] == tokens[t] and info["tokens_used_total"] == tokens[: t + 1].sum() and info["step"] == t + 1
        expected = contract.step_feedback(requirement, essential, info["delta_profile"], tokens[t], budget, inner.beta, inner.cost_weight)
        penalty = case.kwargs.get("uncertainty_penalty", 0.0) * np.mean(info.get("uncertainty", 0.0))
        np.testing.assert_allclose([reward + penalty, info["gain"], info["spillover"], info["cost"]], expected, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(observation["budget_left"], [1.0 - tokens[: t + 1].sum() / budget], rtol=1e-6)
        np.testing.assert_array_equal(observation["last_allocation"], np.float32(allocation))
        np.testing.assert_array_equal(observation["last_gain"], np.float32(info["delta_profile"]))
        np.testing.assert_allclose(observation["profile"], observations[-1]["profile"] + info["delta_profile"], atol=1e-6)
        assert not truncated and terminated == (t + 1 == steps)
        observations.append(observation)
        rewards.append(reward)
        infos.append(info)
    return observations, rewards, infos


def case_id(case: Case) -> str:
    return f"{case.env_id}-{case.action_mode}-{case.kwargs.get('budget_tokens', 'default')}-{'noise' if case.noise else 'exact'}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_form_of_a_step_computes_the_contract(case):
    """Single (checked against contract.py step by step), vector row i (seed + i) equal to single bit for bit,
    JAX equal to single within float32 (noise off: JAX draws its own noise)."""
    probe = gym.make(case.env_id, **case.make_kwargs()).unwrapped
    k, steps = len(probe.capabilities), probe.num_steps
    plans = [actions(case, k, steps, seed) for seed in (0, 1)]
    singles = [single_episode(case, plan, seed) for seed, plan in enumerate(plans)]

    vector = gym.make_vec(case.env_id, num_envs=2, vectorization_mode="vector_entry_point", **case.make_kwargs())
    observation, _ = vector.reset(seed=0)
    for t in range(steps):
        for row, (observations, rewards, infos) in enumerate(singles):
            for key, value in observation.items():
                np.testing.assert_array_equal(value[row], observations[t][key], err_msg=f"step {t} row {row} {key}")
        observation, reward, terminated, _, info = vector.step(np.stack([plan[t] for plan in plans]))
        seen = info["final_obs"] if terminated.any() else observation
        for row, (observations, rewards, infos) in enumerate(singles):
            assert reward[row] == rewards[t]
            for key, value in seen.items():
                np.testing.assert_array_equal(value[row], observations[t + 1][key], err_msg=f"step {t + 1} row {row} {key}")
            for key in (*INFO_KEYS, *(("uncertainty",) if "uncertainty" in infos[t] else ())):
                np.testing.assert_array_equal(info[key][row], infos[t][key], err_msg=f"step {t} row {row} {key}")
    assert terminated.all()

    if case.env_id not in JAX_IDS or case.noise:
        return
    if not HAS_JAX:
        pytest.skip("the JAX form needs jax and gymnax: pip install 'read-env[jax]'")
    import jax

    from read_env import jax as rj
    from read_env.jax.env import observation_dict

    env, params = rj.make(case.env_id, **case.make_kwargs())
    observations, rewards, infos = singles[0]
    first, state = env.reset(jax.random.PRNGKey(0), params)
    np.testing.assert_allclose(np.asarray(first), gym.spaces.flatten(probe.observation_space, observations[0]), atol=TOLERANCE)
    for t, action in enumerate(plans[0]):
        observation, state, reward, terminated, info = env.step_env(jax.random.PRNGKey(t + 1), state, action, params)
        expected = observations[t + 1]
        for key, value in observation_dict(np.asarray(observation), k).items():
            np.testing.assert_allclose(value, expected[key], atol=TOLERANCE, err_msg=f"JAX step {t} {key}")
        np.testing.assert_allclose(float(reward), rewards[t], atol=TOLERANCE)
        for key in INFO_KEYS:
            expected = np.asarray(infos[t][key], dtype=np.float64)
            np.testing.assert_allclose(np.asarray(info[key]), expected, atol=TOLERANCE, err_msg=f"JAX step {t} {key}")
        assert not bool(info["invalid_action"])


BAD_ACTIONS = [
    ("logits", [1.01, 0, 0, 0, 0, 0, 0, 0], "in \\[-1, 1\\]"),
    ("logits", [-1.5, 0, 0, 0, 0, 0, 0, 0], "in \\[-1, 1\\]"),
    ("logits", [np.nan, 0, 0, 0, 0, 0, 0, 0], "finite"),
    ("simplex", [0.5, 0.5, 0.5, 0, 0, 0, 0, 0], "sum to 1"),
    ("simplex", [1.2, -0.2, 0, 0, 0, 0, 0, 0], "non-negative"),
    ("simplex", [np.inf, 0, 0, 0, 0, 0, 0, 0], "finite"),
    ("simplex", [0, 0, 0, 0, 0, 0, 0, 0], "sum to 1"),
]
"""Actions the contract rejects: (action mode, action [K], the numpy forms' message)."""


@pytest.mark.parametrize("env_id", ["ReAD-Surrogate-v0", "ReAD-Surrogate-v1", "ReAD-Surrogate-v2", "ReAD-Fitted-v1"])
@pytest.mark.parametrize("action_mode, action, message", BAD_ACTIONS)
def test_invalid_actions_raise_in_numpy_and_are_flagged_in_jax(env_id, action_mode, action, message):
    """The documented difference: single and vector environments raise naming the problem; the JAX form runs the
    clipped action and sets ``info["invalid_action"]`` (False for an accepted action)."""
    action = np.array(action, dtype=np.float32)
    env = gym.make(env_id, action_mode=action_mode)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)
    vector = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", action_mode=action_mode)
    vector.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        vector.step(np.stack([np.full(8, 0.125 if action_mode == "simplex" else 0.0, np.float32), action]))
    if env_id not in JAX_IDS or not HAS_JAX:
        return
    import jax

    from read_env import jax as rj

    jax_env, params = rj.make(env_id, action_mode=action_mode, noise=False)
    _, state = jax_env.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(jax_env.step_env)
    valid = np.full(8, 0.125 if action_mode == "simplex" else 0.0, np.float32)
    assert not bool(step(jax.random.PRNGKey(1), state, valid, params)[4]["invalid_action"])
    observation, _, reward, _, info = step(jax.random.PRNGKey(1), state, action, params)
    assert bool(info["invalid_action"])
    finite = np.isfinite(np.asarray(observation)).all() and np.isfinite(float(reward))
    assert finite == np.isfinite(action).all()  # a NaN entry is not clipped: it makes the step's numbers NaN


COMPILED_CASES = [case for case in CASES if case.env_id != "ReAD-Surrogate-v0"]
"""The cases whose step is compiled (read_env/step_kernel.py's shape): v1, v2 and Fitted."""


def kernel_step(env, action: np.ndarray):
    """The environment's compiled step of one row from its current state, called through its named groups:
    (accepted, StepOutputs [1, ...], Episodes, Contract)."""
    k = len(env.capabilities)
    episodes, constants = Episodes(*env._kernel_groups[0]), Contract(*env._kernel_groups[1])
    world = type(env.kernel_world())(*env._kernel_groups[2])
    block, steps = env.output_block(1), np.array([env._step])
    groups = (tuple(episodes), tuple(constants), tuple(world))
    accepted = env.compiled_step(action[None], env.state[None], steps, env.profile[None], *groups, block, 0)
    return accepted, outputs_of.py_func(block, k, len(env.state)), episodes, constants


@pytest.mark.parametrize("case", COMPILED_CASES, ids=case_id)
def test_the_named_kernel_computes_the_contract(case):
    """The compiled step called through its named inputs and outputs (read_env/step_kernel.py), step by step:
    each named output against contract.py, and the environment's step returning exactly those outputs."""
    env = gym.make(case.env_id, **case.make_kwargs()).unwrapped
    env.reset(seed=0)
    k = len(env.capabilities)
    for t, action in enumerate(actions(case, k, env.num_steps, 0)):
        previous = env.profile.copy()
        accepted, out, episodes, constants = kernel_step(env, action)
        assert accepted
        np.testing.assert_array_equal(episodes.requirement[0], env.requirement)
        assert constants == env.kernel_contract
        tokens = contract.step_tokens(env.budget_tokens, env.num_steps)[t]
        np.testing.assert_array_equal(constants.step_tokens[t], tokens)
        allocation = contract.allocation_from_action(action, case.action_mode, constants.temperature, (k,))
        np.testing.assert_allclose(out.allocation[0], allocation, rtol=1e-12)
        np.testing.assert_array_equal(out.delta[0], out.profile[0] - previous)
        task = (episodes.requirement[0], episodes.essential_weight[0])
        expected = contract.step_feedback(*task, out.delta[0], tokens, env.budget_tokens, constants.beta, constants.cost_weight)
        penalty = case.kwargs.get("uncertainty_penalty", 0.0) * out.uncertainty[0].mean() if out.uncertainty.shape[1] else 0.0
        np.testing.assert_allclose([out.reward[0] + penalty, out.gain[0], out.spillover[0]], expected[:3], rtol=1e-9, atol=1e-15)
        assert out.uncertainty.shape[1] == (k if case.kwargs.get("uncertainty") else 0)
        _, reward, _, _, info = env.step(action)
        assert reward == out.reward[0] and info["utility"] == out.reading[0]
        for key, name in (("allocation", "allocation"), ("delta_profile", "delta"), ("gain", "gain"), ("spillover", "spillover")):
            np.testing.assert_array_equal(info[key], getattr(out, name)[0], err_msg=f"step {t} {key}")
        np.testing.assert_array_equal(env.state, out.state[0])


@pytest.mark.parametrize("env_id", ["ReAD-Surrogate-v1", "ReAD-Surrogate-v2", "ReAD-Fitted-v1"])
@pytest.mark.parametrize("action_mode, action, message", BAD_ACTIONS)
def test_the_named_kernel_refuses_invalid_actions(env_id, action_mode, action, message):
    """The compiled step returns False (accepted) for every action the contract rejects, and True for a valid one."""
    env = gym.make(env_id, action_mode=action_mode).unwrapped
    env.reset(seed=0)
    assert not kernel_step(env, np.array(action, dtype=np.float32))[0]
    assert kernel_step(env, np.full(8, 0.125 if action_mode == "simplex" else 0.0, np.float32))[0]
