"""log-episodes: broad schedules, a resumable data set with a card, read back by fit-world's loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.base import Setting
from agents.harness import compare as compare_module
from agents.harness.compare import load_records
from agents.harness.episode_log import LogConfig, log_episodes
from agents.policies.schedules import FAMILIES, ScheduleAgent, draw_schedule
from read_env.episodes import load_episodes
from tests.agents.conftest import observation


@pytest.mark.parametrize("family", FAMILIES)
def test_schedules_are_allocations_of_their_family(family):
    rng = np.random.default_rng(0)
    for _ in range(20):
        schedule = draw_schedule(family, 8, 10, rng)
        assert schedule.shape == (10, 8) and np.allclose(schedule.sum(axis=1), 1.0) and (schedule >= 0).all()
        changes = int((np.abs(np.diff(schedule, axis=0)).sum(axis=1) > 0).sum())
        if family == "mixture":
            assert changes == 0
        else:
            assert changes <= (3 if family == "blocks" else 2)  # contiguous pieces (neighbours may repeat)
        if family == "blocks":
            assert set(np.unique(schedule)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="unknown schedule family"):
        draw_schedule("spiral", 8, 10, rng)


def test_a_seed_plays_the_same_schedule_on_every_task():
    plays = []
    for requirement in (np.eye(8)[0], np.eye(8)[5]):
        agent = ScheduleAgent(Setting(num_steps=4), seed=3, family="phases")
        first = observation()
        first["requirement"] = requirement.astype(np.float32)
        agent.reset(first)
        plays.append([agent.act(first) for _ in range(4)])
    assert np.array_equal(plays[0], plays[1])


def tiny(tmp_path, seeds=(0, 1), **kwargs):
    return LogConfig(str(tmp_path / "data"), "ReAD-Surrogate-v1", {}, ["math"], [1_000_000, 2_000_000], seeds, ["schedule_blocks", "random"], 3, name="tiny", **kwargs)


def test_log_episodes_resumes_without_duplicates_and_writes_a_card(tmp_path, monkeypatch):
    card = log_episodes(tiny(tmp_path), progress=False)
    # v1 has an oracle, so compare adds uniform, oracle and best_fixed: 5 schedules x 2 budgets x 2 seeds
    assert card["episodes"] == 20 and card["version"] == 1 and card["episodes_per_schedule"]["schedule_blocks"] == 4
    assert card["runs"][0]["commit"] and card["capabilities"][0] == "general_knowledge"
    path = tmp_path / "data" / "episodes.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:30])  # killed while writing the last episode
    calls = []
    original = compare_module._run_job
    monkeypatch.setattr(compare_module, "_run_job", lambda job: calls.append(job[:4]) or original(job))
    card = log_episodes(tiny(tmp_path), progress=False)
    assert len(calls) == 1 and card["episodes"] == 20 and card["version"] == 2
    assert len({record["key"] for record in load_records(tmp_path / "data")}) == 20
    card = log_episodes(tiny(tmp_path), progress=False)
    assert len(calls) == 1 and card["version"] == 2  # nothing left to log: no new version
    assert json.loads((tmp_path / "data" / "card.json").read_text())["episodes"] == 20
    assert "20 in `episodes.jsonl`" in (tmp_path / "data" / "CARD.md").read_text()
    episodes = load_episodes([tmp_path / "data"])
    assert len(episodes) == 20 and episodes[0].requirement is not None and episodes[0].final_utility is not None
    blocks = [e for e in episodes if e.schedule == "schedule_blocks/0"]
    assert len(blocks) == 2 and np.array_equal(blocks[0].allocations, blocks[1].allocations)  # one schedule, two budgets


def test_log_episodes_refuses_an_empty_grid(tmp_path):
    with pytest.raises(ValueError, match="at least one schedule"):
        log_episodes(tiny(tmp_path, seeds=()), progress=False)


def test_mini_episodes_keep_the_probe_standard_errors(tmp_path):
    student = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "pretrain_tokens": 20_000}
    kwargs = {"cache_dir": str(tmp_path / "cache"), "student": student, "probe_items": 12, "eval_items": 12, "run_dir": str(tmp_path / "env")}
    config = LogConfig(str(tmp_path / "data"), "ReAD-Mini-v0", kwargs, ["math"], [4_000], [0], ["schedule_mixture"], 2)
    card = log_episodes(config, progress=False)
    assert card["episodes"] == 2 and "run_dir" not in card["env_kwargs"]  # uniform is always played too
    episodes = load_episodes([tmp_path / "data" / "episodes.jsonl"])
    assert episodes[0].stderrs.shape == (2, 8) and episodes[0].probe_stderr is not None


def test_cli_logs_fits_and_the_world_runs(tmp_path, capsys):
    import gymnasium as gym

    from agents.cli import main

    data = str(tmp_path / "data")
    assert main(["log-episodes", "--env-id", "ReAD-Surrogate-v1", "--tasks", "math", "--budgets", "1M", "--seeds", "4", "--steps", "3",
                 "--schedules", "schedule_mixture,schedule_blocks", "--out", data, "--quiet"]) == 0
    assert "episodes in" in capsys.readouterr().out
    world = str(tmp_path / "world.json")
    assert main(["fit-world", data, "--model", "recency", "--holdout", "0.25", "-o", world]) == 0
    assert "held-out profile RMS" in capsys.readouterr().out and (tmp_path / "world_report" / "report.md").is_file()
    env = gym.make("ReAD-Fitted-v0", world=world)
    env.reset(seed=0)
    assert env.unwrapped.num_steps == 3


def test_the_library_logs_at_the_environments_own_budget_and_steps_without_a_warning(tmp_path):
    import warnings

    from read_env import MINI_V2_ID, episode_defaults

    assert LogConfig(str(tmp_path)).env_id == MINI_V2_ID  # real episodes by default, on the current miniature
    config = LogConfig(str(tmp_path / "data"), "ReAD-Surrogate-v2", tasks=["math"], seeds=[0], schedules=["uniform"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        card = log_episodes(config, progress=False)
    budget_tokens, num_steps = episode_defaults("ReAD-Surrogate-v2")
    assert card["num_steps"] == num_steps and set(card["episodes_per_budget"]) == {str(budget_tokens)}
    assert {len(record["allocations"]) for record in load_records(tmp_path / "data")} == {num_steps}
