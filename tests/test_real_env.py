"""ReAD-v0 on tiny models built from configs: the contract, exact budgets, runs that survive."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import sys
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from read_env.distill.decontamination import held_out_splits
from read_env.distill.env import read_history
from read_env.distill.prompts import CAPABILITIES
from tests.conftest import kill_mid_episode

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
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


def make(tiny_models, run_dir, **kwargs):
    options = {**FAST, **kwargs.pop("distiller_config", {})}
    defaults = {"device": "cpu", "budget_tokens": 1200, "num_steps": 3, "task": "math_word_problems", "progress": False}
    return gym.make("ReAD-v0", teacher=tiny_models["teacher"], student=tiny_models["student"], run_dir=str(run_dir), distiller_config=options, **{**defaults, **kwargs})


def run_episode(env, seed=0):
    env.reset(seed=seed)
    return steps_to_end(env)


def steps_to_end(env):
    infos, terminated, truncated = [], False, False
    action = np.linspace(-1, 1, 8, dtype=np.float32)
    while not (terminated or truncated):
        observation, reward, terminated, truncated, info = env.step(action)
        infos.append(info)
    return infos


def test_registered_nondeterministic():
    assert gym.spec("ReAD-v0").nondeterministic


def test_check_env_on_a_tiny_configuration(tiny_models, tmp_path):
    env = make(tiny_models, tmp_path / "runs", budget_tokens=600, num_steps=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("objective,lora,engine", [("sft", False, "hf"), ("sft", True, "hf"), ("kd", False, "hf"), ("kd", True, "hf"), ("sft", False, "openai")])
def test_whole_episode_spends_exactly_the_budget(tiny_models, tmp_path, request, objective, lora, engine):
    server = {"teacher_engine": "openai", "teacher_url": request.getfixturevalue("teacher_server")} if engine == "openai" else {}
    env = make(tiny_models, tmp_path / "runs", objective=objective, lora=lora, **server)
    infos = run_episode(env)
    assert [info["tokens_used"] for info in infos] == [400, 400, 400]
    assert all(not info.get("error") for info in infos)
    ledger = env.unwrapped.distiller.ledger
    assert ledger.total_allotted == 1200 == infos[-1]["tokens_used_total"]
    assert ledger.total_spent == infos[-1]["tokens_spent_total"] and ledger.carry == infos[-1]["tokens_carried"]
    assert ledger.total_spent + ledger.carry == 1200
    assert 0.8 * 1200 <= ledger.total_spent <= 1200  # what is left are parts of answers too short to ask for
    assert sum(info["tokens_spent"] for info in infos) == ledger.total_spent
    for info in infos:
        assert sum(info["tokens_allotted"]) == info["tokens_used"]
        assert info["tokens_generated"] + info["tokens_trained"] == info["tokens_spent"]
        assert 0 <= info["utility"] <= 1 and (info["probe_stderr"] >= 0).all()
        assert set(info["seconds"]) >= {"generation", "training", "probe"}
    assert infos[-1]["utility_measured"]


def test_history_records_every_step_with_reward_components(tiny_models, tmp_path):
    env = make(tiny_models, tmp_path / "runs")
    infos = run_episode(env)
    records = read_history(env.unwrapped.episode_dir)
    assert [record["step"] for record in records] == [0, 1, 2, 3]
    assert records[0]["config"]["budget_tokens"] == 1200
    for record, info in zip(records[1:], infos):
        assert record["reward"] == pytest.approx(record["gain"] - 0.5 * record["spillover"] - 0.01 * record["cost"])
        assert record["tokens_used_total"] == info["tokens_used_total"]
    assert records[-1]["terminated"]


@pytest.mark.parametrize("keep,left", [("weights", ["final", "history.jsonl", "ledger.jsonl"]), ("nothing", ["history.jsonl", "ledger.jsonl"]),
                                       ("checkpoint", ["checkpoint-3", "history.jsonl", "ledger.jsonl"])])
def test_finished_episode_keeps_what_was_asked(tiny_models, tmp_path, keep, left):
    env = make(tiny_models, tmp_path / "runs", distiller_config={"keep_after_episode": keep})
    run_episode(env)
    assert sorted(path.name for path in env.unwrapped.episode_dir.iterdir()) == left
    if keep == "weights":
        from transformers import AutoModelForCausalLM

        final = AutoModelForCausalLM.from_pretrained(env.unwrapped.episode_dir / "final")
        trained = env.unwrapped.distiller.student.state_dict()
        assert all((final.state_dict()[name] == value).all() for name, value in trained.items())


def test_failed_write_of_the_final_weights_is_reported_and_keeps_the_checkpoint(tiny_models, tmp_path):
    env = make(tiny_models, tmp_path / "runs")
    env.reset(seed=0)
    (env.unwrapped.episode_dir / "final.tmp").write_text("a file where the final weights' folder should go")
    outcomes = [env.step(np.zeros(8, dtype=np.float32)) for _ in range(3)]
    *_, terminated, truncated, info = outcomes[-1]
    assert terminated and not truncated and "CheckpointError" in info["error"] and "final" in info["error"]
    assert (env.unwrapped.episode_dir / "checkpoint-3" / "trainable.safetensors").is_file()


def test_models_are_loaded_once_and_every_episode_starts_from_the_untrained_student(tiny_models, tmp_path):
    env = make(tiny_models, tmp_path / "runs")
    first_observation, _ = env.reset(seed=0)
    models = env.unwrapped._models
    run_episode(env)
    observation, _ = env.reset(seed=0)
    assert env.unwrapped._models is models
    np.testing.assert_array_equal(observation["profile"], first_observation["profile"])
    assert [path.name for path in sorted((tmp_path / "runs").glob("episode-*"))] == ["episode-0000", "episode-0001", "episode-0002"]


def test_unrecoverable_error_truncates_and_keeps_the_run_consistent(tiny_models, tmp_path, monkeypatch):
    env = make(tiny_models, tmp_path / "runs", num_steps=4, budget_tokens=1600)
    env.reset(seed=0)
    env.step(np.zeros(8, dtype=np.float32))
    distiller = env.unwrapped.distiller

    def broken_probe():
        raise RuntimeError("probe server fell over")

    monkeypatch.setattr(distiller, "probe", broken_probe)
    observation, reward, terminated, truncated, info = env.step(np.zeros(8, dtype=np.float32))
    assert truncated and not terminated and "probe server fell over" in info["error"]
    assert len(distiller.ledger) == 1  # the failed step's tokens were rolled back
    assert info["tokens_used_total"] == distiller.ledger.total_allotted == 400 and info["tokens_used"] == 0 and reward == 0.0
    assert info["tokens_spent_total"] == distiller.ledger.total_spent and info["step"] == 1
    assert observation["budget_left"][0] == pytest.approx(0.75)
    assert read_history(env.unwrapped.episode_dir)[-1]["truncated"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(8, dtype=np.float32))


def test_failed_checkpoint_write_keeps_the_last_good_checkpoint_and_the_episode_resumes(tiny_models, tmp_path):
    """A real write failure: the file-size limit (RLIMIT_FSIZE) makes the weights file too large to write."""
    env = make(tiny_models, tmp_path / "runs", num_steps=4, budget_tokens=1600)
    env.reset(seed=0)
    env.step(np.zeros(8, dtype=np.float32))
    episode_dir = env.unwrapped.episode_dir
    good = {path.name: path.read_bytes() for path in (episode_dir / "checkpoint-1").iterdir()}
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, limits[1]))
    try:
        *_, truncated, info = env.step(np.zeros(8, dtype=np.float32))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert truncated and "CheckpointError" in info["error"] and str(episode_dir / "checkpoint-2") in info["error"]
    assert "File too large" in info["error"] and "MiB free" in info["error"]
    assert sorted(path.name for path in episode_dir.glob("checkpoint-*")) == ["checkpoint-1"]
    assert {path.name: path.read_bytes() for path in (episode_dir / "checkpoint-1").iterdir()} == good
    assert info["tokens_used_total"] == env.unwrapped.distiller.ledger.total_allotted == 400
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(8, dtype=np.float32))

    resumed = make(tiny_models, tmp_path / "runs", num_steps=4, budget_tokens=1600)
    observation, info = resumed.reset()
    assert info["resumed"] and info["step"] == 1 and info["tokens_used_total"] == 400
    infos = [resumed.step(np.zeros(8, dtype=np.float32))[-1] for _ in range(3)]
    ledger = resumed.unwrapped.distiller.ledger
    assert [entry.step for entry in ledger.entries] == [0, 1, 2, 3] and ledger.total_allotted == 1600 == infos[-1]["tokens_used_total"]
    assert [record["step"] for record in read_history(episode_dir)] == [0, 1, 2, 3, 4]


CHILD = """
import sys, numpy as np, gymnasium as gym, read_env, json
teacher, student, run_dir, options = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
env = gym.make("ReAD-v0", teacher=teacher, student=student, run_dir=run_dir, device="cpu", budget_tokens=3000, num_steps=6, distiller_config=options)
env.reset(seed=0)
for _ in range(6):
    env.step(np.linspace(-1, 1, 8, dtype=np.float32))
