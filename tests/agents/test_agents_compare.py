"""compare on a tiny grid writes its tables and plots, and resumes instead of starting over."""

import csv
import json

import agents.harness.compare as compare_module
from agents.harness.compare import CompareConfig, load_records, run_compare

FAST = {"read_bandit": {"refit_steps": 5, "batch_size": 8}}


def config(out, seeds=(0, 1)):
    # ReAD-Surrogate-v0 by name: task-static spends nothing off target there (its requirement is the card's weights)
    return CompareConfig(["task_static", "read_bandit"], ["math", "chat_assistant"], [2_000_000], list(seeds), "ReAD-Surrogate-v0",
                         out_dir=str(out), num_steps=5, agent_overrides=FAST)


def test_compare_tiny_grid_writes_table_and_plots(tmp_path):
    tables = run_compare(config(tmp_path), progress=False)
    for name in ("summary.csv", "per_task.csv", "results.md", "utility.png", "allocation.png", "profile.png", "episodes.jsonl"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert {r["agent"] for r in rows} == {"uniform", "task_static", "read_bandit", "oracle", "best_fixed"}  # uniform, oracle, best fixed added
    uniform = next(r for r in tables["summary"] if r["agent"] == "uniform")
    assert uniform["diff_vs_uniform"] == 0.0 and uniform["gap_closed"] == 0.0
    oracle = next(r for r in tables["summary"] if r["agent"] == "oracle")
    assert oracle["regret"] == 0.0
    static = next(r for r in tables["summary"] if r["agent"] == "task_static")
    assert static["wasted_budget"] == 0.0 and static["ci95_low"] <= static["diff_vs_uniform"] <= static["ci95_high"]
    assert static["diff_vs_task_static"] == 0.0
    bandit = next(r for r in tables["summary"] if r["agent"] == "read_bandit")
    assert bandit["task_static_ci95_low"] <= bandit["diff_vs_task_static"] <= bandit["task_static_ci95_high"]
    best_fixed = next(r for r in tables["summary"] if r["agent"] == "best_fixed")
    assert best_fixed["utility"] <= oracle["utility"] + 1e-9
    assert "| read_bandit |" in (tmp_path / "results.md").read_text()


def test_interrupted_compare_resumes(tmp_path, monkeypatch):
    run_compare(config(tmp_path), progress=False)
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 20  # 5 agents (uniform, oracle and best fixed added) x 2 tasks x 2 seeds
    (tmp_path / "episodes.jsonl").write_text("\n".join(lines[:10]) + "\n" + lines[10][:25])  # killed mid-write
    calls = []
    original = compare_module._run_job
    monkeypatch.setattr(compare_module, "_run_job", lambda job: calls.append(job[:4]) or original(job))
    run_compare(config(tmp_path), progress=False)
    assert len(calls) == 10
    records = load_records(tmp_path)
    assert len({r["key"] for r in records}) == 20
    calls.clear()
    run_compare(config(tmp_path, seeds=(0, 1, 2)), progress=False)  # a bigger grid only runs the new seed
    assert len(calls) == 10 and all(job[3] == 2 for job in calls)


def test_episode_metrics_spillover_and_waste():
    record = {"requirement": [1, 0, 0], "initial_profile": [0.1, 0.5, 0.5], "final_profile": [0.2, 0.48, 0.52],
              "allocations": [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], "tokens": [10, 30], "final_utility": 0.2, "initial_utility": 0.1, "budget_tokens": 40}
    metrics = compare_module.episode_metrics(record)
    assert abs(metrics["offtarget_change"] - 0.0) < 1e-9
    assert metrics["negative_transfer_rate"] == 0.5
    assert abs(metrics["wasted_budget"] - 5 / 40) < 1e-12
    json.dumps(metrics)


def test_truncated_episodes_are_reported_and_not_recorded(tmp_path, monkeypatch, capsys):
    original = compare_module._run_job

    def failing_bandit(job):
        record = original(job)
        if job[0] == "read_bandit":
            record["extra"]["truncated"] = "CheckpointError: disk full"
        return record

    monkeypatch.setattr(compare_module, "_run_job", failing_bandit)
    run_compare(config(tmp_path), progress=False)
    assert {r["agent"] for r in load_records(tmp_path)} == {"uniform", "task_static", "oracle", "best_fixed"}
    assert capsys.readouterr().err.count("was truncated and is not recorded: CheckpointError: disk full") == 4
