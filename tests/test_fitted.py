"""Fitted worlds (read_env.fitted): the compiled kernel against the torch fit, invariants, validation, ReAD-Fitted-v0."""

from __future__ import annotations

import json
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest

import read_env  # noqa: F401
from read_env.capabilities import PAPER_CAPABILITIES
from read_env.episodes import Episode
from read_env.fit.validate import choose, schedule_key, spearman, split_by_schedule, validate
from read_env.fitted import kernel
from read_env.fitted.world import FittedWorld

K = len(PAPER_CAPABILITIES)
BUDGET = 1_000_000


def recency_world(seed: int = 0) -> FittedWorld:
    """A recency world with parameters drawn in plausible ranges."""
    rng = np.random.default_rng(seed)
    off = 1.0 - np.eye(K)
    blocks = [rng.uniform(0.0, 0.2, K), rng.uniform(0.6, 1.0, K), (rng.uniform(0, 0.3, (K, K)) + np.diag(rng.uniform(1, 5, K))).ravel(),
              (rng.uniform(0, 2, (K, K)) * off).ravel(), (rng.uniform(0, 0.5, (K, K)) * off).ravel(), [0.5], [0.3]]
    return FittedWorld("recency", PAPER_CAPABILITIES, rng.uniform(0.1, 0.5, K), np.concatenate(blocks)[None], BUDGET, 0, 0.02)


def ensemble_world(members: int = 3, hidden: int = 4, seed: int = 0) -> FittedWorld:
    rng = np.random.default_rng(seed)
    theta = 0.3 * rng.standard_normal((members, kernel.width(kernel.ENSEMBLE, K, hidden)))
    return FittedWorld("ensemble", PAPER_CAPABILITIES, rng.uniform(0.1, 0.5, K), theta, BUDGET, hidden, 0.02)


def prior_world() -> FittedWorld:
    """A prior over two ensemble worlds that start from different profiles."""
    return FittedWorld.combine([ensemble_world(seed=0), ensemble_world(seed=1)])


