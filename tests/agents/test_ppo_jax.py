"""PPO compiled with JAX (agents.policies.ppo_jax): it learns, saves, loads, and plays through compare and the CLI."""

import dataclasses

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="ppo_jax needs JAX: pip install 'read-env[jax]'")
pytest.importorskip("gymnax", reason="ppo_jax needs gymnax: pip install 'read-env[jax]'")
pytest.importorskip("optax", reason="ppo_jax needs optax: pip install 'read-env[jax]'")

from agents.base import Setting  # noqa: E402
from agents.cli import main  # noqa: E402
from agents.harness.compare import CompareConfig, run_compare  # noqa: E402
from agents.harness.runner import run_episode  # noqa: E402
from agents.policies import ppo_jax  # noqa: E402
from agents.registry import make_agent  # noqa: E402
from read_env import DEFAULT_ENV_ID  # noqa: E402

TINY = ppo_jax.PPOConfig(env_id="ReAD-Surrogate-v1", total_timesteps=16 * 20 * 30, num_envs=16, num_minibatches=4, update_epochs=2,
                        hidden=(16,), learning_rate=3e-3, budgets=(20_000_000,))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo_jax")
    network, report = ppo_jax.train(TINY, out)
    return network, report, out / "model.npz"


def test_training_raises_the_return_of_the_episodes(trained):
    """30 updates of 16 episodes on random worlds: the last five updates' mean return beats the first five's."""
    _, report, _ = trained
    returns = np.array(report["episode_return"])
    assert returns.shape == (TINY.num_updates,) and np.isfinite(returns).all()
    assert returns[-5:].mean() > returns[:5].mean()
    assert report["steps"] == TINY.num_updates * TINY.batch_size and report["steps_per_second"] > 0


def test_the_trained_policy_beats_the_untrained_one(trained):
    network, _, _ = trained
    untrained = ppo_jax.init_network(jax.random.key(0), 33, 8, TINY)
    assert ppo_jax.evaluate(network, TINY, 256)["final_utility"] > ppo_jax.evaluate(untrained, TINY, 256)["final_utility"]


def test_save_load_round_trip(trained, tmp_path):
    network, _, path = trained
    loaded, config = ppo_jax.load(path)
    assert config == TINY
    assert set(loaded) == set(network) and all(np.array_equal(loaded[name], network[name]) for name in network)
    (tmp_path / "other.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError):
        ppo_jax.load(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="no ppo_jax model"):
        make_agent(f"ppo_jax:{tmp_path / 'missing.npz'}", Setting())


def test_the_agent_plays_the_numpy_environment_with_the_networks_mean_action(trained):
    network, _, path = trained
    episode, agent = run_episode(lambda setting: make_agent(f"ppo_jax:{path}", setting), "ReAD-Surrogate-v1", "math", seed=0)
    assert agent.action_mode == "logits" and len(episode.steps) == 20
    observation = {key: np.full(shape, 0.1) for key, shape in [("budget_left", 1), ("last_allocation", 8), ("last_gain", 8), ("profile", 8), ("requirement", 8)]}
    expected = np.clip(np.asarray(ppo_jax.action_mean(network, np.full(33, 0.1, np.float32))), -1, 1)
    np.testing.assert_allclose(agent.act(observation), expected, atol=1e-6)
    with pytest.raises(ValueError, match="capabilities"):
        make_agent(f"ppo_jax:{path}", Setting(capabilities=("math", "code")))


def test_compare_and_the_cli_take_it(trained, tmp_path, capsys):
    _, _, path = trained
    tables = run_compare(CompareConfig([f"ppo_jax:{path}", "uniform"], ["math"], [20_000_000], [0, 1], "ReAD-Surrogate-v1", out_dir=str(tmp_path / "cmp")), progress=False)
    assert f"ppo_jax:{path}" in {row["agent"] for row in tables["summary"]}
    out = tmp_path / "cli"
    assert main(["train", "--algo", "ppo_jax", "--env-id", "ReAD-Surrogate-v0", "--timesteps", "5120", "--budgets", "20M", "--out", str(out)]) == 0
    assert "saved" in capsys.readouterr().out and ppo_jax.load(out / "model.npz")[1].env_id == "ReAD-Surrogate-v0"


def test_it_trains_on_v2_the_default(tmp_path):
    """ReAD-Surrogate-v2: 30 updates raise the return as on v1; ``PPOConfig`` and ``train --algo ppo_jax`` train on it by default."""
    assert ppo_jax.PPOConfig().env_id == DEFAULT_ENV_ID == "ReAD-Surrogate-v2"
    _, report = ppo_jax.train(dataclasses.replace(TINY, env_id="ReAD-Surrogate-v2"), tmp_path / "v2")
    returns = np.array(report["episode_return"])
    assert np.isfinite(returns).all() and returns[-5:].mean() > returns[:5].mean()
    assert main(["train", "--algo", "ppo_jax", "--timesteps", "5120", "--budgets", "20M", "--out", str(tmp_path / "cli")]) == 0
    assert ppo_jax.load(tmp_path / "cli" / "model.npz")[1].env_id == "ReAD-Surrogate-v2"


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="less than one update"):
        dataclasses.replace(TINY, total_timesteps=10)
    with pytest.raises(ValueError, match="divide"):
        dataclasses.replace(TINY, num_minibatches=7)
