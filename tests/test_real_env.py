"""ReAD-v0 on tiny models built from configs: the contract, exact budgets, runs that survive."""

from __future__ import annotations

import json
import os
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from read_env.real_env import read_history
from tests.conftest import kill_mid_episode

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FAST = {
    "lr": 1e-3,
    "max_new_tokens": 12,
    "probe_items": 3,
    "probe_max_new_tokens": 6,
    "eval_items": 2,
    "eval_max_new_tokens": 8,
    "use_banks": False,
    "batch_size": 4,
    "micro_batch": 4,
    "gen_batch_size": 8,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from read_env.distill.assets import build_tiny_llama

    root = tmp_path_factory.mktemp("tiny-models")
    teacher = build_tiny_llama(root / "teacher", num_layers=2, seed=0)
    student = build_tiny_llama(root / "student", num_layers=1, seed=1, tokenizer=teacher)
    return {"teacher": str(teacher), "student": str(student)}


def make(tiny, run_dir, **kwargs):
    options = {**FAST, **kwargs.pop("distiller_options", {})}
    defaults = {"device": "cpu", "budget_tokens": 1200, "num_steps": 3, "task": "math_word_problems"}
    return gym.make("ReAD-v0", teacher=tiny["teacher"], student=tiny["student"], run_dir=str(run_dir), distiller_options=options, **{**defaults, **kwargs})


def run_episode(env, seed=0):
    observation, info = env.reset(seed=seed)
    infos, terminated, truncated = [], False, False
    action = np.linspace(-1, 1, 8, dtype=np.float32)
    while not (terminated or truncated):
        observation, reward, terminated, truncated, info = env.step(action)
        infos.append(info)
    return infos


def test_registered_nondeterministic():
    assert gym.spec("ReAD-v0").nondeterministic


def test_check_env_on_a_tiny_configuration(tiny, tmp_path):
    env = make(tiny, tmp_path / "runs", budget_tokens=600, num_steps=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("objective,lora", [("sft", False), ("sft", True), ("kd", False), ("kd", True)])
def test_whole_episode_spends_exactly_the_budget(tiny, tmp_path, objective, lora):
    env = make(tiny, tmp_path / "runs", objective=objective, lora=lora)
    infos = run_episode(env)
    assert [info["tokens_used"] for info in infos] == [400, 400, 400]
    assert all(not info.get("error") for info in infos)
    ledger = env.unwrapped.distiller.ledger
    assert ledger.total_allotted == 1200
    assert ledger.total_spent + ledger.carry == 1200
    assert sum(info["tokens_spent"] for info in infos) == ledger.total_spent <= 1200
    for info in infos:
        assert sum(info["tokens_allotted"]) == info["tokens_used"]
        assert info["tokens_generated"] + info["tokens_trained"] == info["tokens_spent"]
        assert 0 <= info["utility"] <= 1 and (info["probe_stderr"] >= 0).all()
        assert set(info["seconds"]) >= {"generation", "training", "probe"}
    assert infos[-1]["utility_measured"]


def test_history_records_every_step_with_reward_components(tiny, tmp_path):
    env = make(tiny, tmp_path / "runs")
    infos = run_episode(env)
    records = read_history(env.unwrapped.episode_dir)
    assert [record["step"] for record in records] == [0, 1, 2, 3]
    assert records[0]["config"]["budget_tokens"] == 1200
    for record, info in zip(records[1:], infos):
        assert record["reward"] == pytest.approx(record["gain"] - 0.5 * record["spillover"] - 0.01 * record["cost"])
        assert record["tokens_used_total"] == info["tokens_used_total"]
    assert records[-1]["terminated"]
    assert [path.name for path in env.unwrapped.episode_dir.glob("checkpoint-*")] == ["checkpoint-3"]


def test_unrecoverable_error_truncates_and_keeps_the_run_consistent(tiny, tmp_path, monkeypatch):
    env = make(tiny, tmp_path / "runs", num_steps=4, budget_tokens=1600)
    env.reset(seed=0)
    env.step(np.zeros(8, dtype=np.float32))
    distiller = env.unwrapped.distiller

    def broken_probe():
        raise RuntimeError("probe server fell over")

    original_distill = distiller.distill
    monkeypatch.setattr(distiller, "distill", lambda tokens, progress: (original_distill(tokens, progress), broken_probe()))
    observation, reward, terminated, truncated, info = env.step(np.zeros(8, dtype=np.float32))
    assert truncated and not terminated and "probe server fell over" in info["error"]
    assert len(distiller.ledger) == 1  # the failed step's tokens were rolled back
    assert read_history(env.unwrapped.episode_dir)[-1]["truncated"]


CHILD = """
import sys, numpy as np, gymnasium as gym, read_env, json
teacher, student, run_dir, options = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
env = gym.make("ReAD-v0", teacher=teacher, student=student, run_dir=run_dir, device="cpu", budget_tokens=3000, num_steps=6, distiller_options=options)
env.reset(seed=0)
for _ in range(6):
    env.step(np.linspace(-1, 1, 8, dtype=np.float32))
"""


def test_resume_after_kill_loses_and_double_counts_no_token(tiny, tmp_path):
    reference = make(tiny, tmp_path / "reference", budget_tokens=3000, num_steps=6)
    run_episode(reference)
    expected = reference.unwrapped.distiller.ledger.entries

    run_dir = tmp_path / "killed"
    command = [sys.executable, "-c", CHILD, tiny["teacher"], tiny["student"], str(run_dir), json.dumps(FAST)]
    committed = kill_mid_episode(command, {**os.environ, "HF_HUB_OFFLINE": "1"}, run_dir / "episode-0000", 6)

    env = make(tiny, run_dir, budget_tokens=3000, num_steps=6)
    observation, info = env.reset(seed=123)
    assert info["resumed"] and info["step"] == committed
    assert info["tokens_used_total"] == committed * 500
    assert observation["budget_left"][0] == pytest.approx(1 - committed / 6)
    steps = 0
    terminated = False
    while not terminated:
        *_, terminated, _, info = env.step(np.linspace(-1, 1, 8, dtype=np.float32))
        steps += 1
    assert steps == 6 - committed
    ledger = env.unwrapped.distiller.ledger
    assert [entry.step for entry in ledger.entries] == list(range(6))
    assert ledger.total_allotted == 3000 and ledger.total_spent + ledger.carry == 3000
    assert [(e.allotted, e.generated, e.trained) for e in ledger.entries] == [(e.allotted, e.generated, e.trained) for e in expected]
    assert [record["step"] for record in read_history(run_dir / "episode-0000")] == list(range(7))


def test_resume_refuses_a_run_folder_of_another_configuration(tiny, tmp_path):
    env = make(tiny, tmp_path / "runs")
    env.reset(seed=0)
    env.step(np.zeros(8, dtype=np.float32))
    other = make(tiny, tmp_path / "runs", budget_tokens=900)
    with pytest.raises(ValueError, match="another configuration"):
        other.reset()


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"objective": "rl"}, ValueError, "objective"),
        ({"teacher": "/no/such/teacher"}, FileNotFoundError, "/no/such/teacher"),
        ({"utility_every": -1}, ValueError, "utility_every"),
        ({"budget_tokens": 0}, ValueError, "budget_tokens"),
    ],
)
def test_bad_configuration(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make("ReAD-v0", run_dir=str(tmp_path), **kwargs)
