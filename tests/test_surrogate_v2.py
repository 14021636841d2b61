"""ReAD-Surrogate-v2: v1's code with the shortfall utility (a requirement that reflects the card) and a persistent
probe-suite bias (read_env/utility.py, read_env/surrogate/path_dependent_env.py)."""

import gymnasium as gym
import numpy as np
import pytest

from agents.harness.runner import run_episode
from agents.registry import make_agent
from read_env import contract
from read_env.registration import V2_OPTIONS
from read_env.surrogate.oracle import final_utilities
from read_env.surrogate.path_dependent_env import named_task
from read_env.surrogate.path_dependent_world import PathWorld
from read_env.tasks import MULTI_CAPABILITY_TASKS, MULTI_TASK_SHORTFALL_POWER, TASKS
from read_env.utility import power_mean, project_to_simplex, task_requirement, task_utility
from tests.conftest import assert_same, rollout

WORLD = PathWorld.paper()
CAPABILITIES = list(WORLD.capabilities)
BUDGETS = (20_000_000, 80_000_000, 150_000_000)


def static_minus_uniform(power: float, budget: int) -> dict[str, float]:
    """Per multi-capability task, noise off, 20 steps: utility (points) of ``w = r`` minus uniform, shortfall family at ``power``."""
    tokens = contract.step_tokens(budget, 20)
    out = {}
    for name in MULTI_CAPABILITY_TASKS:
        weights = TASKS[name].requirement(CAPABILITIES)

        def objective(profile, weights=weights):
            return task_utility(profile, weights, power, WORLD.teacher)

        requirement = task_requirement(WORLD.student, weights, power, WORLD.teacher)
        schedules = np.repeat(np.array([np.full(len(CAPABILITIES), 1 / len(CAPABILITIES)), requirement])[:, None], 20, axis=1)
        uniform, static = final_utilities(WORLD, objective, schedules, tokens)
        out[name] = 100 * (static - uniform)
    return out


def top_is_the_cards(power: float) -> dict[str, bool]:
    """Per multi-capability task: whether the top capability of ``r`` is the one the card weighs most."""
    out = {}
    for name in MULTI_CAPABILITY_TASKS:
        weights = TASKS[name].requirement(CAPABILITIES)
        requirement = task_requirement(WORLD.student, weights, power, WORLD.teacher)
        out[name] = weights[np.argmax(requirement)] == weights.max()
    return out


@pytest.mark.parametrize("budget", BUDGETS)
def test_task_static_beats_uniform_on_every_multi_capability_task(budget):
    """Criterion (a) of the calibration in read_env/utility.py, at v2's power."""
    gains = static_minus_uniform(MULTI_TASK_SHORTFALL_POWER, budget)
    assert min(gains.values()) > 0, gains


def test_top_of_the_requirement_is_the_capability_the_card_weighs_most():
    """Criterion (b), and what v2 fixes: v1's geometric mean puts reasoning on top of coding_assistant's r (card weight 0.15)."""
    assert all(top_is_the_cards(MULTI_TASK_SHORTFALL_POWER).values())
    for name in MULTI_CAPABILITY_TASKS:
        env = gym.make("ReAD-Surrogate-v2", task=name, noise=False)
        observation, _ = env.reset(seed=0)
        np.testing.assert_allclose(observation["requirement"], named_task(WORLD, name, "shortfall")[1], atol=1e-7)
    v1 = gym.make("ReAD-Surrogate-v1", task="coding_assistant").reset(seed=0)[0]["requirement"]
    assert CAPABILITIES[int(np.argmax(v1))] == "reasoning"
    v1_tops = {name: CAPABILITIES[int(np.argmax(named_task(WORLD, name, "scores")[1]))] for name in MULTI_CAPABILITY_TASKS}
    assert [name for name in MULTI_CAPABILITY_TASKS if TASKS[name].weights[v1_tops[name]] == max(TASKS[name].weights.values())] == ["agentic_tool_use"]
    assert sorted(name for name, top in v1_tops.items() if top == "reasoning") == sorted(name for name in MULTI_CAPABILITY_TASKS if "reasoning" in TASKS[name].weights)


def test_the_documented_calibration_interval():
    """read_env/utility.py: linear (q = 1) fails (a) (long_document_qa at 150M), q = 1.4 fails (b) (agentic_tool_use)."""
    assert static_minus_uniform(1.0, 150_000_000)["long_document_qa"] < 0
    assert not top_is_the_cards(1.4)["agentic_tool_use"]
    assert min(static_minus_uniform(1.2, 80_000_000).values()) > 0 and min(static_minus_uniform(1.3, 150_000_000).values()) > 0
    assert all(top_is_the_cards(1.3).values())


def test_shortfall_utility_equations_and_requirement():
    rng = np.random.default_rng(0)
    weights = TASKS["chat_assistant"].requirement(CAPABILITIES)
    profiles = WORLD.student + rng.uniform(0, 1, (5, 8)) * WORLD.gap
    expected = (weights * WORLD.teacher).sum() - (weights * (WORLD.teacher - profiles) ** 1.5).sum(axis=1) ** (1 / 1.5)
    np.testing.assert_allclose(task_utility(profiles, weights, 1.5, WORLD.teacher), expected, rtol=1e-12)
    np.testing.assert_allclose(task_utility(profiles, weights, 1.0, WORLD.teacher), profiles @ weights, rtol=1e-12)  # q = 1 is linear
    np.testing.assert_allclose(task_requirement(WORLD.student, weights, 1.0, WORLD.teacher), weights, atol=1e-12)
    eps = 1e-7

    def utility(profile):
        return task_utility(profile, weights, 1.25, WORLD.teacher)

    gradient = np.array([(utility(WORLD.student + eps * e) - utility(WORLD.student - eps * e)) / (2 * eps) for e in np.eye(8)])
    np.testing.assert_allclose(task_requirement(WORLD.student, weights, 1.25, WORLD.teacher), project_to_simplex(np.maximum(gradient, 0)), atol=1e-7)
    # the scores family (v1) without a teacher
    np.testing.assert_array_equal(task_utility(profiles, weights, 0.0), power_mean(profiles, weights, 0.0))


