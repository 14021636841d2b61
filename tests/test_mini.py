"""ReAD-Mini-v0 and -v1 on a tiny student: generators, splits, teacher, exact match, budget, determinism, resume, errors."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from read_env.capabilities import PAPER_CAPABILITIES
from read_env.distill.env import read_history
from read_env.distill.ledger import largest_remainder_split, split_generation_training
from read_env.distill.training import TrainExample
from read_env.mini.families import DIFFICULTIES, EOS, FAMILIES, SEP, encode
from read_env.mini.student import StudentConfig, exact_match, example, load_student
from read_env.mini.teacher import ERROR_RATES, Teacher, check_error_rates
from tests.conftest import assert_same, kill_mid_episode

REPO = Path(__file__).resolve().parents[1]
TINY_STUDENT = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "pretrain_tokens": 20_000}
TINY = {"student": TINY_STUDENT, "probe_items": 12, "eval_items": 12, "budget_tokens": 12_000, "num_steps": 4}
MINI_IDS = ["ReAD-Mini-v0", "ReAD-Mini-v1", "ReAD-Mini-v2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("mini-cache"))


def make(cache, run_dir, env_id="ReAD-Mini-v0", **kwargs):
    return gym.make(env_id, cache_dir=cache, run_dir=str(run_dir), **{**TINY, **kwargs})


def play(env, seed=0, action=None):
    records = [env.reset(seed=seed)]
    action = np.linspace(-1, 1, 8, dtype=np.float32) if action is None else action
    while True:
        records.append(env.step(action))
        if records[-1][2] or records[-1][3]:
            return records


def test_families_follow_the_paper_order_and_solve_their_items():
    assert tuple(FAMILIES) == PAPER_CAPABILITIES
    assert FAMILIES["math"].solve("add:37+45=") == "82"
    assert FAMILIES["code"].solve("run:x=13;x+4;x*2;") == "4"
    assert FAMILIES["reasoning"].solve("var:k=m;m=4;x=7;z=k;?z") == "4"
    assert FAMILIES["tool_use"].solve("call:mv to=qx1 fr=ab7") == "mv(ab7,qx1)"
    assert FAMILIES["long_context"].solve("find:ab=3,cd=7?cd") == "7"
    assert FAMILIES["steerability"].solve("fmt:rev|abc") == "cba"
    translated = FAMILIES["multilingual"].solve("tr>:abc")
    assert FAMILIES["multilingual"].solve(f"tr<:{translated}") == "abc"


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_generators_are_deterministic_and_encodable(difficulty):
    for family in FAMILIES.values():
        first = [family.item(np.random.default_rng(3), difficulty) for _ in range(20)]
        again = [family.item(np.random.default_rng(3), difficulty) for _ in range(20)]
        assert first == again
        assert len({prompt for prompt, _ in (family.item(np.random.default_rng(seed), difficulty) for seed in range(20))}) > 1
        assert family.heldout_items("probe", 10, difficulty) == family.heldout_items("probe", 10, difficulty)
        for prompt, answer in first:
            assert encode(prompt + answer) and answer == family.solve(prompt)


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_training_items_never_meet_held_out_items(difficulty):
    for family in FAMILIES.values():
        probe = {prompt for prompt, _ in family.heldout_items("probe", 30, difficulty)}
        evaluation = {prompt for prompt, _ in family.heldout_items("eval", 30, difficulty)}
        rng = np.random.default_rng(0)
        training = {family.training_item(rng, difficulty)[0] for _ in range(2000)}
        assert len(probe) == len(evaluation) == 30
        assert not probe & evaluation and not training & (probe | evaluation)
        assert {family.split(prompt) for prompt in training} == {"train"}


def test_teacher_errs_at_its_documented_rate():
    teacher = Teacher(list(FAMILIES.values()), check_error_rates({"math": 0.3, "code": 0.0}, PAPER_CAPABILITIES))
    rng = np.random.default_rng(0)
    for index, family in enumerate(teacher.families):
        prompts = [family.training_item(rng, 2)[0] for _ in range(1000)]
        wrong = np.mean([teacher.answer(index, prompt, rng) != family.solve(prompt) for prompt in prompts])
        rate = teacher.error_rates[index]
        assert abs(wrong - rate) <= 4 * np.sqrt(rate * (1 - rate) / 1000) + 1e-12, family.capability
    assert teacher.error_rates[2] == 0.3 and teacher.error_rates[0] == ERROR_RATES["general_knowledge"]
    np.testing.assert_allclose(teacher.profile, 1 - teacher.error_rates)


def test_student_is_cached_deterministically(cache, tmp_path):
    import torch

    config = StudentConfig.from_options(TINY_STUDENT)
    student, rebuilt = load_student(config, cache), load_student(config, tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / f"student-{config.key()}" / "model.safetensors").is_file()
    for (name, left), (_, right) in zip(student.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(left, right), name


def test_teacher_forced_exact_match_equals_greedy_decoding(cache):
    import torch

    student = load_student(StudentConfig.from_options(TINY_STUDENT), cache)
    items = []
    for family in FAMILIES.values():
        prompt_ids = encode(family.item(np.random.default_rng(0), 1)[0]) + [SEP]
        ids = torch.tensor([prompt_ids])
        with torch.no_grad():
            for _ in range(4):
                ids = torch.cat([ids, student(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
        greedy = ids[0].tolist()
        wrong_last = greedy[:-1] + [(greedy[-1] + 1) % 50 + 3]
        items += [TrainExample(greedy, len(prompt_ids)), TrainExample(wrong_last, len(prompt_ids))]
    np.testing.assert_array_equal(exact_match(student, items, batch_size=5), [True, False] * len(FAMILIES))
    item = example("add:1+2=", "3")
    assert item.input_ids[item.n_prompt - 1] == SEP and item.input_ids[-1] == EOS and item.labels()[: item.n_prompt] == [-100] * item.n_prompt


@pytest.mark.parametrize("env_id", MINI_IDS)
def test_registered_deterministic_and_check_env_clean(cache, tmp_path, env_id):
    assert not gym.spec(env_id).nondeterministic
    env = make(cache, tmp_path / "runs", env_id, num_steps=2, budget_tokens=4000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("env_id", MINI_IDS)
def test_same_seed_same_episode_with_timings_only_in_the_history(cache, tmp_path, env_id):
    left = play(make(cache, tmp_path / "a", env_id), seed=5)
    right = play(make(cache, tmp_path / "b", env_id), seed=5)
    assert_same(left, right)
    records = read_history(tmp_path / "a" / "episode-0000")
    assert records[0]["seconds"] == {} and all(set(record["seconds"]) >= {"training", "probe"} for record in records[1:])


@pytest.mark.parametrize("env_id", MINI_IDS)
def test_episode_spends_exactly_the_budget(cache, tmp_path, env_id):
    env = make(cache, tmp_path / "runs", env_id, budget_tokens=12_003, action_mode="simplex")
    allocation = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0, 0], dtype=np.float32)
    infos = [record[-1] for record in play(env, action=allocation)[1:]]
    assert [info["tokens_used"] for info in infos] == [3001, 3001, 3001, 3000]
    ledger = env.unwrapped.distiller.ledger
    assert ledger.total_allotted == 12_003 and ledger.total_spent + ledger.carry == 12_003
    assert sum(info["tokens_spent"] for info in infos) == ledger.total_spent == infos[-1]["tokens_spent_total"]
    assert infos[-1]["tokens_carried"] == ledger.carry
    assert [path.name for path in env.unwrapped.episode_dir.glob("checkpoint-*")] == ["checkpoint-4"]  # kept after the episode
    for info, entry in zip(infos, ledger.entries):
        assert sum(info["tokens_allotted"]) == info["tokens_used"]
        assert entry.allotted[6] == entry.generated[6] == entry.trained[6] == 0
        allowance = np.array(entry.allotted) + largest_remainder_split(entry.carry_in, entry.allotted)
        assert all(generated <= split_generation_training(int(tokens))[0] for generated, tokens in zip(entry.generated, allowance))
        assert 0 <= info["utility"] <= 1 and (np.asarray(info["probe_stderr"]) >= 0).all()


CHILD = """
import sys, json, numpy as np, gymnasium as gym, read_env
cache, run_dir, kwargs, env_id = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
env = gym.make(env_id, cache_dir=cache, run_dir=run_dir, **kwargs)
env.reset(seed=0)
for _ in range(kwargs["num_steps"]):
    env.step(np.linspace(-1, 1, 8, dtype=np.float32))
    __import__("time").sleep(0.3)
