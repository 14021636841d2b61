"""ReAD-Surrogate-v1: calibration kept, order of training matters, nonlinear utility, no privileged signal."""

import itertools
import json

import gymnasium as gym
import numpy as np
import pytest

from read_env import contract
from read_env.step_kernel import Contract, Episodes, new_block, outputs_of
from read_env.surrogate import path_dependent_kernel
from read_env.surrogate.oracle import allocation_library, final_profiles, final_utilities, greedy_schedule, oracle_schedule, phase_schedules
from read_env.surrogate.path_dependent_world import PathWorld
from read_env.tasks import TASKS
from read_env.utility import power_mean, project_to_simplex, requirement_from_utility, task_utility

CAPABILITIES = list(PathWorld.paper().capabilities)


@pytest.fixture(scope="module")
def world():
    return PathWorld.paper()


def index(name):
    return CAPABILITIES.index(name)


@pytest.mark.parametrize("num_steps", [1, 7, 20])
def test_one_hot_runs_reproduce_the_paper_transfer_matrices(world, num_steps):
    k = len(CAPABILITIES)
    for budget_index, budget in enumerate(world.calibration_budgets):
        schedules = np.repeat(np.eye(k)[:, None], num_steps, axis=1)
        change = final_profiles(world, schedules, contract.step_tokens(int(budget), num_steps)) - world.student
        np.testing.assert_allclose(100 * change, 100 * world.transfer[budget_index], atol=1e-9)


def two_phases(world, first, second, budget, num_steps=20):
    a, b = np.eye(len(CAPABILITIES))[[index(first), index(second)]]
    half = num_steps // 2
    schedules = np.array([[a] * half + [b] * half, [b] * half + [a] * half, [(a + b) / 2] * num_steps])
    return final_profiles(world, schedules, contract.step_tokens(budget, num_steps))


def test_prerequisite_first_learns_more(world):
    """Reasoning then math beats math then reasoning, and the mixture, on math (Skill-It's ordering)."""
    forward, backward, mixture = two_phases(world, "reasoning", "math", 20_000_000)[:, index("math")]
    assert forward > mixture > backward


def test_harm_is_repaired_by_later_training(world):
    """Math then steerability keeps steerability; steerability then math leaves math's harm on it."""
    forward, backward, mixture = two_phases(world, "math", "steerability", 150_000_000)[:, index("steerability")]
    assert forward > mixture > backward
    assert forward - backward > 0.05  # more than 5 points


def test_without_both_mechanisms_order_stops_mattering_except_slow_forgetting(world):
    data = {**world.to_calibration(), "prerequisites": {}, "repair_tokens": 1e30}
    flat = PathWorld.from_calibration(data)
    forward, backward, _ = two_phases(flat, "reasoning", "math", 20_000_000)[:, index("math")]
    assert abs(forward - backward) < 0.002


def test_requirement_is_the_projected_gradient_of_the_utility():
    profile = np.array([0.3, 0.09, 0.16, 0.73, 0.26, 0.3, 0.49, 0.69])
    weights = TASKS["chat_assistant"].requirement(CAPABILITIES)
    assert np.allclose(requirement_from_utility(profile, weights, 1.0), weights)
    eps = 1e-6
    gradient = np.array([(power_mean(profile + eps * e, weights, 0.0) - power_mean(profile - eps * e, weights, 0.0)) / (2 * eps) for e in np.eye(8)])
    np.testing.assert_allclose(requirement_from_utility(profile, weights, 0.0), project_to_simplex(gradient), atol=1e-8)
    env = gym.make("ReAD-Surrogate-v1", task="chat_assistant")
    observation, _ = env.reset(seed=0)
    expected = requirement_from_utility(env.unwrapped.world.student, weights, TASKS["chat_assistant"].power)
    np.testing.assert_allclose(observation["requirement"], expected, atol=1e-7)


def test_utility_readings_are_noisy_and_the_true_value_comes_only_at_the_end():
    env = gym.make("ReAD-Surrogate-v1", task="math_word_problems", num_steps=4, utility_noise=0.01)
    env.reset(seed=3)
    infos = [env.step(np.zeros(8, dtype=np.float32))[4] for _ in range(4)]
    assert all("final_utility" not in info for info in infos[:-1])
    last = infos[-1]
    true = float(power_mean(env.unwrapped.true_profile, env.unwrapped.utility_weights, env.unwrapped.utility_power))
    assert last["final_utility"] == pytest.approx(true) and last["utility"] != last["final_utility"]
    quiet = gym.make("ReAD-Surrogate-v1", task="math_word_problems", num_steps=4, noise=False)
    quiet.reset(seed=3)
    final = [quiet.step(np.zeros(8, dtype=np.float32))[4] for _ in range(4)][-1]
    assert final["utility"] == final["final_utility"]


