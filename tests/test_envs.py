"""The environment suite every registered id passes (MiniGrid's tests/test_envs.py is the model)."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from tests.conftest import READ_ENV_IDS, assert_same, rollout


def test_registered_ids():
    assert "ReAD-Surrogate-v0" in READ_ENV_IDS


@pytest.mark.parametrize("env_id", READ_ENV_IDS)
def test_gymnasium_check_env_without_warnings(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    assert [str(warning.message) for warning in caught] == []


@pytest.mark.parametrize("env_id", READ_ENV_IDS)
def test_sb3_check_env_without_warnings(env_id):
    env = gym.make(env_id)  # Gymnasium itself notes that ReAD-Surrogate-v0 has a newer version (v0 is kept as published)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True)
    assert [str(warning.message) for warning in caught] == []


@pytest.mark.parametrize("env_id", ["ReAD-Surrogate-v0", "ReAD-Surrogate-v1"])
def test_only_the_version_notice_on_making_an_older_surrogate(env_id):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym.make(env_id)
    assert len(caught) == 1 and "out of date" in str(caught[0].message) and "`v2`" in str(caught[0].message)


@pytest.mark.parametrize("env_id", READ_ENV_IDS)
@pytest.mark.parametrize("kwargs", [{}, {"task": "random"}, {"task": "random", "world": "random"}])
def test_determinism_rollout(env_id, kwargs):
    if "world" in kwargs and env_id.startswith("ReAD-Fitted"):
        kwargs = {**kwargs, "world": "mini_v1_students"}  # a fitted environment's random world: its prior over students' worlds
    actions = np.random.default_rng(0).uniform(-1, 1, (65, 8)).astype(np.float32)
    first = rollout(gym.make(env_id, **kwargs), 7, actions)
    second = rollout(gym.make(env_id, **kwargs), 7, actions)
    assert_same(first, second)
    different = rollout(gym.make(env_id, **kwargs), 8, actions)
    assert not np.array_equal(first[1][0]["profile"], different[1][0]["profile"])


@pytest.mark.parametrize("env_id", READ_ENV_IDS)
def test_pickle_mid_episode_continues_identically(env_id):
    env = gym.make(env_id)
    env.reset(seed=3)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    action = np.linspace(-1, 1, 8, dtype=np.float32)
    assert_same(env.step(action), clone.step(action))


@pytest.mark.parametrize("env_id", READ_ENV_IDS)
def test_ansi_render_shows_every_capability(env_id):
    env = gym.make(env_id, render_mode="ansi")
    env.reset(seed=0)
    env.step(np.zeros(8, dtype=np.float32))
    text = env.render()
    assert isinstance(text, str)
    for name in env.unwrapped.capabilities:
        assert name in text
    base = env.unwrapped
    assert f"{int(base.step_tokens[0]):,}/{base.budget_tokens:,}" in text  # 1,000,000/20,000,000 for the surrogates


def test_registration_is_idempotent():
    import read_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_env.register_envs()
        read_env.register_envs()
    assert caught == []


def test_episode_spends_exact_budget_then_terminates():
    env = gym.make("ReAD-Surrogate-v0", budget_tokens=1_000_003, num_steps=7)
    observation, info = env.reset(seed=0)
    assert observation["budget_left"][0] == 1.0 and info["tokens_used_total"] == 0
    spent = []
    for step in range(7):
        observation, _, terminated, truncated, info = env.step(env.action_space.sample())
        spent.append(info["tokens_used"])
        assert terminated == (step == 6) and not truncated
    assert sum(spent) == info["tokens_used_total"] == 1_000_003
    assert max(spent) - min(spent) <= 1
    assert observation["budget_left"][0] == 0.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_observation_record_is_previous_step():
    env = gym.make("ReAD-Surrogate-v0")
    first, _ = env.reset(seed=1)
    np.testing.assert_array_equal(first["last_allocation"], 0)
    np.testing.assert_array_equal(first["last_gain"], 0)
    second, _, _, _, info = env.step(np.linspace(-1, 1, 8, dtype=np.float32))
    np.testing.assert_allclose(second["last_allocation"], info["allocation"], rtol=1e-6)
    np.testing.assert_allclose(second["last_gain"], second["profile"] - first["profile"], atol=1e-6)
    np.testing.assert_allclose(info["delta_profile"], second["last_gain"], atol=1e-6)


def test_every_registered_id_is_exported_and_in_env_ids():
    import read_env

    registered = sorted(env_id for env_id in gym.registry if env_id.startswith("ReAD"))
    assert sorted(read_env.ENV_IDS) == registered
    assert {getattr(read_env, name) for name in read_env.__all__ if name.endswith("_ID")} == set(registered)
    assert read_env.DEFAULT_ENV_ID == max(env_id for env_id in registered if env_id.startswith("ReAD-Surrogate-"))


def test_episode_defaults_are_each_environments_own_and_warn_nothing():
    import inspect

    from read_env import episode_defaults
    from read_env.allocation_env import AllocationEnv
    from read_env.fitted.world import FittedWorld
    from read_env.mini.env import DEFAULT_BUDGET_TOKENS, DEFAULT_NUM_STEPS, V1_DEFAULTS

    contract = inspect.signature(AllocationEnv.__init__).parameters
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no out-of-date notice for v0 ids either: nothing is made through gym.make
        for env_id in ("ReAD-Surrogate-v0", "ReAD-Surrogate-v1", "ReAD-Surrogate-v2"):
            assert episode_defaults(env_id) == (contract["budget_tokens"].default, contract["num_steps"].default)
        assert episode_defaults("ReAD-Mini-v0") == (DEFAULT_BUDGET_TOKENS, DEFAULT_NUM_STEPS)
        assert episode_defaults("ReAD-Mini-v1") == (V1_DEFAULTS["budget_tokens"], V1_DEFAULTS["num_steps"])
        assert episode_defaults("ReAD-Mini-v1", {"budget_tokens": 40_000}) == (40_000, V1_DEFAULTS["num_steps"])
        for env_id, world in (("ReAD-Fitted-v0", "default"), ("ReAD-Fitted-v1", "mini_v1")):  # the registered world's token scale and steps
            fitted = FittedWorld.resolve(world)
            assert episode_defaults(env_id) == (int(fitted.token_scale), fitted.fit["num_steps"])
        data = {**FittedWorld.resolve("mini_v1").to_data(), "token_scale": 123_000.0}
        data["fit"] = {**data["fit"], "num_steps": 5}
        assert episode_defaults("ReAD-Fitted-v1", {"world": data}) == (123_000, 5)  # a world of the caller's: its own