"""


@pytest.mark.parametrize("env_id,options", [("ReAD-Mini-v0", {}), ("ReAD-Mini-v1", {}), ("ReAD-Mini-v1", {"lora": True, "lr": 1e-2})])
def test_resume_after_kill_reproduces_the_uninterrupted_episode(cache, tmp_path, env_id, options):
    kwargs = {**TINY, "num_steps": 6, "budget_tokens": 12_000, **options}
    reference = make(cache, tmp_path / "reference", env_id, **kwargs)
    expected = play(reference)
    run_dir = tmp_path / "killed"
    command = [sys.executable, "-c", CHILD, cache, str(run_dir), json.dumps(kwargs), env_id]
    committed = kill_mid_episode(command, {**os.environ, "PYTHONPATH": str(REPO)}, run_dir / "episode-0000", 6)

    env = make(cache, run_dir, env_id, **kwargs)
    observation, info = env.reset(seed=123)
    assert info["resumed"] and info["step"] == committed and info["tokens_used_total"] == committed * 2000
    resumed = [env.step(np.linspace(-1, 1, 8, dtype=np.float32))]
    while not resumed[-1][2]:
        resumed.append(env.step(np.linspace(-1, 1, 8, dtype=np.float32)))
    assert len(resumed) == 6 - committed
    for got, want in zip(resumed, expected[committed + 1 :]):
        np.testing.assert_array_equal(got[0]["profile"], want[0]["profile"])
        assert got[4]["utility"] == want[4]["utility"] and got[1] == want[1]
    ledger, reference_ledger = env.unwrapped.distiller.ledger, reference.unwrapped.distiller.ledger
    assert [(e.allotted, e.generated, e.trained, e.carry_out) for e in ledger.entries] == [(e.allotted, e.generated, e.trained, e.carry_out) for e in reference_ledger.entries]
    assert [record["step"] for record in read_history(run_dir / "episode-0000")] == list(range(7))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"difficulty": 4}, ValueError, "difficulty"),
        ({"student": {"width": 3}}, ValueError, "unknown student options"),
        ({"student": {"hidden_size": 30, "num_heads": 4}}, ValueError, "heads"),
        ({"teacher_error_rates": {"poetry": 0.1}}, ValueError, "poetry"),
        ({"teacher_error_rates": {"math": 1.5}}, ValueError, "math"),
        ({"probe_items": 0}, ValueError, "probe_items"),
        ({"lr": float("nan")}, ValueError, "DistillerConfig.lr must be a finite number, got nan"),
        ({"resume": "no"}, TypeError, "resume must be True or False, got 'no'"),
        ({"run_dir": 123}, TypeError, "run_dir must be a folder path"),
        ({"keep_episodes": 0}, ValueError, "keep_episodes must be a positive integer"),
        ({"threads": 0}, ValueError, "threads"),
        ({"budget_tokens": 10, "num_steps": 20}, ValueError, "budget_tokens"),
        ({"capabilities": ["math", "poetry"]}, ValueError, "poetry"),
    ],
)
def test_bad_configuration_is_named(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make("ReAD-Mini-v0", **{"run_dir": str(tmp_path), **kwargs})


def test_bad_items_are_named():
    with pytest.raises(ValueError, match="'~'"):
        encode("add:~")
    with pytest.raises(ValueError, match="split"):
        FAMILIES["math"].heldout_items("train", 3, 1)
    with pytest.raises(ValueError, match="fewer than"):
        FAMILIES["math"].heldout_items("probe", 1000, 1)


def replay_rmse_points(world_data, episodes):
    """RMS error (points) of ReAD-Surrogate-v0 on ``world_data`` replaying each episode's allocations."""
    errors = []
    for episode in episodes:
        env = gym.make("ReAD-Surrogate-v0", world=world_data, noise=False, action_mode="simplex", budget_tokens=episode.budget_tokens, num_steps=len(episode.tokens))
        env.reset(seed=0)
        for allocation, profile in zip(episode.allocations, episode.profiles):
            observation, *_ = env.step(allocation.astype(np.float32))
            errors.append(observation["profile"] - profile)
    return float(100 * np.sqrt(np.mean(np.square(errors))))