"""


def test_resume_after_kill_loses_and_double_counts_no_token(tiny_models, tmp_path):
    reference = make(tiny_models, tmp_path / "reference", budget_tokens=3000, num_steps=6)
    run_episode(reference)
    expected = reference.unwrapped.distiller.ledger.entries

    run_dir = tmp_path / "killed"
    command = [sys.executable, "-c", CHILD, tiny_models["teacher"], tiny_models["student"], str(run_dir), json.dumps(FAST)]
    committed = kill_mid_episode(command, {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, run_dir / "episode-0000", 6)

    env = make(tiny_models, run_dir, budget_tokens=3000, num_steps=6)
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


def test_resume_refuses_a_run_folder_of_another_configuration(tiny_models, tmp_path):
    env = make(tiny_models, tmp_path / "runs")
    env.reset(seed=0)
    env.step(np.zeros(8, dtype=np.float32))
    other = make(tiny_models, tmp_path / "runs", budget_tokens=900)
    with pytest.raises(ValueError, match="another configuration"):
        other.reset()
    operational = make(tiny_models, tmp_path / "runs", distiller_config={"keep_after_episode": "nothing", "teacher_retries": 1})
    assert operational.reset()[1]["resumed"]  # where and how a run executes may change on resume


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"objective": "rl"}, ValueError, "objective"),
        ({"teacher": "/no/such/teacher"}, FileNotFoundError, "/no/such/teacher"),
        ({"student": "nobody/no-such-model"}, ValueError, "student='nobody/no-such-model' is neither a local folder"),
        ({"utility_every": -1}, ValueError, "utility_every"),
        ({"budget_tokens": 0}, ValueError, "budget_tokens"),
        ({"distiller_config": {"max_new_tokenz": 8}}, ValueError, r"unknown DistillerConfig option\(s\) \['max_new_tokenz'\]"),
        ({"distiller_config": {"lr": "fast"}}, ValueError, "DistillerConfig.lr must be float"),
        ({"distiller_config": {"lr": float("nan")}}, ValueError, "DistillerConfig.lr must be a finite number, got nan"),
        ({"distiller_config": {"top_p": 0.0}}, ValueError, r"DistillerConfig.top_p must be in \(0, 1\], got 0.0"),
        ({"distiller_config": "max_new_tokens=10"}, TypeError, r"distiller_config must be a DistillerConfig or a dict of its options \(e.g. \{'max_new_tokens': 10\}\), got str"),
        ({"device": "tpu9"}, ValueError, "device='tpu9' is not a torch device"),
        ({"device": "cuda:7"}, ValueError, r"device='cuda:7': torch sees \d+ CUDA GPU"),
        ({"device": 0}, TypeError, "device must be a torch device name"),
        ({"resume": "no"}, TypeError, "resume must be True or False, got 'no'"),
        ({"progress": 1}, TypeError, "progress must be True or False, got 1"),
        ({"run_dir": 123}, TypeError, "run_dir must be a folder path .str or os.PathLike., got int 123"),
        ({"keep_episodes": 0}, ValueError, "keep_episodes must be a positive integer or None, got 0"),
        ({"teacher_engine": "openai", "teacher_url": "http://127.0.0.1:9/v1"}, RuntimeError, "teacher_url=http://127.0.0.1:9/v1 did not answer GET /models within 5 s"),
        ({"teacher_engine": "tgi"}, ValueError, "unknown teacher_engine 'tgi'"),
        ({"teacher_engine": "openai", "teacher_url": "localhost:8000"}, ValueError, "teacher_url = http"),
        ({"teacher_engine": "openai", "teacher_url": "http://127.0.0.1:9/v1", "objective": "kd"}, ValueError, "logits"),
        ({"teacher_engine": "vllm"}, RuntimeError, r"pip install 'read-env\[vllm\]'"),
    ],
)
def test_bad_configuration_fails_at_make_without_a_hub(tmp_path, kwargs, error, match):
    started = time.perf_counter()
    with pytest.raises(error, match=match):
        gym.make("ReAD-v0", **{"run_dir": str(tmp_path / "runs"), **kwargs})
    assert time.perf_counter() - started < 5 and not (tmp_path / "runs").exists()


def test_a_silent_teacher_server_fails_at_make_within_the_short_timeout(tmp_path):
    """A server that accepts the connection and never answers: gym.make gives up after REACH_TIMEOUT_S."""
    from read_env.distill.engines.openai_server import REACH_TIMEOUT_S

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        started = time.perf_counter()
        with pytest.raises(RuntimeError, match=f"teacher_url={url} did not answer GET /models within 5 s"):
            gym.make("ReAD-v0", teacher_engine="openai", teacher_url=url, run_dir=str(tmp_path / "runs"))
    assert REACH_TIMEOUT_S <= time.perf_counter() - started < REACH_TIMEOUT_S + 3 and not (tmp_path / "runs").exists()


def test_teacher_server_serving_another_model_fails_at_make_naming_url_and_models(tiny_models, tmp_path, teacher_server):
    with pytest.raises(RuntimeError, match=rf"teacher_url={teacher_server} serves \['{tiny_models['teacher']}'\], not teacher_model 'org/other-model'"):
        make(tiny_models, tmp_path / "runs", teacher_engine="openai", teacher_url=teacher_server, distiller_config={"teacher_model": "org/other-model"})
    assert not (tmp_path / "runs").exists()


def test_keep_episodes_keeps_the_newest_finished_episodes_and_every_unfinished_one(tiny_models, tmp_path):
    env = make(tiny_models, tmp_path / "runs", budget_tokens=200, num_steps=1, keep_episodes=2)
    for seed in range(3):
        run_episode(env, seed)
    assert [path.name for path in sorted((tmp_path / "runs").glob("episode-*"))] == ["episode-0001", "episode-0002"]
    env.reset(seed=3)  # left unfinished
    run_episode(env, seed=4)
    assert [path.name for path in sorted((tmp_path / "runs").glob("episode-*"))] == ["episode-0002", "episode-0003", "episode-0004"]


def test_distiller_config_round_trips_through_json():
    from read_env.distill.config import DistillerConfig

    config = DistillerConfig(teacher="t", lora=True, teacher_engine="openai", teacher_url="http://h:1/v1", max_new_tokens=7, keep_after_episode="nothing")
    assert DistillerConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_reset_shows_progress(tiny_models, tmp_path, capsys):
    make(tiny_models, tmp_path / "runs", progress=True).reset(seed=0)
    assert "ReAD-v0 reset" in capsys.readouterr().err


def count_measurements(monkeypatch):
    """Count the student's probe and evaluation passes: {"probe": n, "evaluate": n}."""
    from read_env.distill.distiller import Distiller

    calls = {"probe": 0, "evaluate": 0}
    for name in calls:
        original = getattr(Distiller, name)

        def counted(self, original=original, name=name):
            calls[name] += 1
            return original(self)

        monkeypatch.setattr(Distiller, name, counted)
    return calls


