"""The command line's output and its user errors: one line naming the value and the choices, exit status 2, nothing written."""

import json

import gymnasium as gym
import pytest

from agents.cli import main

SURROGATE_RUN = ["run", "--agent", "uniform", "--task", "math", "--budget", "2M", "--steps", "4", "--no-tensorboard"]


def status_and_stderr(argv, capsys):
    """``main(argv)``'s exit status (argparse's errors exit, the commands' return) and its stderr."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--task", "math_word_problem"], ["unknown task 'math_word_problem'", "(did you mean 'math_word_problems'?)", "chat"]),
        (["run", "--budget", ""], ["not a token budget: ''", "20M"]),
        (["run", "--budget", "0"], ["not a token budget: '0'", "positive"]),
        (["run", "--budget=-5M"], ["not a token budget: '-5M'"]),
        (["run", "--agent", "read_bandt"], ["unknown agent 'read_bandt'", "did you mean 'read_bandit'?", "uniform"]),
        (["run", "--agent", "ppo:nowhere.zip"], ["no saved policy at 'nowhere.zip'"]),
        (["run", "--env-id", "ReAD-Surogate-v2"], ["unknown environment id 'ReAD-Surogate-v2'", "(did you mean 'ReAD-Surrogate-v2'?)", "v0"]),
        (["run", "--env-kwarg", "budget=5"], ["'budget' (did you mean 'budget_tokens'?)", "num_steps"]),
        (["run", "--env-kwarg", "noise"], ["--env-kwarg 'noise' is not KEY=VALUE"]),
        (["run", "--steps", "0"], ["argument --steps: not a positive integer: '0'"]),
        (["compare", "--agents", "uniform,foo"], ["unknown agent 'foo'", "read_bandit"]),
        (["compare", "--tasks", "math,mth"], ["unknown task 'mth'", "did you mean 'math'?", "single"]),
        (["compare", "--seeds", "0"], ["not a positive integer: '0'"]),
        (["compare", "--agents", "uniform", "--agent-option", "read_bandit.warmup_steps=2"], ["'read_bandit'", "not among --agents"]),
        (["compare", "--env-kwarg", "wrold=\"paper\""], ["'wrold' (did you mean 'world'?)"]),
        (["log-episodes", "--schedules", "random,nope"], ["unknown agent 'nope'", "schedule_mixture"]),
        (["fit-world", "nowhere"], ["no history or trajectory at nowhere"]),
        (["train", "--world", "nowhere.json"], ["world file 'nowhere.json' does not exist"]),
        (["train", "--env-id", "ReAD-Fitted-v1"], ["world must be a shipped world", "'random'"]),
        (["demo", "--task", "nope"], ["unknown task 'nope'"]),
        (["demo", "--agents", "read_bandit,unifrm"], ["unknown agent 'unifrm'", "did you mean 'uniform'?"]),
    ],
)
def test_a_user_mistake_is_one_line_with_status_2_and_writes_nothing(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if argv[0] in ("log-episodes",):
        argv = [*argv, "--out", "data"]
    status, stderr = status_and_stderr(argv, capsys)
    assert status == 2
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith(f"read-env {argv[0]}: error: "), stderr
    assert all(text in stderr for text in expected), stderr
    assert list(tmp_path.iterdir()) == []  # no folder, no file


def test_fit_world_names_an_input_without_episodes(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status, stderr = status_and_stderr(["fit-world", str(tmp_path / "empty"), "-o", str(tmp_path / "world.json")], capsys)
    assert status == 2 and stderr.strip() == f"read-env fit-world: error: histories: {tmp_path / 'empty'} holds no history.jsonl"
    assert not (tmp_path / "world.json").exists()


def test_an_episode_that_fails_before_its_first_step_leaves_no_folder(tmp_path, monkeypatch):
    import agents.registry

    def broken(*args, **kwargs):
        raise RuntimeError("the agent could not be built")

    monkeypatch.setattr(agents.registry, "make_agent", broken)
    with pytest.raises(RuntimeError, match="could not be built"):  # an internal error still shows its traceback
        main([*SURROGATE_RUN, "--out", str(tmp_path / "runs" / "run")])
    assert list(tmp_path.iterdir()) == []


def test_run_prints_a_table_and_json_on_request(tmp_path, capsys):
    assert main([*SURROGATE_RUN, "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.strip()}
    assert rows["points"] == ["start", "uniform"] and len(rows["math"]) == 2 and rows["tokens"] == ["2,000,000"]
    summary = json.loads((tmp_path / "run-000" / "summary.json").read_text())
    assert float(rows["task"][1]) == pytest.approx(summary["initial_utility_points"], abs=0.01)  # "task utility START FINAL"
    assert float(rows["task"][2]) == pytest.approx(summary["final_utility_points"], abs=0.01)
    assert len(table.splitlines()) < 20
    assert main([*SURROGATE_RUN, "--out", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((tmp_path / "run-001" / "summary.json").read_text())


def test_compare_writes_one_folder_per_environment_and_refuses_to_mix_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sweep = ["compare", "--agents", "task_static", "--tasks", "math", "--budgets", "2M", "--seeds", "2", "--steps", "3", "--quiet"]
    for env_id in ("ReAD-Surrogate-v2", "ReAD-Surrogate-v1"):
        assert main([*sweep, "--env-id", env_id]) == 0
    folders = tmp_path / "runs" / "compare"
    assert sorted(path.name for path in folders.iterdir()) == ["ReAD-Surrogate-v1", "ReAD-Surrogate-v2"]
    v2 = folders / "ReAD-Surrogate-v2"
    before = {name: (v2 / name).read_text() for name in ("episodes.jsonl", "config.json", "results.md")}
    status, stderr = status_and_stderr([*sweep, "--env-kwarg", "noise=false"], capsys)
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert "runs/compare/ReAD-Surrogate-v2 holds episodes of ReAD-Surrogate-v2 with {} and 3 steps, not of" in stderr
    assert {name: (v2 / name).read_text() for name in before} == before  # its tables untouched
    assert main([*sweep, "--json"]) == 0  # the same command again: resumed, nothing new to play
    assert (v2 / "episodes.jsonl").read_text() == before["episodes.jsonl"]
    tables = json.loads(capsys.readouterr().out)
    assert {row["agent"] for row in tables["summary"]} == {"uniform", "task_static", "oracle", "best_fixed"}


def test_fit_world_names_its_outputs_by_kind_and_worlds_refuse_the_wrong_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["log-episodes", "--env-id", "ReAD-Surrogate-v1", "--tasks", "math", "--budgets", "1M", "--seeds", "4", "--steps", "3",
                 "--schedules", "schedule_mixture,schedule_blocks", "--out", "data", "--quiet"]) == 0
    assert main(["fit-world", "data"]) == 0
    assert main(["fit-world", "data", "--model", "recency", "--holdout", "0.25"]) == 0
    calibrated, fitted = (json.loads((tmp_path / name).read_text()) for name in ("world.json", "fitted_world.json"))
    assert (calibrated["format"], calibrated["env_id"]) == ("read-env-calibrated-world/1", "ReAD-Surrogate-v0")
    assert (fitted["format"], fitted["env_id"]) == ("read-env-fitted-world/1", "ReAD-Fitted-v1")
    gym.make("ReAD-Surrogate-v0", world="world.json").reset(seed=0)
    gym.make("ReAD-Fitted-v1", world="fitted_world.json").reset(seed=0)
    with pytest.raises(ValueError, match="not a calibrated world: .* is for ReAD-Fitted-v1, not for ReAD-Surrogate-v0/v1/v2"):
        gym.make("ReAD-Surrogate-v2", world="fitted_world.json")
    with pytest.raises(ValueError, match="not a fitted world: .* is for ReAD-Surrogate-v0, not for ReAD-Fitted-v0/v1"):
        gym.make("ReAD-Fitted-v1", world="world.json")
    status, stderr = status_and_stderr([*"run --env-id ReAD-Surrogate-v2 --env-kwarg world=fitted_world.json --out runs".split()], capsys)
    assert status == 2 and "is for ReAD-Fitted-v1, not for ReAD-Surrogate-v0/v1/v2" in stderr and not (tmp_path / "runs").exists()


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback(tmp_path):
    """``read-env run --json | head -c 1``: the command stops quietly with 141 (128 + SIGPIPE), its files written."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "agents.cli", "run", "--agent", "uniform", "--budget", "2M", "--steps", "3", "--no-tensorboard",
               "--json", "--out", str(tmp_path)]
    process = subprocess.Popen(command, cwd=root, env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before the command writes its record
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141 and "Traceback" not in stderr, stderr
    assert (tmp_path / "run-000" / "summary.json").is_file()