def episodes_of(world: FittedWorld, count: int, steps: int = 6, seed: int = 0) -> list[Episode]:
    """Noise-free episodes of ``world`` under Dirichlet schedules held for 1-3 phases, two budgets, one schedule per episode."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        budget = BUDGET if index % 2 else BUDGET // 4
        phases = rng.dirichlet(np.full(K, 0.5), size=3)[np.sort(rng.integers(3, size=steps))]
        tokens = np.full(steps, budget / steps)
        profiles = world.rollout(tokens[None], phases[None], np.array([budget]))[0]
        requirement = rng.dirichlet(np.ones(K))
        out.append(Episode(f"toy/{index}", list(PAPER_CAPABILITIES), budget, world.student.copy(), tokens, phases, profiles, schedule=f"toy/{index // 2}",
                           task="toy", requirement=requirement, final_utility=float(requirement @ profiles[-1])))
    return out


@pytest.mark.parametrize("make", [recency_world, ensemble_world])
def test_kernel_matches_the_torch_rollout(make):
    torch = pytest.importorskip("torch")
    from read_env.fit.fitted import batch, rollout

    world = make()
    episodes = episodes_of(world, 4)
    data = batch(episodes, world.token_scale)
    compiled = world.rollout(data["tokens"].numpy() * world.token_scale, data["allocations"].numpy(), np.array([e.budget_tokens for e in episodes]), data["start"].numpy(), 0)
    torched = rollout(world.kind_index, torch.as_tensor(world.theta[0]), data, world.hidden).numpy()
    np.testing.assert_allclose(compiled, torched, atol=1e-12)


@pytest.mark.parametrize("make", [recency_world, ensemble_world])
def test_profiles_stay_in_bounds(make):
    world = make(seed=3)
    rng = np.random.default_rng(1)
    allocations = rng.dirichlet(np.full(K, 0.3), size=(16, 12))
    tokens = rng.uniform(0, 4 * BUDGET, (16, 12))  # far beyond the fitted budgets too
    profiles = world.rollout(tokens, allocations, tokens.sum(axis=1))
    assert np.isfinite(profiles).all() and profiles.min() >= 0.0 and profiles.max() <= 1.0


def test_recency_one_hot_phases_overwrite_and_mixtures_keep():
    world = recency_world()
    blocks = world.blocks()
    first, second = np.eye(K)[0], np.eye(K)[1]
    phases = np.array([first] * 5 + [second] * 5)
    mixture = np.tile((first + second) / 2, (10, 1))
    tokens = np.full((2, 10), BUDGET / 10)
    ordered, mixed = world.rollout(tokens, np.array([phases, mixture]), np.full(2, BUDGET))
    assert ordered[4, 0] > ordered[-1, 0]  # training 1 after 0 overwrites 0
    assert mixed[-1, 0] > ordered[-1, 0] and ordered[-1, 0] >= blocks["floor"][0] - 1e-12


def test_recency_fit_reproduces_its_training_points():
    pytest.importorskip("torch")
    from read_env.fit.fitted import fit_recency

    truth = recency_world()
    episodes = episodes_of(truth, 16)
    fitted = fit_recency(episodes, iterations=400)
    result = validate(fitted, episodes)
    assert result["rms_points_all"] < 0.25 * result["no_change_rms_points_all"]


def test_fits_are_seeded():
    pytest.importorskip("torch")
    from read_env.fit.fitted import fit_ensemble

    episodes = episodes_of(recency_world(), 6)
    first, second = (fit_ensemble(episodes, members=2, hidden=4, iterations=20, seed=5) for _ in range(2))
    assert np.array_equal(first.theta, second.theta)
    assert not np.array_equal(first.theta[0], first.theta[1])  # members differ (bootstrap and initialization)


def test_spearman_and_its_ties():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 30), rng.normal(size=30)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_split_holds_out_whole_schedules_and_validation_ranks():
    world = recency_world()
    episodes = episodes_of(world, 24)
    episodes += [replace(episode, source=episode.source + "/again", task="toy2") for episode in episodes[:6]]  # same schedules again
    training, heldout = split_by_schedule(episodes, 0.25)
    assert not {schedule_key(e) for e in training} & {schedule_key(e) for e in heldout}
    assert len(training) + len(heldout) == len(episodes) and len({schedule_key(e) for e in heldout}) == 6
    result = validate(world, heldout)  # the true world predicts itself exactly
    assert result["rms_points_all"] == pytest.approx(0.0, abs=1e-9)
    assert result["spearman"] == pytest.approx(1.0) and result["best_in_top3"] == 1.0
    worse = {**result, "spearman": 0.5}
    assert choose({"a": worse, "b": result}) == "b"
    with pytest.raises(ValueError, match="cannot be split"):
        split_by_schedule(episodes[:2], 0.25)


def test_validation_ranks_schedules_by_their_mean_over_seeds():
    world = recency_world()
    schedules = [episode for episode in episodes_of(world, 8) if episode.budget_tokens == BUDGET]  # 4 schedules of one group
    gap = min(abs(a.final_utility - b.final_utility) for a in schedules for b in schedules if a is not b)
    seeds = [replace(episode, source=f"{episode.source}/seed{seed}", final_utility=episode.final_utility + (seed - 1) * gap / 2)
             for episode in schedules for seed in range(3)]  # each schedule on 3 seeds, measured with noise up to half a gap
    result = validate(world, seeds)
    assert result["heldout_schedules"] == 4 and result["heldout_episodes"] == 12
    assert result["spearman"] == pytest.approx(1.0) and result["spearman_pooled"] == pytest.approx(1.0)  # per episode it would be below 1
    assert spearman(result["utility_predicted"], result["utility_measured"]) < 1.0


def test_world_file_round_trip_and_bad_files(tmp_path):
    world = ensemble_world()
    path = world.save(tmp_path / "world.json")
    loaded = FittedWorld.load(path)
    assert np.array_equal(loaded.theta, world.theta) and loaded.capabilities == world.capabilities
    with pytest.raises(ValueError, match="not a fitted world"):
        FittedWorld.from_data({"format": "other"})
    with pytest.raises(ValueError, match="does not exist"):
        FittedWorld.load(tmp_path / "missing.json")
    bad = world.to_data()
    bad["theta"] = [[0.0] * 3]
    with pytest.raises(ValueError, match="theta must be"):
        FittedWorld.from_data(bad)
    negative = recency_world().to_data()
    negative["theta"][0][2 * K] = -1.0
    with pytest.raises(ValueError, match="learn must be non-negative"):
        FittedWorld.from_data(negative)


def _episode_rows(env, actions):
    rows = []
    for action in actions:
        observation, reward, terminated, _, info = env.step(action)
        rows.append(np.concatenate([observation["profile"], [reward], info["uncertainty"]]))
    return np.array(rows), info


@pytest.mark.parametrize("make", [recency_world, ensemble_world, prior_world])
def test_single_and_vector_are_bit_identical(make, tmp_path):
    path = str(make().save(tmp_path / "world.json"))
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (3, 2, 4, K)).astype(np.float32)  # [env, episode, step, K]
    vector = gym.make_vec("ReAD-Fitted-v0", num_envs=3, vectorization_mode="vector_entry_point", world=path, uncertainty=True, num_steps=4)
    observation, _ = vector.reset(seed=7)
    vector_rows = [[[] for _ in range(2)] for _ in range(3)]
    for episode in range(2):
        for step in range(4):
            observation, reward, terminated, _, info = vector.step(actions[:, episode, step])
            profile = info["final_obs"]["profile"] if terminated.any() else observation["profile"]
            for row in range(3):
                vector_rows[row][episode].append(np.concatenate([profile[row], [reward[row]], info["uncertainty"][row]]))
    for row in range(3):
        env = gym.make("ReAD-Fitted-v0", world=path, uncertainty=True, num_steps=4)
        env.reset(seed=7 + row)
        for episode in range(2):
            if episode:
                env.reset()
            single, info = _episode_rows(env, actions[row, episode])
            assert np.array_equal(single, np.array(vector_rows[row][episode]))
        assert "final_utility" in info


def test_ensemble_members_are_drawn_per_episode_and_spread_is_reported(tmp_path):
    path = str(ensemble_world(members=4).save(tmp_path / "world.json"))
    env = gym.make("ReAD-Fitted-v0", world=path, uncertainty=True, num_steps=3)
    members = set()
    for seed in range(12):
        env.reset(seed=seed)
        members.add(env.unwrapped.member)
    assert len(members) > 1
    _, info = _episode_rows(env, np.zeros((3, K), dtype=np.float32))
    assert info["uncertainty"].shape == (K,) and info["uncertainty"].max() > 0
    recency = gym.make("ReAD-Fitted-v0", world=str(recency_world().save(tmp_path / "r.json")), uncertainty=True, num_steps=3)
    recency.reset(seed=0)
    _, info = _episode_rows(recency, np.zeros((3, K), dtype=np.float32))
    assert not info["uncertainty"].any()


def test_fitted_env_defaults_and_bad_input(tmp_path):
    world = recency_world()
    world.fit = {"num_steps": 7}
    path = str(world.save(tmp_path / "world.json"))
    env = gym.make("ReAD-Fitted-v0", world=path).unwrapped
    assert (env.budget_tokens, env.num_steps) == (BUDGET, 7)
    with pytest.raises(ValueError, match="world must be a shipped world"):
        gym.make("ReAD-Fitted-v0", world="paper")
    with pytest.raises(ValueError, match="does not exist"):
        gym.make("ReAD-Fitted-v0", world=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="world_seed"):
        gym.make("ReAD-Fitted-v0", world=path, world_seed=1)
    with pytest.raises(ValueError, match="num_threads must be 1"):
        gym.make_vec("ReAD-Fitted-v0", num_envs=2, vectorization_mode="vector_entry_point", world=path, num_threads=2)
    with pytest.raises(ValueError, match="exactly its capabilities"):
        gym.make("ReAD-Fitted-v0", world=path, capabilities=["math", "code"])
    calibrated = tmp_path / "calibrated.json"
    calibrated.write_text(json.dumps({"capabilities": ["math"]}))
    with pytest.raises(ValueError, match="not a fitted world"):
        gym.make("ReAD-Fitted-v0", world=str(calibrated))


@pytest.mark.parametrize("env_id, world", [("ReAD-Fitted-v0", "default"), ("ReAD-Fitted-v1", "mini_v1")])
def test_shipped_worlds_load_and_run(env_id, world):
    env = gym.make(env_id)
    env.reset(seed=0)
    assert env.unwrapped.world.to_data() == FittedWorld.shipped(world).to_data()
    for _ in range(env.unwrapped.num_steps):
        observation, _, terminated, _, info = env.step(np.zeros(K, dtype=np.float32))
    assert terminated and 0.0 <= info["final_utility"] <= 1.0
    assert env.unwrapped.world.fit["data"]  # the shipped world says what it was fitted on
    vector = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point")
    vector.reset(seed=0)
    assert vector.world.to_data() == env.unwrapped.world.to_data()  # the registered default reaches the native vector form
    with pytest.raises(ValueError, match="no shipped world 'nope'"):
        FittedWorld.shipped("nope")


def test_fit_and_validate_writes_the_better_world_and_a_report(tmp_path):
    pytest.importorskip("torch")
    from read_env.fit.validate import fit_and_validate

    episodes = episodes_of(recency_world(), 16)
    world, results = fit_and_validate(episodes, ["recency", "ensemble"], 0.25, tmp_path / "world.json", seed=0, data="toy",
                                      options={"recency": {"iterations": 30}, "ensemble": {"iterations": 5, "members": 2, "hidden": 4}})
    assert set(results) == {"recency", "ensemble"} and world.kind == choose(results)
    for name in ("report.md", "profiles.png", "ranking.png"):
        assert (tmp_path / "world_report" / name).is_file()
    loaded = FittedWorld.load(tmp_path / "world.json")
    assert loaded.fit["chosen"] == world.kind and loaded.fit["num_steps"] == 6 and loaded.fit["fitted_on"] == "the 12 training episodes"
    refitted, _ = fit_and_validate(episodes, ["recency"], 0.25, tmp_path / "all.json", options={"recency": {"iterations": 30}}, refit_all=True)
    assert refitted.fit["fitted_on"] == "all 16 episodes, after validation" and not np.array_equal(refitted.theta, world.theta)
    env = gym.make("ReAD-Fitted-v0", world=str(tmp_path / "world.json"))
    env.reset(seed=0)
    env.step(np.zeros(K, dtype=np.float32))


def test_uncertainty_penalty_lowers_the_reward_by_the_mean_spread(tmp_path):
    path = str(ensemble_world(members=4).save(tmp_path / "world.json"))
    action = np.linspace(-1, 1, K).astype(np.float32)
    plain = gym.make("ReAD-Fitted-v0", world=path, uncertainty=True, num_steps=3)
    penalized = gym.make("ReAD-Fitted-v0", world=path, uncertainty=True, uncertainty_penalty=2.0, num_steps=3)
    for env in (plain, penalized):
        env.reset(seed=4)
    for _ in range(3):
        _, reward, _, _, info = plain.step(action)
        _, penalized_reward, _, _, penalized_info = penalized.step(action)
        assert np.array_equal(info["uncertainty"], penalized_info["uncertainty"]) and info["uncertainty"].mean() > 0
        assert penalized_reward == pytest.approx(reward - 2.0 * info["uncertainty"].mean(), abs=1e-12)
    with pytest.raises(ValueError, match="uncertainty_penalty"):
        gym.make("ReAD-Fitted-v0", world=path, uncertainty_penalty=-1.0)


def test_a_prior_pools_members_each_starting_from_its_students_profile(tmp_path):
    worlds = [ensemble_world(seed=0), ensemble_world(seed=1), ensemble_world(seed=2)]
    prior = FittedWorld.combine(worlds)
    assert prior.members == 9 and np.array_equal(prior.theta[3:6], worlds[1].theta)
    assert np.array_equal(prior.starts, np.repeat([world.student for world in worlds], 3, axis=0))
    assert prior.probe_noise == pytest.approx(0.02) and len(prior.fit["worlds"]) == 3
    loaded = FittedWorld.load(prior.save(tmp_path / "prior.json"))
    assert np.array_equal(loaded.starts, prior.starts) and np.array_equal(loaded.theta, prior.theta)
    tokens, allocation = np.full((1, 4), BUDGET / 4), np.full((1, 4, K), 1 / K)
    for member in (0, 4, 8):  # a member's rollout is its own world's, from its own start
        expected = worlds[member // 3].rollout(tokens, allocation, np.array([BUDGET]), member=member % 3)
        assert np.array_equal(prior.rollout(tokens, allocation, np.array([BUDGET]), member=member), expected)
    paths = [str(world.save(tmp_path / f"w{index}.json")) for index, world in enumerate(worlds)]
    env = gym.make("ReAD-Fitted-v0", world=paths, noise=False, num_steps=2)
    members = set()
    for seed in range(30):
        observation, _ = env.reset(seed=seed)
        member = env.unwrapped.member
        members.add(member)
        assert np.array_equal(observation["profile"], prior.starts[member].astype(np.float32))  # noise off: the reading is the start
        for _ in range(2):
            _, _, _, _, info = env.step(np.zeros(K, dtype=np.float32))
        assert info["initial_utility"] == pytest.approx(float(env.unwrapped.utility_weights @ prior.starts[member]))
    assert {member // 3 for member in members} == {0, 1, 2}  # every student's world is drawn
    with pytest.raises(ValueError, match="must share kind"):
        FittedWorld.combine([ensemble_world(), recency_world()])
    with pytest.raises(ValueError, match="must share kind"):
        FittedWorld.combine([ensemble_world(members=3), ensemble_world(members=2)])
    with pytest.raises(ValueError, match="non-empty list"):
        gym.make("ReAD-Fitted-v0", world=[])
    with pytest.raises(ValueError, match="one row of them per member"):
        FittedWorld("ensemble", PAPER_CAPABILITIES, np.full((2, K), 0.3), prior.theta, BUDGET, 4)


def test_the_shipped_student_prior_covers_three_students():
    prior, first = FittedWorld.shipped("mini_v1_students"), FittedWorld.shipped("mini_v1")
    assert prior.members == 3 * first.members and np.array_equal(prior.theta[: first.members], first.theta)
    assert np.array_equal(prior.starts[0], first.student) and len({tuple(row) for row in prior.starts}) == 3
    env = gym.make("ReAD-Fitted-v1", world="mini_v1_students")
    env.reset(seed=0)
    assert env.unwrapped.world.members == prior.members and env.unwrapped.num_steps == 8