def test_environments_of_one_process_share_models_and_the_measured_untrained_student(tiny_models, tmp_path, monkeypatch):
    first = make(tiny_models, tmp_path / "a")
    observation, info = first.reset(seed=0)
    calls = count_measurements(monkeypatch)
    second = make(tiny_models, tmp_path / "b", budget_tokens=400, num_steps=1, task="science_qa")
    second_observation, second_info = second.reset(seed=5)
    assert calls == {"probe": 0, "evaluate": 0}  # nothing re-measured
    assert second.unwrapped._models is first.unwrapped._models
    np.testing.assert_array_equal(second_observation["profile"], observation["profile"])
    fresh = second.unwrapped.distiller  # the reused measurement is the one a fresh pass gives
    np.testing.assert_array_equal(fresh.probe().profile.astype(np.float32), observation["profile"])
    assert fresh.utility(second.unwrapped.requirement) == second_info["utility"]


def test_a_scratch_episode_matches_a_normal_one_and_keeps_nothing_on_disk(tiny_models, tmp_path, monkeypatch):
    normal = make(tiny_models, tmp_path / "runs", budget_tokens=800, num_steps=2, resume=False)
    scratch = make(tiny_models, tmp_path / "runs", budget_tokens=800, num_steps=2, scratch=True)
    normal_infos = run_episode(normal, seed=3)
    _, start_info = scratch.reset(seed=3)
    scratch_dir = scratch.unwrapped.episode_dir
    assert scratch_dir.parent == tmp_path / "runs" and scratch_dir.name.startswith("scratch-")
    calls = count_measurements(monkeypatch)
    scratch_infos = []
    for _ in range(2):
        *_, info = scratch.step(np.linspace(-1, 1, 8, dtype=np.float32))
        scratch_infos.append(info)
    assert calls["evaluate"] == 0  # no task utility measured after reset
    for a, b in zip(normal_infos, scratch_infos):
        np.testing.assert_array_equal(a["delta_profile"], b["delta_profile"])
        assert (a["gain"], a["spillover"], a["tokens_spent"]) == (b["gain"], b["spillover"], b["tokens_spent"])
    assert scratch_infos[-1]["utility"] == start_info["utility"]
    assert not scratch_dir.exists()
    assert sorted(path.name for path in (tmp_path / "runs").iterdir() if not path.name.startswith("probe_references")) == ["episode-0000"]