def test_random_worlds_draw_prerequisites_and_repair_and_round_trip(tmp_path):
    first, second = (PathWorld.random(np.random.default_rng(seed)) for seed in (1, 2))
    assert not np.array_equal(first.prerequisites, second.prerequisites) and first.repair_tokens != second.repair_tokens
    path = tmp_path / "world.json"
    path.write_text(json.dumps(first.to_calibration()))
    env = gym.make("ReAD-Surrogate-v1", world=str(path), noise=False)
    env.reset(seed=0)
    np.testing.assert_array_equal(env.unwrapped.world.prerequisites, first.prerequisites)
    unseen = gym.make("ReAD-Surrogate-v1", world="random")
    unseen.reset(seed=0)
    drawn = unseen.unwrapped.world.prerequisites.copy()
    unseen.reset()
    assert not np.array_equal(drawn, unseen.unwrapped.world.prerequisites)


def test_oracle_beats_fixed_two_phase_and_greedy_schedules(world):
    weights = TASKS["math_word_problems"].requirement(CAPABILITIES)
    power = TASKS["math_word_problems"].power
    requirement = requirement_from_utility(world.student, weights, power)

    def objective(profile):
        return power_mean(profile, weights, power)

    tokens = contract.step_tokens(20_000_000, 10)
    result = oracle_schedule(world, requirement, 20_000_000, 10, objective=objective, phase_starts=True)
    library = allocation_library(requirement)
    fixed = final_utilities(world, objective, np.repeat(library[:, None], 10, axis=1), tokens)
    assert result.utility >= fixed.max()
    assert result.utility >= final_utilities(world, objective, phase_schedules(library[np.argsort(-fixed)[:12]], 10), tokens).max()
    assert result.utility >= final_utilities(world, objective, greedy_schedule(world, objective, library, tokens)[None], tokens)[0]
    assert result.utility > fixed.max() + 0.003  # path dependence leaves room to adapt on this task


def test_oracle_close_to_exhaustive_search_on_a_small_case():
    """3 capabilities, 3 steps, every schedule on the simplex grid of step 1/4 (15^3 schedules)."""
    small = PathWorld.paper().subset(["reasoning", "math", "steerability"])
    weights = np.array([0.3, 0.5, 0.2])

    def objective(profile):
        return power_mean(profile, weights, 0.0)

    grid = np.array([point for point in itertools.product(np.arange(5) / 4, repeat=3) if abs(sum(point) - 1) < 1e-9])
    schedules = np.array(list(itertools.product(grid, repeat=3)))
    tokens = contract.step_tokens(20_000_000, 3)
    exhaustive = final_utilities(small, objective, schedules, tokens).max()
    oracle = oracle_schedule(small, requirement_from_utility(small.student, weights, 0.0), 20_000_000, 3, objective=objective, phase_starts=True)
    assert oracle.utility >= exhaustive - 1e-4  # within 0.01 points of the grid optimum (the oracle is not restricted to the grid)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"utility_noise": -0.1}, "utility_noise"),
        ({"utility_noise": float("nan")}, "utility_noise"),
        ({"world": {**PathWorld.paper().to_calibration(), "prerequisites": {"math": {"cooking": 1.0}}}}, "cooking"),
        ({"world": {**PathWorld.paper().to_calibration(), "prerequisites": {"math": {"code": 9.0}}}}, "prerequisites"),
        ({"world": {**PathWorld.paper().to_calibration(), "repair_tokens": -1.0}}, "repair_tokens"),
        ({"world": "missing-world.json"}, "does not exist"),
    ],
)
def test_bad_v1_arguments_raise_naming_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("ReAD-Surrogate-v1", **kwargs)


