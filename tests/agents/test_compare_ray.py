"""compare on Ray (a local Ray started here): the same records as the local backend, resumable, through the CLI."""

import json
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import ray  # the [ray] extra, part of [test]

from agents.cli import main
from agents.harness.compare import CompareConfig, load_records, run_compare
from read_env.distill.env import read_history


def grid(out, backend="local"):
    return CompareConfig(["task_static", "single"], ["math", "chat_assistant"], [2_000_000], [0, 1], out_dir=str(out), num_steps=5, backend=backend)


def without_timing(records):
    return sorted((json.dumps({k: v for k, v in record.items() if k != "wall_time_s"}, sort_keys=True) for record in records))


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_backend_gives_the_local_results_and_resumes_a_killed_sweep(tmp_path, local_ray):
    run_compare(grid(tmp_path / "local"), progress=False)
    expected = load_records(tmp_path / "local")
    lines = (tmp_path / "local" / "episodes.jsonl").read_text().splitlines()
    killed = tmp_path / "ray"
    killed.mkdir()
    (killed / "episodes.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:30])  # the driver died mid-write
    run_compare(grid(killed, backend="ray"), progress=False)
    records = load_records(killed)
    assert len(records) == len(expected) == 20  # 5 agents x 2 tasks x 2 seeds; the 5 finished ones not rerun
    assert records[:5] == expected[:5]
    assert without_timing(records) == without_timing(expected)


def test_compare_cli_on_ray_shows_progress(tmp_path, local_ray, capsys):
    assert main(["compare", "--backend", "ray", "--gpus-per-episode", "0", "--agents", "task_static", "--tasks", "math",
                 "--budgets", "2M", "--seeds", "1", "--steps", "3", "--out", str(tmp_path)]) == 0
    assert len(load_records(tmp_path)) == 4  # uniform, task_static, oracle, best_fixed
    assert "compare: 100%" in capsys.readouterr().err


def test_real_episodes_on_ray_each_get_their_own_run_folder(tmp_path, local_ray, tiny_models):
    options = {"use_banks": False, "probe_items": 2, "eval_items": 1, "max_new_tokens": 8, "eval_max_new_tokens": 8, "probe_max_new_tokens": 6}
    env_kwargs = {"teacher": tiny_models["teacher"], "student": tiny_models["student"], "device": "cpu", "progress": False, "distiller_config": options}
    config = CompareConfig(["uniform"], ["math"], [600], [0, 1], env_id="ReAD-v0", env_kwargs=env_kwargs, num_steps=2, out_dir=str(tmp_path), backend="ray")
    run_compare(config, progress=False)
    assert sorted(path.name for path in (tmp_path / "env").iterdir()) == ["uniform-math-600-0", "uniform-math-600-1"]
    for seed in (0, 1):
        episodes = list((tmp_path / "env" / f"uniform-math-600-{seed}").glob("episode-*"))
        assert len(episodes) == 1 and json.loads((episodes[0] / "history.jsonl").read_text().splitlines()[-1])["tokens_used_total"] == 600
    assert [record["tokens"] for record in load_records(tmp_path)] == [[300, 300], [300, 300]]
    stale = tmp_path / "env" / "uniform-math-600-2" / "episode-0000"
    stale.mkdir(parents=True)  # an episode killed before its reset was committed: nothing to resume
    run_compare(CompareConfig(["uniform"], ["math"], [600], [2], env_id="ReAD-v0", env_kwargs=env_kwargs, num_steps=2, out_dir=str(tmp_path), backend="ray"),
                progress=False)
    assert sorted(path.name for path in stale.parent.glob("episode-*")) == ["episode-0000", "episode-0001"]  # run from its start beside it
    assert len(read_history(stale.parent / "episode-0001")) == 3


def test_a_ray_actor_killed_mid_episode_is_restarted_and_resumes_to_the_uninterrupted_record(tmp_path, local_ray, tiny_models, one_torch_thread):
    from tests.agents.test_compare_resume import BUDGET, STEPS, sweep, without_timing

    run_compare(sweep(tiny_models, tmp_path / "local"), progress=False)
    history = tmp_path / "ray" / "env" / f"exp3-math-{BUDGET}-0" / "episode-0000" / "history.jsonl"
    killed = []

    def kill_the_task_mid_episode():
        deadline = time.time() + 300
        while time.time() < deadline and len(read_history(history.parent)) < 3:
            time.sleep(0.05)
        raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid  # the local Ray this test started
        workers = [int(pid) for task in Path(f"/proc/{raylet}/task").iterdir() for pid in (task / "children").read_text().split()]
        running = [pid for pid in workers if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::EpisodeWorker")]
        for pid in running:  # the episodes' actors; Ray restarts each and retries its episode
            os.kill(pid, signal.SIGKILL)
        killed.append((len(read_history(history.parent)) - 1, len(running)))

    killer = threading.Thread(target=kill_the_task_mid_episode)
    killer.start()
    run_compare(replace(sweep(tiny_models, tmp_path / "ray"), backend="ray"), progress=False)
    killer.join()
    (committed, tasks), = killed
    assert 2 <= committed < STEPS and tasks >= 1
    assert without_timing(load_records(tmp_path / "ray")) == without_timing(load_records(tmp_path / "local"))
    assert [path.name for path in history.parent.parent.glob("episode-*")] == ["episode-0000"]  # continued, not restarted
    assert [record["step"] for record in read_history(history.parent)] == list(range(STEPS + 1))


def models_of_the_process(job):
    """A job reporting its process and the identity of the models it was handed (loaded once per process)."""
    from read_env.distill.config import DistillerConfig
    from read_env.distill.models import shared_models

    config = DistillerConfig(teacher=job["teacher"], student=job["student"])
    return {"pid": os.getpid(), "models": id(shared_models(config, "cpu"))}


def test_ray_actors_keep_their_models_across_the_episodes_they_run(local_ray, tiny_models):
    from agents.harness.ray_backend import actor_count, run_on_ray
    from tests.agents.test_compare_ray import models_of_the_process  # noqa: F811 - by a module name the actors can import

    assert actor_count({"CPU": 2.0}, 0.0, 8) == 2 and actor_count({"CPU": 16.0, "GPU": 4.0}, 1.0, 8) == 4
    assert actor_count({"CPU": 16.0}, 0.0, 3) == 3 and actor_count({"CPU": 16.0, "GPU": 1.0}, 1.0, 8) == 1
    results = list(run_on_ray(models_of_the_process, [tiny_models] * 6))
    processes = {result["pid"] for result in results}
    assert len(results) == 6 and len(processes) <= 2  # two actors (two CPUs) ran the six jobs
    assert len({(result["pid"], result["models"]) for result in results}) == len(processes)  # one load per actor