def test_a_step_that_trains_nothing_repeats_the_last_probe(tiny_models, tmp_path, monkeypatch):
    env = make(tiny_models, tmp_path / "runs", budget_tokens=16, num_steps=1)  # 2 tokens a capability: no answer fits
    observation, _ = env.reset(seed=0)
    calls = count_measurements(monkeypatch)
    next_observation, _, terminated, _, info = env.step(np.zeros(8, dtype=np.float32))
    assert terminated and info["tokens_trained"] == 0 and calls["probe"] == 0
    np.testing.assert_array_equal(next_observation["profile"], observation["profile"])


@pytest.mark.parametrize("item_source", ["legacy", "full_splits"])
def test_measured_utility_comes_with_its_standard_errors(tiny_models, tmp_path, item_source):
    env = make(tiny_models, tmp_path / "runs", num_steps=2, budget_tokens=800, distiller_config={"item_source": item_source})
    _, info = env.reset(seed=0)
    infos = [info, *steps_to_end(env)]
    weights = env.unwrapped.requirement / env.unwrapped.requirement.sum()
    for info in (infos[0], infos[-1]):
        assert info["eval_stderr"].shape == (8,) and (info["eval_stderr"] >= 0).all()
        used = weights > 0
        assert info["utility_stderr"] == pytest.approx(np.sqrt(((weights[used] * info["eval_stderr"][used]) ** 2).sum()))
    assert not infos[1]["utility_measured"] and "utility_stderr" not in infos[1]
    assert ("decontamination" in infos[0]) == (item_source == "full_splits")
    if item_source == "full_splits":
        assert set(infos[0]["decontamination"]["removed"]) == set(env.unwrapped.capabilities)
        assert infos[0]["items"] == {"probe": [3] * 8, "eval": [2] * 8}
        assert read_history(env.unwrapped.episode_dir)[0]["decontamination"] == infos[0]["decontamination"]