def test_random_tasks_draw_a_shortfall_power():
    env = gym.make("ReAD-Surrogate-v2", task="random").unwrapped
    powers = set()
    for seed in range(40):
        env.reset(seed=seed)
        powers.add(env.utility_power)
    assert powers == {1.0, 1.25, 1.5, 2.0}


def test_single_capability_tasks_stay_linear():
    for name in ("math", "reasoning"):
        objective, requirement = named_task(WORLD, name, "shortfall")
        weights = TASKS[name].requirement(CAPABILITIES)
        np.testing.assert_array_equal(requirement, weights)
        profile = WORLD.student + 0.3 * WORLD.gap
        assert objective(profile) == pytest.approx(profile @ weights, abs=1e-15)


def test_v1_is_v2_with_v1_options():
    actions = np.random.default_rng(0).uniform(-1, 1, (45, 8)).astype(np.float32)
    for kwargs in ({}, {"task": "random", "world": "random"}):
        v1 = rollout(gym.make("ReAD-Surrogate-v1", **kwargs), 4, actions)
        v2 = rollout(gym.make("ReAD-Surrogate-v2", utility_family="scores", probe_bias=0.0, **kwargs), 4, actions)
        assert_same(v1, v2)
    assert gym.spec("ReAD-Surrogate-v2").kwargs == V2_OPTIONS == {"utility_family": "shortfall", "probe_bias": 0.5}


def probe_errors(probe_bias, num_envs=1000, steps=3):
    """Probe reading minus true profile [steps + 1, N, K] of N episodes (paper world, uniform allocation)."""
    vector = gym.make_vec("ReAD-Surrogate-v2", num_envs=num_envs, vectorization_mode="vector_entry_point", probe_bias=probe_bias, num_steps=10).unwrapped
    vector.reset(seed=0)
    errors = [vector.profile - vector.true_profile]
    for _ in range(steps):
        vector.step(np.zeros((num_envs, 8), dtype=np.float32))
        errors.append(vector.profile - vector.true_profile)
    return np.array(errors)


def test_probe_bias_is_persistent_within_an_episode_and_keeps_the_total_variance():
    sigma = WORLD.probe_noise
    persistent = probe_errors(1.0, num_envs=20)
    np.testing.assert_allclose(persistent, np.broadcast_to(persistent[0], persistent.shape), atol=1e-12)  # the same bias every reading
    assert np.std(persistent[0]) > 0.5 * sigma  # but different across episodes and capabilities
    half = probe_errors(0.5)
    assert np.var(half) == pytest.approx(sigma**2, rel=0.05)  # v1's total variance
    correlation = np.corrcoef(half[1].ravel(), half[3].ravel())[0, 1]
    assert correlation == pytest.approx(0.5, abs=0.05)  # the persistent share
    fresh = probe_errors(0.0)
    assert abs(np.corrcoef(fresh[1].ravel(), fresh[3].ravel())[0, 1]) < 0.05


def test_probe_bias_changes_only_the_probe_readings():
    """The bias is drawn last, so training noise, utility readings and the true utility are those of probe_bias 0."""
    actions = np.random.default_rng(1).uniform(-1, 1, (20, 8)).astype(np.float32)
    runs = {}
    for bias in (0.0, 0.5):
        env = gym.make("ReAD-Surrogate-v2", probe_bias=bias)
        env.reset(seed=2)
        runs[bias] = [env.step(action) for action in actions]
    assert [step[4]["utility"] for step in runs[0.0]] == [step[4]["utility"] for step in runs[0.5]]
    assert runs[0.0][-1][4]["final_utility"] == runs[0.5][-1][4]["final_utility"]
    assert not np.array_equal(runs[0.0][-1][0]["profile"], runs[0.5][-1][0]["profile"])


def test_v2_oracle_plans_the_environments_utility():
    episode, agent = run_episode(lambda setting: make_agent("oracle", setting), "ReAD-Surrogate-v2", "coding_assistant", 20_000_000, 20, 0, {"noise": False})
    assert episode.final_utility == pytest.approx(agent.report()["planned_utility"], abs=1e-9)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"probe_bias": -0.1}, "probe_bias"),
        ({"probe_bias": 1.5}, "probe_bias"),
        ({"probe_bias": float("nan")}, "probe_bias"),
        ({"probe_bias": True}, "probe_bias"),
        ({"probe_bias": "half"}, "probe_bias"),
        ({"utility_family": "cobb-douglas"}, "cobb-douglas"),
        ({"utility_noise": -1.0}, "utility_noise"),
    ],
)
def test_bad_v2_arguments_raise_naming_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("ReAD-Surrogate-v2", **kwargs)
    with pytest.raises(ValueError, match=message):
        gym.make_vec("ReAD-Surrogate-v2", num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
