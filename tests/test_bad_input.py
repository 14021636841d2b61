"""Bad input gets a clear error naming the problem, raised before any state changes."""

import copy

import gymnasium as gym
import numpy as np
import pytest

SURROGATES = ["ReAD-Surrogate-v0", "ReAD-Surrogate-v1", "ReAD-Surrogate-v2"]  # v1 and v2 map actions in their compiled step


def started(env_id="ReAD-Surrogate-v0", **kwargs):
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    env.step(np.full(8, 1 / 8, dtype=np.float32))
    return env


def state(env):
    base = env.unwrapped
    return copy.deepcopy((base.state, base.profile, base.tokens_used_total, base._step, base.np_random.bit_generator.state))


@pytest.mark.parametrize(
    "action,error,match",
    [
        (np.full(8, np.nan, dtype=np.float32), ValueError, "finite"),
        (np.array([np.inf] + [0.0] * 7, dtype=np.float32), ValueError, "finite"),
        (np.zeros(7, dtype=np.float32), ValueError, "shape"),
        (np.zeros((1, 8), dtype=np.float32), ValueError, "shape"),
        (np.array(["a"] * 8), TypeError, "dtype"),
        (np.zeros(8, dtype=complex), TypeError, "dtype"),
        (np.full(8, 2.0, dtype=np.float32), ValueError, r"\[-1, 1\]"),
    ],
)
@pytest.mark.parametrize("env_id", SURROGATES)
def test_bad_logit_actions(env_id, action, error, match):
    env = started(env_id)
    before = state(env)
    with pytest.raises(error, match=match):
        env.step(action)
    after = state(env)
    for a, b in zip(before[:4], after[:4]):
        np.testing.assert_array_equal(a, b)
    assert before[4] == after[4]


@pytest.mark.parametrize(
    "action,match",
    [
        (np.full(8, 0.2, dtype=np.float32), "sum to 1"),
        (np.array([1.2, -0.2, 0, 0, 0, 0, 0, 0], dtype=np.float32), "non-negative"),
        (np.array([np.nan] + [0.0] * 7, dtype=np.float32), "finite"),
    ],
)
@pytest.mark.parametrize("env_id", SURROGATES)
def test_bad_simplex_actions(env_id, action, match):
    env = started(env_id, action_mode="simplex")
    before = state(env)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    np.testing.assert_array_equal(before[0], state(env)[0])


@pytest.mark.parametrize("env_id", SURROGATES)
def test_simplex_tolerance_accepts_float32_rounding(env_id):
    env = started(env_id, action_mode="simplex")
    env.step(np.full(8, 1 / 8, dtype=np.float32) + np.float32(1e-5))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"task": "poetry"}, ValueError, "unknown task 'poetry'"),
        ({"world": "mars"}, ValueError, "unknown world 'mars'"),
        ({"capabilities": ["math", "juggling"]}, ValueError, "juggling"),
        ({"capabilities": ["math", "math"]}, ValueError, "twice"),
        ({"capabilities": []}, ValueError, "at least one"),
        ({"budget_tokens": 0}, ValueError, "budget_tokens must be positive"),
        ({"budget_tokens": -5}, ValueError, "budget_tokens must be positive"),
        ({"budget_tokens": 1.5e6}, TypeError, "integer"),
        ({"num_steps": 0}, ValueError, "num_steps must be at least 1"),
        ({"num_steps": 11, "budget_tokens": 10}, ValueError, "exceeds budget_tokens"),
        ({"action_mode": "dirichlet"}, ValueError, "action_mode"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"beta": -1.0}, ValueError, "beta"),
        ({"render_mode": "human"}, ValueError, "render_mode"),
        ({"world": {"capabilities": ["math"]}}, ValueError, "lacks keys"),
        ({"capabilities": ["steerability"], "task": "math"}, ValueError, "needs none"),
    ],
)
def test_bad_configuration(kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make("ReAD-Surrogate-v0", **kwargs)


@pytest.mark.parametrize("env_id", [*SURROGATES, "ReAD-Fitted-v1", "ReAD-Mini-v1", "ReAD-v0"])
def test_an_unknown_keyword_names_the_close_one(env_id):
    with pytest.raises(TypeError, match=r"takes no keyword 'budget' \(did you mean 'budget_tokens'\?\).*its keywords: .*num_steps"):
        gym.make(env_id, budget=20_000_000)
    with pytest.raises(TypeError, match=r"takes no keyword 'xyzzy'; its keywords"):  # nothing close: no guess
        gym.make(env_id, xyzzy=1)


def test_an_unknown_keyword_of_a_vector_form_names_the_close_one():
    with pytest.raises(TypeError, match=r"'nois' \(did you mean 'noise'\?\)"):
        gym.make_vec("ReAD-Surrogate-v1", num_envs=2, vectorization_mode="vector_entry_point", nois=False)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"task": "poetry"}, "unknown task"),
        ({"requirement": [0.5, 0.5]}, "shape"),
        ({"requirement": [np.nan] * 8}, "finite"),
        ({"requirement": [0.5] * 8}, "sum to 1"),
        ({"requirement": {"juggling": 1.0}}, "juggling"),
        ({"world": "mars"}, "unknown world"),
        ({"budget": 5}, "unknown reset options"),
    ],
)
def test_bad_reset_options_leave_the_episode_intact(options, match):
    env = started()
    before = state(env)
    with pytest.raises(ValueError, match=match):
        env.reset(seed=1, options=options)
    env.step(np.full(8, 1 / 8, dtype=np.float32))
    assert env.unwrapped.tokens_used_total == before[2] + 1_000_000


def test_world_data_with_impossible_transfer_is_rejected(paper_world):
    data = paper_world.to_calibration()
    data["transfer"]["b2"][2][2] = 40.0  # more than the teacher allows
    with pytest.raises(ValueError, match="transfer cell"):
        gym.make("ReAD-Surrogate-v0", world=data)