def test_fitted_world_reproduces_surrogate_trajectories(tmp_path):
    from read_env.episodes import load_episodes
    from read_env.fit.calibrated import fit_world, write_world
    from read_env.trajectory import RecordTrajectory

    rng = np.random.default_rng(0)
    for index in range(6):
        env = RecordTrajectory(gym.make("ReAD-Surrogate-v0", noise=False, action_mode="simplex", num_steps=10))
        env.reset(seed=index)
        for _ in range(10):
            env.step(rng.dirichlet(np.full(8, 0.3)).astype(np.float32))
        env.save(tmp_path / f"episode-{index}.json")
    episodes = load_episodes(sorted(tmp_path.glob("*.json")))
    world, report = fit_world(episodes, holdout=0.34)
    assert len(report["heldout_episodes"]) == 2 and len(report["train_episodes"]) == 4
    assert report["rmse_train_points"] < 0.5 and report["rmse_heldout_points"] < 1.0  # the paper world is nearly in the fitted family
    assert report["rmse_heldout_points"] < report["no_change_rmse_heldout_points"] / 10
    data = json.loads(write_world(world, report, tmp_path / "world.json").read_text())
    training = [episode for episode in episodes if episode.source in report["train_episodes"]]
    assert replay_rmse_points(data, training) <= report["rmse_train_points"] + 1e-3


