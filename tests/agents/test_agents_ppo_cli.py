"""A short PPO learn and evaluation through the runner; the read-env command line end to end."""

import json

import numpy as np
import pytest

from agents import make_agent, run_episode
from agents.cli import main, parse_budget, parse_tasks

stable_baselines3 = pytest.importorskip("stable_baselines3")


def test_short_ppo_learn_save_load_and_evaluate(tmp_path):
    from agents.policies.ppo import HELD_OUT_WORLD_SEED, train

    model = train(total_timesteps=256, out_dir=tmp_path, tensorboard=False, n_envs=2, hyperparams={"n_steps": 64, "batch_size": 64, "n_epochs": 2})
    assert (tmp_path / "model.zip").exists()
    direct, agent = run_episode(model, task="math", seed=0)  # an SB3 model plugs in without glue
    assert agent.action_mode == "logits" and len(direct.steps) == 20
    loaded, _ = run_episode(lambda s: make_agent(f"ppo:{tmp_path / 'model.zip'}", s), task="math", seed=0)
    np.testing.assert_allclose([s["allocation"] for s in loaded.steps], [s["allocation"] for s in direct.steps], atol=1e-6)
    held_out, _ = run_episode(model, task="chat_assistant", seed=1, env_kwargs={"world": "random", "world_seed": HELD_OUT_WORLD_SEED})
    assert np.isfinite(held_out.final_utility)


def test_cli_run_writes_history_and_tensorboard(tmp_path):
    assert main(["run", "--agent", "exp3", "--task", "math", "--budget", "2M", "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and {"reward", "utility", "allocation", "profile"} <= set(rows[0])
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "summary.json").read_text())["agent"] == "exp3"


def test_cli_compare_tiny(tmp_path, capsys):
    assert main(["compare", "--agents", "task_static,single", "--tasks", "math", "--budgets", "2M", "--seeds", "2", "--steps", "4", "--out", str(tmp_path), "--quiet"]) == 0
    assert "| single |" in capsys.readouterr().out
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "utility.png").exists()


def test_cli_train_tiny(tmp_path):
    assert main(["train", "--timesteps", "64", "--out", str(tmp_path), "--no-tensorboard", "--checkpoint-every", "0", "--quiet"]) == 0
    assert (tmp_path / "model.zip").exists()


def test_cli_train_on_a_fitted_world_file_at_its_budget(tmp_path):
    from read_env.surrogate.path_world import PathWorld

    world = tmp_path / "world.json"
    world.write_text(json.dumps(PathWorld.random(np.random.default_rng(3)).to_calibration()))
    out = tmp_path / "ppo"
    assert main(["train", "--env-id", "ReAD-Surrogate-v1", "--world", str(world), "--budgets", "1M", "--timesteps", "64", "--out", str(out),
                 "--no-tensorboard", "--checkpoint-every", "0", "--quiet"]) == 0
    assert (out / "model.zip").exists()
    from agents.policies.ppo import make_train_env

    venv = make_train_env(2, 0, world=str(world), budgets=[1_000_000], env_id="ReAD-Surrogate-v1")
    assert all(e.unwrapped.budget_tokens == 1_000_000 and e.unwrapped.world_spec == str(world) for e in venv.envs)


def test_cli_parsers():
    assert parse_budget("20M") == 20_000_000 and parse_budget("1.5B") == 1_500_000_000 and parse_budget("500k") == 500_000
    assert len(parse_tasks("all")) == 15 and parse_tasks("single,chat_assistant")[-1] == "chat_assistant"
    with pytest.raises(Exception, match="unknown tasks"):
        parse_tasks("nope")


def test_rl_zoo3_entry_matches_the_ppo_hyperparameters():
    from pathlib import Path

    import yaml

    from agents.policies.ppo import N_ENVS, PPO_HYPERPARAMS

    entry = yaml.safe_load((Path(__file__).resolve().parents[2] / "agents" / "hyperparams" / "ppo.yml").read_text())["ReAD-Surrogate-v0"]
    assert entry["n_envs"] == N_ENVS
    assert entry["env_kwargs"] == {"world": "random"}
    for key, value in PPO_HYPERPARAMS.items():
        if key == "policy_kwargs":
            assert eval(entry[key], {"dict": dict}) == value  # rl-zoo3 writes policy_kwargs as a Python expression
        else:
            assert entry[key] == value, key