@pytest.mark.parametrize("family", ["scores", "shortfall"])
@pytest.mark.parametrize("action_mode", ["logits", "simplex"])
def test_compiled_step_computes_the_numpy_contract_dynamics_and_utility(action_mode, family):
    """env_step (the compiled step of v1 and v2) against contract.py, PathWorld.transition and task_utility."""
    rng = np.random.default_rng(3)
    worlds = [PathWorld.random(rng) for _ in range(5)]
    world = PathWorld.stack(worlds)
    n, k = len(worlds), len(CAPABILITIES)
    state = world.transition(world.initial_state((n,)), 4_000_000, rng.dirichlet(np.ones(k), n), None)[0]
    previous = rng.uniform(0.2, 0.8, (n, k))
    requirement = rng.dirichlet(np.ones(k), n)
    essential = requirement * contract.essential_mask(requirement, 3)
    weights, power = rng.dirichlet(np.ones(k), n), np.array([1.0, 0.5, 0.0, -1.0, 0.0]) if family == "scores" else np.array([1.0, 1.25, 1.5, 2.0, 1.25])
    teacher = np.stack([w.teacher for w in worlds]) if family == "shortfall" else np.empty((n, 0))
    action = rng.uniform(-1, 1, (n, k)).astype(np.float32) if action_mode == "logits" else rng.dirichlet(np.ones(k), n).astype(np.float32)
    steps, step_tokens = np.array([0, 3, 1, 4, 2]), np.array([1e6, 2e6, 3e6, 4e6, 5e6])
    noise, readings = rng.standard_normal((n, 2 * len(step_tokens) + 1, k)), rng.standard_normal((n, len(step_tokens) + 1))
    train, probe, reading = noise[np.arange(n), steps], noise[np.arange(n), len(step_tokens) + steps + 1], readings[np.arange(n), steps + 1]
    tokens = step_tokens[steps]
    episodes = Episodes(noise, readings, requirement, essential, weights, power, teacher)
    constants = Contract(action_mode == "simplex", 0.25, step_tokens, 20_000_000.0, 0.005, 0.5, 0.01)
    block = new_block(n, k, 2 * k)
    groups = (tuple(episodes), tuple(constants), tuple(world._kernel_parameters))
    assert path_dependent_kernel.env_step(action, state, steps, previous, *groups, block, 0)
    out = outputs_of.py_func(block, k, 2 * k)
    allocation, profile, delta, true_profile, new_state, utility, read, reward, gain, spill = out[:10]
    assert out.uncertainty.shape == (n, 0)
    expected_allocation = contract.allocation_from_action(action, action_mode, 0.25, (n, k))
    np.testing.assert_allclose(allocation, expected_allocation, rtol=1e-12)
    expected_state, expected_profile = world.transition(state, tokens[:, None], expected_allocation, train)
    np.testing.assert_allclose(new_state, expected_state, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(true_profile, expected_profile, rtol=1e-12)
    probes = np.stack([np.clip(expected_profile[i] + worlds[i].probe_noise * probe[i], 0, 1) for i in range(n)])
    np.testing.assert_allclose(profile, probes, rtol=1e-12)
    np.testing.assert_allclose(delta, probes - previous, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(utility, task_utility(expected_profile, weights, power, teacher if family == "shortfall" else None), rtol=1e-12)
    np.testing.assert_allclose(read, np.clip(utility + 0.005 * reading, 0, 1), rtol=1e-12)
    expected_reward, expected_gain, expected_spill, _ = contract.step_feedback(requirement, essential, probes - previous, tokens, 20_000_000, 0.5, 0.01)
    np.testing.assert_allclose(np.stack([reward, gain, spill]), np.stack([expected_reward, expected_gain, expected_spill]), rtol=1e-10, atol=1e-15)


def reference_transition(world, state, tokens, allocation, noise):
    """The equations of read_env.surrogate.path_dependent_world's docstring, in plain numpy, for one world and rows [M, ...]."""
    k = len(world.capabilities)
    coefficients = world._response.reshape(k, k, 3)  # [j, i, m]
    exposure, repaid = state[:, :k], state[:, k:]
    readiness = 1.0 - np.exp(-exposure / world.readiness_tokens)
    reached = tokens * allocation * (1.0 + readiness @ world.prerequisites) * np.maximum(0.0, 1.0 + world.train_noise * noise)
    exposure = exposure * np.exp((allocation - 1.0) * tokens / world.forgetting_tokens) + reached
    effects = np.einsum("rim,jim->rij", 1.0 - np.exp(exposure[:, :, None] * world._decay_rates), coefficients)  # f_ij
    harm = np.where(np.eye(k, dtype=bool), 0.0, np.minimum(effects, 0.0)).sum(axis=1)
    repaid = np.minimum(0.0, harm + repaid) * np.exp(-reached / world.repair_tokens) - harm
    latent = effects.sum(axis=1) + repaid
    scale = np.where(latent >= 0.0, world.gap, world.student)
    return np.concatenate([exposure, repaid], axis=1), world.student + scale * np.tanh(latent / scale)


def test_compiled_dynamics_follow_the_documented_equations():
    rng = np.random.default_rng(5)
    for world in (PathWorld.paper(), PathWorld.random(rng)):
        state = world.initial_state((64,))
        for _ in range(10):
            allocation, noise = rng.dirichlet(np.full(len(CAPABILITIES), 0.3), 64), rng.standard_normal((64, len(CAPABILITIES)))
            expected_state, expected_profile = reference_transition(world, state, 2e6, allocation, noise)
            state, profile = world.transition(state, 2e6, allocation, noise)
            np.testing.assert_allclose(state, expected_state, rtol=1e-11, atol=1e-9)
            np.testing.assert_allclose(profile, expected_profile, rtol=1e-11)
            np.testing.assert_array_equal(profile, world.profile(state))
