"""Sweeps that resume: a ReAD-v0 sweep whose worker is killed mid-episode, run again, gives the uninterrupted sweep's
records; local workers placed on ``--devices`` round-robin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.cli import main
from agents.harness.compare import CompareConfig, _init_worker, check_devices, load_records, run_compare, worker_device
from agents.harness.runner import ResumeError, run_episode
from agents.registry import make_agent
from read_env.distill.env import read_history
from tests.test_real_env import FAST

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STEPS, BUDGET = 6, 3000


def env_kwargs(tiny_models) -> dict:
    return {"teacher": tiny_models["teacher"], "student": tiny_models["student"], "device": "cpu", "progress": False,
            "distiller_config": FAST}


def sweep(tiny_models, out: Path) -> CompareConfig:
    """exp3 (a bandit whose state follows the rewards it observed) and uniform, one task, one seed."""
    return CompareConfig(["exp3"], ["math"], [BUDGET], [0], env_id="ReAD-v0", env_kwargs=env_kwargs(tiny_models), num_steps=STEPS,
                         out_dir=str(out))


def without_timing(records: list[dict]) -> list[str]:
    return sorted(json.dumps({key: value for key, value in record.items() if key != "wall_time_s"}, sort_keys=True) for record in records)


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def is_pool_worker(pid: int) -> bool:
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    return b"spawn_main" in command and b"resource_tracker" not in command


def test_a_sweep_whose_worker_is_killed_mid_episode_resumes_to_the_uninterrupted_records(tiny_models, tmp_path):
    run_compare(sweep(tiny_models, tmp_path / "uninterrupted"), progress=False)
    expected = load_records(tmp_path / "uninterrupted")
    assert len(expected) == 2

    out = tmp_path / "killed"
    options = [f"{key}={json.dumps(value)}" for key, value in env_kwargs(tiny_models).items()]
    command = [sys.executable, "-m", "agents.cli", "compare", "--env-id", "ReAD-v0", "--agents", "exp3", "--tasks", "math",
               "--budgets", str(BUDGET), "--steps", str(STEPS), "--seeds", "1", "--workers", "2", "--out", str(out), "--quiet",
               *[part for option in options for part in ("--env-kwarg", option)]]
    sweep_process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    histories = [out / "env" / f"{agent}-math-{BUDGET}-0" / "episode-0000" / "history.jsonl" for agent in ("uniform", "exp3")]
    deadline = time.time() + 300
    while time.time() < deadline and not all(len(read_history(path.parent)) >= 2 for path in histories):  # both episodes past a step
        time.sleep(0.05)
    workers = [pid for pid in children(sweep_process.pid) if is_pool_worker(pid)]
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)  # a worker dies mid-episode; its pool would wait for it forever, so the machine goes down too
    for pid in [sweep_process.pid, *workers[1:]]:
        os.kill(pid, signal.SIGKILL)
    sweep_process.wait()
    committed = [len(read_history(path.parent)) - 1 for path in histories]
    assert load_records(out) == [] and all(1 <= steps < STEPS for steps in committed), committed
    print(f"committed steps when killed (uniform, exp3): {committed}")

    run_compare(sweep(tiny_models, out), progress=False)
    assert without_timing(load_records(out)) == without_timing(expected)
    for path, steps in zip(histories, committed):  # continued in the same episode folder, from its last committed step
        assert [folder.name for folder in path.parent.parent.glob("episode-*")] == ["episode-0000"]
        records = read_history(path.parent)
        assert [record["step"] for record in records] == list(range(STEPS + 1)) and records[-1]["terminated"], steps


def test_an_agent_that_replays_otherwise_cannot_resume_and_compare_runs_the_episode_afresh(tiny_models, tmp_path):
    kwargs = {**env_kwargs(tiny_models), "run_dir": str(tmp_path / "env" / "exp3-math-1200-0"), "resume": True}

    def stop_after_two(step, row):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # an episode of another agent interrupted after 2 committed steps
        run_episode(lambda setting: make_agent("single", setting, seed=0), "ReAD-v0", "math", 1200, 3, 0, kwargs, on_step=stop_after_two)
    with pytest.raises(ResumeError, match="agent exp3 allocates .* at step 1 of the resumed episode, which recorded"):
        run_episode(lambda setting: make_agent("exp3", setting, seed=0), "ReAD-v0", "math", 1200, 3, 0, kwargs)
    config = CompareConfig(["exp3"], ["math"], [1200], [0], env_id="ReAD-v0", env_kwargs=env_kwargs(tiny_models), num_steps=3,
                           out_dir=str(tmp_path))
    run_compare(config, progress=False)  # exp3 cannot continue that episode: it runs again from its start
    assert [record["tokens"] for record in load_records(tmp_path)] == [[400, 400, 400]] * 2
    assert [record["step"] for record in read_history(tmp_path / "env" / "exp3-math-1200-0" / "episode-0000")] == [0, 1, 2, 3]


def test_local_workers_take_the_devices_round_robin():
    assert [worker_device(["cuda:0", "cuda:1"], index) for index in range(5)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    import multiprocessing

    counter = multiprocessing.Value("i", 0)
    placed = []
    for _ in range(3):  # each worker process runs the initializer once, in start order (a replaced worker counts on)
        _init_worker(counter, ["cuda:0", "cuda:1"])
        from agents.harness import compare

        placed.append(compare._worker_device)
    compare._worker_device = None
    assert placed == ["cuda:0", "cuda:1", "cuda:0"]


@pytest.mark.parametrize(("devices", "env_id", "backend", "match"), [
    (["cuda:0", "cuda:0"], "ReAD-v0", "local", "devices must be distinct"),
    (["cpu"], "ReAD-Mini-v0", "local", "ReAD-Mini-v0 takes no device argument"),
    (["cuda:0"], "ReAD-v0", "ray", "Ray places episodes on GPUs by gpus_per_episode"),
    (["cuda:63"], "ReAD-v0", "local", "device='cuda:63': torch sees"),
])
def test_bad_devices_are_named(devices, env_id, backend, match):
    with pytest.raises(ValueError, match=match):
        check_devices(CompareConfig(["uniform"], ["math"], None, [0], env_id=env_id, devices=devices, backend=backend))


@pytest.mark.parametrize(("text", "match"), [("cuda:0,gpu1", "not a torch device: 'gpu1'"), ("cuda:1,cuda:1", "named twice")])
def test_the_devices_option_names_a_bad_device(text, match, capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--env-id", "ReAD-v0", "--devices", text])
    assert match in capsys.readouterr().err
