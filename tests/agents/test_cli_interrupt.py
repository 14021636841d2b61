"""Ctrl-C (SIGINT) ends a read-env command with one line, keeps what it finished, and train saves its policy."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.harness.compare import load_records

ROOT = Path(__file__).resolve().parents[2]


def interrupt(args, ready, timeout=120):
    """Start ``read-env ARGS``, send SIGINT once ``ready()`` holds, return (exit status, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # SIGINT handled as a terminal's Ctrl-C would be, even if this test process ignores it (Ray, pools)
    process = subprocess.Popen([sys.executable, "-m", "agents.cli", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + timeout
    while not ready():
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, "the command never got going"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_ctrl_c_ends_run_with_one_line_and_keeps_the_finished_steps(tmp_path):
    history = tmp_path / "run-000" / "history.jsonl"
    status, stderr = interrupt(["run", "--agent", "uniform", "--task", "math", "--budget", "2M", "--steps", "100000", "--out", str(tmp_path),
                                "--no-tensorboard"], lambda: len(lines(history)) >= 3)
    assert status == 130
    assert "Traceback" not in stderr and "Error" not in stderr
    assert stderr.strip().splitlines()[-1] == f"interrupted: kept {tmp_path / 'run-000'} (history.jsonl of the finished steps)"
    assert all(json.loads(line)["step"] for line in lines(history))  # every kept line is a whole step


def test_ctrl_c_ends_train_saving_the_policy_trained_so_far(tmp_path):
    pytest.importorskip("stable_baselines3")
    seen = []

    def learning_for_a_while():  # the TensorBoard file appears when learning starts; then let it collect steps
        if list((tmp_path / "tb").rglob("events.out.tfevents.*")):
            seen.append(time.time())
        return bool(seen) and time.time() - seen[0] > 3

    status, stderr = interrupt(["train", "--timesteps", "10000000", "--out", str(tmp_path), "--checkpoint-every", "0"], learning_for_a_while)
    assert status == 130
    assert "Traceback" not in stderr and "ImportError" not in stderr
    assert stderr.strip().splitlines()[-1] == f"interrupted: kept {tmp_path}/model.zip (the policy trained until the interruption)"
    from stable_baselines3 import PPO

    assert PPO.load(tmp_path / "model.zip", device="cpu").num_timesteps > 0


@pytest.mark.parametrize("command", [["compare", "--agents", "uniform,task_static", "--tasks", "all"],
                                     ["log-episodes", "--env-id", "ReAD-Surrogate-v1", "--schedules", "random,uniform", "--tasks", "all"]])
def test_ctrl_c_ends_compare_and_log_episodes_naming_the_episodes_kept(tmp_path, command):
    episodes = tmp_path / "episodes.jsonl"
    status, stderr = interrupt([*command, "--budgets", "2M", "--seeds", "1000", "--steps", "4", "--out", str(tmp_path), "--quiet"],
                               lambda: len(lines(episodes)) >= 3)
    assert status == 130 and "Traceback" not in stderr
    kept = load_records(tmp_path)  # whole records (a last line cut by the interruption is not one: compare reruns it)
    assert len(kept) >= 3 and all(record["key"] for record in kept)
    expected = f"interrupted: kept {len(kept)} finished episodes in {episodes} (rerun the same command to continue)"
    assert stderr.strip().splitlines()[-1] == expected