def test_path_terms_fit_recovers_v1_dynamics_better_than_v0(tmp_path):
    from read_env.episodes import load_episodes
    from read_env.fit.calibrated import fit_world, write_world
    from read_env.surrogate.path_dependent_world import PathWorld
    from read_env.trajectory import RecordTrajectory

    for index in range(6):
        env = RecordTrajectory(gym.make("ReAD-Surrogate-v1", noise=False, action_mode="simplex", num_steps=10))
        env.reset(seed=index)
        for step in range(10):  # phases of one capability, so that the order matters
            env.step(np.eye(8)[(index + step // 5) % 8].astype(np.float32) * 0.9 + 0.1 / 8)
        env.save(tmp_path / f"episode-{index}.json")
    episodes = load_episodes(sorted(tmp_path.glob("*.json")))
    v0, v0_report = fit_world(episodes, holdout=0.34)
    v1, v1_report = fit_world(episodes, holdout=0.34, path_terms=True)
    assert isinstance(v1, PathWorld) and not isinstance(v0, PathWorld)
    assert v1_report["rmse_train_points"] <= v0_report["rmse_train_points"]
    path = write_world(v1, v1_report, tmp_path / "world.json")
    env = gym.make("ReAD-Surrogate-v1", world=str(path), noise=False)
    env.reset(seed=0)
    np.testing.assert_array_equal(env.unwrapped.world.prerequisites, v1.prerequisites)
    assert env.unwrapped.world.repair_tokens == v1.repair_tokens


def test_fit_world_cli_on_mini_run_folders(cache, tmp_path, capsys):
    from agents.cli import main
    from read_env.episodes import load_episodes

    rng = np.random.default_rng(1)
    for seed in range(3):
        env = make(cache, tmp_path / "runs", action_mode="simplex")
        env.reset(seed=seed)
        for _ in range(TINY["num_steps"]):
            env.step(rng.dirichlet(np.ones(8)).astype(np.float32))
    assert main(["fit-world", str(tmp_path / "runs"), "-o", str(tmp_path / "world.json"), "--holdout", "0.34"]) == 0
    assert "held-out episodes" in capsys.readouterr().out
    data = json.loads((tmp_path / "world.json").read_text())
    report = data["fit"]
    assert len(report["train_episodes"]) == 2 and report["rmse_heldout_points"] >= 0
    assert all(data["teacher_only"][name] >= 100 * (1 - ERROR_RATES[name]) - 1e-9 for name in PAPER_CAPABILITIES)  # the recorded teacher
    training = [episode for episode in load_episodes([tmp_path / "runs"]) if episode.source in report["train_episodes"]]
    assert replay_rmse_points(data, training) <= report["rmse_train_points"] + 1e-3


def test_fit_world_bad_input_is_named(tmp_path):
    from read_env.episodes import load_episodes
    from read_env.fit.calibrated import fit_world

    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_episodes([tmp_path / "nowhere"])
    (tmp_path / "history.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(ValueError, match="first line"):
        load_episodes([tmp_path / "history.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no history"):
        load_episodes([tmp_path / "empty"])
    with pytest.raises(ValueError, match="holdout"):
        fit_world([], holdout=1.0)


def test_compare_gives_every_mini_episode_its_own_run_folder(cache, tmp_path):
    from agents.harness.compare import CompareConfig, load_records, run_compare

    env_kwargs = {"cache_dir": str(cache), "student": TINY_STUDENT, "probe_items": 12, "eval_items": 12, "run_dir": str(tmp_path / "env")}
    config = CompareConfig(["task_static"], ["math"], [4_000], [0], env_id="ReAD-Mini-v0", env_kwargs=env_kwargs, num_steps=2, out_dir=str(tmp_path / "out"), workers=2)
    run_compare(config, progress=False)
    assert len(load_records(tmp_path / "out")) == 2  # uniform and task_static, played in parallel
    assert sorted(path.name for path in (tmp_path / "env").iterdir()) == ["task_static-math-4000-0", "uniform-math-4000-0"]


@pytest.mark.parametrize("env_id", MINI_IDS)
def test_the_read_bandit_profiles_and_plays_an_episode(cache, tmp_path, env_id):
    from agents.harness.runner import run_episode
    from agents.registry import make_agent

    options = {key: value for key, value in TINY.items() if key not in ("budget_tokens", "num_steps")}
    episode, _ = run_episode(lambda setting: make_agent("read_bandit", setting, seed=0), env_id, "math_word_problems", TINY["budget_tokens"],
                             TINY["num_steps"], 0, {**options, "cache_dir": cache, "run_dir": str(tmp_path / "runs")})
    assert len(episode.steps) == TINY["num_steps"] and "truncated" not in episode.extra
    assert [path.name for path in (tmp_path / "runs").iterdir()] == ["episode-0000"]  # the profiling runs' scratch episodes left nothing
