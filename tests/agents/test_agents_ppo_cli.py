"""A short PPO learn and evaluation through the runner; the read-env command line end to end."""

import json
import warnings

import gymnasium as gym
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


def test_cli_run_writes_history_and_tensorboard_into_a_fresh_folder_per_run(tmp_path, capsys):
    for _ in range(2):
        assert main(["run", "--agent", "exp3", "--task", "math", "--budget", "2M", "--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run-000", "run-001"]
    for run in tmp_path.iterdir():
        rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        assert len(rows) == 20 and {"reward", "utility", "allocation", "profile"} <= set(rows[0])
        assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1  # one run's TensorBoard file, not two
    summary = json.loads((tmp_path / "run-001" / "summary.json").read_text())
    assert summary["agent"] == "exp3"
    assert summary["final_utility_points"] == pytest.approx(100 * rows[-1]["final_utility"], abs=1e-3)  # points, as the bar shows


def test_cli_defaults_to_the_default_id_without_a_warning(tmp_path, capsys):
    from agents.cli import build_parser

    from read_env import DEFAULT_ENV_ID

    newest = max(spec.id for spec in gym.registry.values() if spec.id.startswith("ReAD-Surrogate-"))
    assert DEFAULT_ENV_ID == newest == "ReAD-Surrogate-v2"
    for command in (["run"], ["compare"], ["train"]):
        assert build_parser().parse_args(command).env_id == DEFAULT_ENV_ID
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["run", "--agent", "uniform", "--task", "math", "--out", str(tmp_path), "--no-tensorboard", "--json"]) == 0
    said = capsys.readouterr()
    assert said.err.startswith("run on ReAD-Surrogate-v2: budget 20M tokens, 20 steps per episode (budget and steps: the environment's own)\n")
    assert json.loads(said.out)["budget_tokens"] == 20_000_000  # stdout: the record alone


def test_library_defaults_use_the_default_id_without_a_warning(tmp_path):
    from agents.base import Setting
    from agents.harness.compare import CompareConfig, run_compare
    from agents.policies.ppo import train

    from read_env import DEFAULT_ENV_ID, episode_defaults

    budget_tokens, num_steps = episode_defaults(DEFAULT_ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        setting = Setting()
        assert (setting.env_id, setting.budget_tokens, setting.num_steps) == (DEFAULT_ENV_ID, budget_tokens, num_steps)
        episode, agent = run_episode(lambda s: make_agent("uniform", s))
        assert agent.setting == setting and (episode.budget_tokens, len(episode.steps)) == (budget_tokens, num_steps)
        run_compare(CompareConfig(["uniform"], ["math"], None, [0], out_dir=str(tmp_path / "compare")), progress=False)
        written = json.loads((tmp_path / "compare" / "config.json").read_text())
        assert written["budgets"] == [budget_tokens]
        assert written["env"] == {"env_id": DEFAULT_ENV_ID, "env_kwargs": {}, "num_steps": num_steps}
        tiny = {"n_steps": 64, "batch_size": 64, "n_epochs": 1}
        model = train(total_timesteps=64, out_dir=tmp_path / "ppo", tensorboard=False, n_envs=1, hyperparams=tiny)
        assert model.get_env().envs[0].unwrapped.spec.id == DEFAULT_ENV_ID


def test_cli_sweeps_default_to_the_environments_own_budget_and_steps(tmp_path, capsys):
    sweep = ["compare", "--env-id", "ReAD-Fitted-v1", "--agents", "task_static", "--tasks", "math", "--seeds", "1", "--quiet"]
    assert main([*sweep, "--out", str(tmp_path / "own")]) == 0
    written = json.loads((tmp_path / "own" / "config.json").read_text())
    assert (written["budgets"], written["env"]["num_steps"]) == ([80_000], 8)  # its world's, fitted to ReAD-Mini-v1's episodes
    said = capsys.readouterr().err
    assert said.startswith("compare on ReAD-Fitted-v1: budget 80k tokens, 8 steps per episode (budget and steps: the environment's own)\n")
    assert main([*sweep, "--budgets", "40k,80k", "--out", str(tmp_path / "given")]) == 0
    said = capsys.readouterr().err
    assert said.startswith("compare on ReAD-Fitted-v1: budgets 40k, 80k tokens, 8 steps per episode (steps: the environment's own)\n")


def test_v0_still_tells_its_users_it_is_out_of_date():
    import gymnasium as gym

    with pytest.warns(DeprecationWarning, match="ReAD-Surrogate-v0 is out of date"):
        gym.make("ReAD-Surrogate-v0")


def test_cli_help_shows_every_option_with_a_description_and_its_default():
    from agents.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no description"
        text = sub.format_help()
        if name in ("demo", "run", "compare", "train"):
            assert "(default:" in text
    assert "150M" in commands["run"].format_help() and "(default: 6000)" in commands["demo"].format_help()


def test_cli_compare_tiny(tmp_path, capsys):
    assert main(["compare", "--agents", "task_static,single", "--tasks", "math", "--budgets", "2M", "--seeds", "2", "--steps", "4", "--out", str(tmp_path), "--quiet"]) == 0
    assert "| single |" in capsys.readouterr().out
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "utility.png").exists()


