"""The main job's code path (read-env demo) on tiny models built from configs."""

import json
import os
import warnings

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_demo_writes_summary_plot_histories_and_tensorboard(tmp_path, monkeypatch, capsys):
    import agents.harness.runner as runner
    from agents.demo import DemoConfig, run_demo
    from read_env.distill.assets import build_tiny_llama

    teacher = build_tiny_llama(tmp_path / "teacher", num_layers=2, seed=0)
    student = build_tiny_llama(tmp_path / "student", num_layers=1, seed=1, tokenizer=teacher)
    original = runner.run_episode

    def with_tiny_models(factory, env_id, task, budget, steps, seed, env_kwargs, **kwargs):
        options = {"use_banks": False, "probe_items": 2, "eval_items": 1, "max_new_tokens": 8, "eval_max_new_tokens": 8, "probe_max_new_tokens": 6,
                   "cache": str(tmp_path / "cache")}
        env_kwargs = {**env_kwargs, "teacher": str(teacher), "student": str(student), "distiller_config": {**env_kwargs["distiller_config"], **options}}
        return original(factory, env_id, task, budget, steps, seed, env_kwargs, **kwargs)

    monkeypatch.setattr(runner, "run_episode", with_tiny_models)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_demo(DemoConfig(budget_tokens=600, num_steps=3, out=str(tmp_path / "demo"), device="cpu"))
    assert not [str(w.message) for w in caught if "out of date" in str(w.message)]  # the main job prints no upgrade notice
    out = tmp_path / "demo" / "run-000"
    assert summary["run_dir"] == str(out)
    assert set(summary["agents"]) == {"read_bandit", "uniform"}
    for name in ("read_bandit", "uniform"):
        assert len(summary["agents"][name]["allocations"]) == 3
        assert len((out / name / "history.jsonl").read_text().splitlines()) == 3
        assert any((out / "tb" / name).iterdir())
    assert (out / "demo.png").stat().st_size > 0
    assert json.loads((out / "summary.json").read_text())["capabilities"] == summary["capabilities"]
    assert "task utility" in capsys.readouterr().out
    env_dir = out / "env"  # both agents' episodes, in order; the bandit's profiling left no scratch episode
    assert sorted(path.name for path in env_dir.iterdir() if not path.name.startswith("probe_references")) == ["episode-0000", "episode-0001"]
    for episode in env_dir.glob("episode-*"):
        assert sorted(path.name for path in episode.iterdir()) == ["final", "history.jsonl", "ledger.jsonl"]  # no optimizer state left
        assert (episode / "final" / "adapter_config.json").is_file()  # the demo trains LoRA adapters: the student's weights are not copied
        assert not list((episode / "final").glob("model*.safetensors"))
    (pool,) = (tmp_path / "cache" / "pools").iterdir()  # the teacher's answers, in the automatic pool beside the models
    assert json.loads((pool / "card.json").read_text())["rows"] > 0
    run_demo(DemoConfig(budget_tokens=600, num_steps=3, out=str(tmp_path / "demo"), device="cpu", agents=("uniform",)))
    assert sorted(path.name for path in (tmp_path / "demo").iterdir()) == ["run-000", "run-001"]  # a rerun gets a fresh run