def test_more_full_split_items_than_exist_fail_at_make_unless_clipped(tiny_models, tmp_path):
    with pytest.raises(ValueError, match=r"general_knowledge: 100000 eval items requested, \d+ available"):
        make(tiny_models, tmp_path / "runs", distiller_config={"item_source": "full_splits", "eval_items": 100_000})
    assert not (tmp_path / "runs").exists()
    clipped = {"item_source": "full_splits", "clip_items": True, "probe_items": 10_000, "eval_items": 1}
    env = make(tiny_models, tmp_path / "runs", num_steps=1, distiller_config=clipped)
    _, info = env.reset(seed=0)
    assert info["items"]["probe"][CAPABILITIES.index("multilingual")] == len(held_out_splits("multilingual", False)["probe"]) < 10_000
    assert info["items"]["eval"] == [1] * 8


def test_read_v1_is_v0_with_its_preset_under_the_callers_options(tiny_models, tmp_path):
    from read_env.registration import REAL_V1_OPTIONS

    small = {**FAST, "eval_items": 4, "probe_items": 4, "max_new_tokens": 12, "eval_max_new_tokens": 8, "tokens_per_step": 256}
    env = gym.make("ReAD-v1", teacher=tiny_models["teacher"], student=tiny_models["student"], run_dir=str(tmp_path / "runs"),
                   device="cpu", budget_tokens=1200, num_steps=3, task="math_word_problems", progress=False, distiller_config=small)
    config = env.unwrapped.distiller_config
    assert {key: getattr(config, key) for key in REAL_V1_OPTIONS} == {**REAL_V1_OPTIONS, **{key: small[key] for key in REAL_V1_OPTIONS if key in small}}
    assert gym.spec("ReAD-v1").nondeterministic and env.unwrapped.run_dir == tmp_path / "runs"
    _, reset_info = env.reset(seed=0)
    assert reset_info["utility_stderr"] >= 0 and len(reset_info["eval_stderr"]) == 8 and "decontamination" in reset_info
    infos = steps_to_end(env)
    assert infos[-1]["tokens_spent_total"] <= infos[-1]["tokens_used_total"] == 1200
    assert np.isfinite(infos[-1]["utility_stderr"])
    env.close()
