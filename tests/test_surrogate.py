"""The surrogate's dynamics: calibration to the paper and the behaviour of real distillation."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from read_env.surrogate.world import World, paper_calibration

CALIBRATION = paper_calibration()
LABELS = sorted(CALIBRATION["budgets_tokens"], key=CALIBRATION["budgets_tokens"].get)


def one_hot_change(capability: int, budget: int, num_steps: int) -> np.ndarray:
    """Profile change in points of every capability after the whole budget on one, through the environment."""
    env = gym.make("ReAD-Surrogate-v0", action_mode="simplex", noise=False, budget_tokens=budget, num_steps=num_steps, task="random")
    start, _ = env.reset(seed=0)
    action = np.zeros(8, dtype=np.float32)
    action[capability] = 1.0
    for _ in range(num_steps):
        observation, *_ = env.step(action)
    return 100.0 * (env.unwrapped.true_profile - env.unwrapped.world.student)


def test_shipped_calibration_matches_the_paper_data_file():
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper_calibration.json"
    if shared.is_file():  # present in development and CI; the package must not depend on it
        assert json.loads(shared.read_text()) == CALIBRATION


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("num_steps", [1, 20, 37])
def test_one_hot_allocations_reproduce_transfer_matrices(label, num_steps):
    budget = CALIBRATION["budgets_tokens"][label]
    expected = np.array(CALIBRATION["transfer"][label])
    measured = np.array([one_hot_change(i, budget, num_steps) for i in range(8)])
    error = np.abs(measured - expected)
    assert error.mean() <= 0.5 and error.max() <= 2.0


def test_start_profile_is_the_paper_student_and_ceiling_the_teacher(paper_world):
    names = paper_world.capabilities
    np.testing.assert_allclose(paper_world.student * 100, [CALIBRATION["student_only"][n] for n in names])
    np.testing.assert_allclose(paper_world.teacher * 100, [CALIBRATION["teacher_only"][n] for n in names])
    np.testing.assert_array_equal(paper_world.profile(np.zeros(8)), paper_world.student)


def test_diminishing_returns_on_the_trained_capability(paper_world):
    budgets = np.linspace(0, 400e6, 41)
    for i in range(8):
        exposure = np.zeros((budgets.size, 8))
        exposure[:, i] = budgets
        gains = paper_world.profile(exposure)[:, i]
        increments = np.diff(gains)
        assert (increments > 0).all()
        assert increments[-1] < increments[0] / 3


def test_saturates_below_the_teacher(paper_world):
    exposure = np.full(8, 1e11)
    profile = paper_world.profile(exposure)
    assert (profile <= paper_world.teacher).all() and (profile >= 0).all()


def test_negative_spillover_grows_with_budget(paper_world):
    math, steerability = paper_world.capabilities.index("math"), paper_world.capabilities.index("steerability")
    changes = []
    for budget in (20e6, 80e6, 150e6, 250e6):
        exposure = np.zeros(8)
        exposure[math] = budget
        changes.append(paper_world.profile(exposure)[steerability] - paper_world.student[steerability])
    assert changes[0] < 0 and all(later < earlier for earlier, later in zip(changes, changes[1:]))


def test_mixtures_transfer_across_capabilities(paper_world):
    reasoning, general, math = (paper_world.capabilities.index(n) for n in ("reasoning", "general_knowledge", "math"))
    exposure = np.zeros(8)
    exposure[[general, math]] = 10e6
    assert paper_world.profile(exposure)[reasoning] > paper_world.student[reasoning]


def test_order_matters_through_forgetting():
    def utility(schedule):
        env = gym.make("ReAD-Surrogate-v0", action_mode="simplex", noise=False, budget_tokens=150_000_000, task="math_word_problems")
        env.reset(seed=0)
        for allocation in schedule:
            *_, info = env.step(np.asarray(allocation, dtype=np.float32))
        return info["utility"]

    math_first = [np.eye(8)[2]] * 10 + [np.eye(8)[0]] * 10
    math_last = [np.eye(8)[0]] * 10 + [np.eye(8)[2]] * 10
    assert utility(math_last) > utility(math_first) + 1e-3


def test_noise_is_seeded_and_switchable():
    def profiles(seed, **kwargs):
        env = gym.make("ReAD-Surrogate-v0", **kwargs)
        env.reset(seed=seed)
        return np.array([env.step(np.zeros(8, dtype=np.float32))[0]["profile"] for _ in range(5)])

    np.testing.assert_array_equal(profiles(1), profiles(1))
    assert not np.array_equal(profiles(1), profiles(2))
    np.testing.assert_array_equal(profiles(1, noise=False), profiles(2, noise=False))


def test_probe_noise_has_documented_scale(paper_world):
    env = gym.make("ReAD-Surrogate-v0")
    errors = []
    for seed in range(200):
        observation, _ = env.reset(seed=seed)
        errors.append(observation["profile"] - paper_world.student)
    assert np.std(errors) == pytest.approx(paper_world.probe_noise, rel=0.1)


def test_random_worlds_are_named_by_seed_and_differ_from_the_paper():
    def start(**kwargs):
        env = gym.make("ReAD-Surrogate-v0", noise=False, **kwargs)
        env.reset(seed=0)
        return env.unwrapped.world

    a, b, c = start(world="random", world_seed=1), start(world="random", world_seed=1), start(world="random", world_seed=2)
    np.testing.assert_array_equal(a.transfer, b.transfer)
    assert not np.array_equal(a.transfer, c.transfer)
    assert not np.array_equal(a.transfer, start().transfer)
    diagonal = np.diagonal(a.transfer, axis1=1, axis2=2)
    assert (diagonal > 0).all() and (np.diff(diagonal, axis=0) > 0).all()


def test_unseeded_random_world_is_drawn_per_episode_from_the_episode_seed():
    env = gym.make("ReAD-Surrogate-v0", world="random")
    env.reset(seed=5)
    first = env.unwrapped.world.transfer
    env.reset(seed=6)
    assert not np.array_equal(first, env.unwrapped.world.transfer)
    env.reset(seed=5)
    np.testing.assert_array_equal(first, env.unwrapped.world.transfer)


def test_custom_capability_subset_keeps_the_paper_cells():
    env = gym.make("ReAD-Surrogate-v0", capabilities=["steerability", "math"], task="math", noise=False, action_mode="simplex", budget_tokens=150_000_000)
    observation, _ = env.reset(seed=0)
    assert observation["profile"].shape == (2,)
    for _ in range(20):
        env.step(np.array([0.0, 1.0], dtype=np.float32))
    change = 100 * (env.unwrapped.true_profile - env.unwrapped.world.student)
    np.testing.assert_allclose(change, [CALIBRATION["transfer"]["large"][2][6], CALIBRATION["transfer"]["large"][2][2]], atol=1e-9)


def test_world_from_calibration_dict_round_trips(paper_world):
    data = paper_world.to_calibration()
    rebuilt = World.from_calibration(json.loads(json.dumps(data)))
    exposure = np.random.default_rng(0).uniform(0, 2e8, (5, 8))
    np.testing.assert_allclose(rebuilt.profile(exposure), paper_world.profile(exposure), atol=1e-12)
    env = gym.make("ReAD-Surrogate-v0", world=data)
    env.reset(seed=0)
    env.step(env.action_space.sample())


def test_reset_options_choose_task_requirement_and_world():
    env = gym.make("ReAD-Surrogate-v0")
    observation, info = env.reset(seed=0, options={"task": "code"})
    assert info["task"] == "code" and observation["requirement"][3] == 1.0
    observation, info = env.reset(seed=0, options={"requirement": {"math": 0.25, "code": 0.75}})
    np.testing.assert_allclose(observation["requirement"], [0, 0, 0.25, 0.75, 0, 0, 0, 0])
    env.reset(seed=0, options={"world": "random", "world_seed": 3})
    assert not np.array_equal(env.unwrapped.world.transfer, World.paper().transfer)
    _, info = env.reset(seed=0)
    assert info["task"] == "math_word_problems"


def test_random_task_draws_requirement_from_the_seed():
    env = gym.make("ReAD-Surrogate-v0", task="random")
    a = env.reset(seed=1)[0]["requirement"]
    b = env.reset(seed=1)[0]["requirement"]
    c = env.reset(seed=2)[0]["requirement"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.sum() == pytest.approx(1.0, abs=1e-6)