def test_cli_train_tiny(tmp_path):
    assert main(["train", "--timesteps", "64", "--out", str(tmp_path), "--no-tensorboard", "--checkpoint-every", "0", "--quiet"]) == 0
    assert (tmp_path / "model.zip").exists()


def test_cli_train_on_a_fitted_world_file_at_its_budget(tmp_path):
    from read_env.surrogate.path_dependent_world import PathWorld

    world = tmp_path / "world.json"
    world.write_text(json.dumps(PathWorld.random(np.random.default_rng(3)).to_calibration()))
    out = tmp_path / "ppo"
    assert main(["train", "--env-id", "ReAD-Surrogate-v1", "--world", str(world), "--budgets", "1M", "--timesteps", "64", "--out", str(out),
                 "--no-tensorboard", "--checkpoint-every", "0", "--quiet"]) == 0
    assert (out / "model.zip").exists()
    from agents.policies.ppo import make_train_env

    venv = make_train_env(2, 0, world=str(world), budgets=[1_000_000], env_id="ReAD-Surrogate-v1")
    assert all(e.unwrapped.budget_tokens == 1_000_000 and e.unwrapped.world_spec == str(world) for e in venv.envs)
    other = tmp_path / "other.json"
    other.write_text(json.dumps(PathWorld.random(np.random.default_rng(4)).to_calibration()))
    venv = make_train_env(4, 0, world=f"{world},{other}", budgets=[1_000_000], env_id="ReAD-Surrogate-v1")
    assert [e.unwrapped.world_spec for e in venv.envs] == [str(world), str(other)] * 2  # a list of worlds spread evenly
    with pytest.raises(ValueError, match="multiple of 2"):
        make_train_env(3, 0, world=f"{world},{other}", budgets=[1_000_000], env_id="ReAD-Surrogate-v1")


def test_cli_train_passes_steps_and_env_kwargs_to_every_training_env(tmp_path, monkeypatch, capsys):
    import agents.policies.ppo as ppo

    built = []
    original = ppo.make_train_env
    monkeypatch.setattr(ppo, "make_train_env", lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    out = tmp_path / "ppo"
    assert main(["train", "--env-id", "ReAD-Surrogate-v1", "--budgets", "1M", "--timesteps", "64", "--steps", "8", "--env-kwarg", "noise=false",
                 "--out", str(out), "--no-tensorboard", "--checkpoint-every", "0", "--quiet"]) == 0
    assert all(e.unwrapped.num_steps == 8 and e.unwrapped.noise is False for e in built[0].envs)
    capsys.readouterr()
    assert main(["train", "--algo", "ppo_jax", "--env-kwarg", "noise=false", "--out", str(out)]) == 2
    assert "read-env train: error: train --algo ppo_jax takes no --env-kwarg" in capsys.readouterr().err


def test_cli_parsers():
    assert parse_budget("20M") == 20_000_000 and parse_budget("1.5B") == 1_500_000_000 and parse_budget("500k") == 500_000
    assert len(parse_tasks("all")) == 15 and parse_tasks("single,chat_assistant")[-1] == "chat_assistant"
    with pytest.raises(Exception, match="unknown task 'nope'"):
        parse_tasks("math,nope")


def test_rl_zoo3_entry_matches_the_ppo_hyperparameters():
    from pathlib import Path

    import yaml

    from agents.policies.ppo import N_ENVS, PPO_HYPERPARAMS
    from read_env import DEFAULT_ENV_ID

    entry = yaml.safe_load((Path(__file__).resolve().parents[2] / "agents" / "hyperparams" / "ppo.yml").read_text())[DEFAULT_ENV_ID]
    assert entry["n_envs"] == N_ENVS
    assert entry["env_kwargs"] == {"world": "random"}
    for key, value in PPO_HYPERPARAMS.items():
        if key == "policy_kwargs":
            assert eval(entry[key], {"dict": dict}) == value  # rl-zoo3 writes policy_kwargs as a Python expression
        else:
            assert entry[key] == value, key
