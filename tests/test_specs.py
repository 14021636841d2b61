"""Issue 26's structure, held: each surrogate id is its spec (parts as data), every single ReAD environment steps through
``AllocationEnv.step``, and the utility family is an object whose parts the environments read."""

import ast
import importlib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import read_env
from read_env.allocation_env import AllocationEnv
from read_env.registration import SURROGATE_SPECS, V2_OPTIONS
from read_env.specs import DYNAMICS, SurrogateSpec
from read_env.tasks import RANDOM_TASK, TASKS
from read_env.utility import LINEAR, SCORES, SHORTFALL, UTILITIES, Utility, resolve_utility

PACKAGE = Path(read_env.__file__).parent


def test_each_surrogate_id_is_registered_from_its_spec():
    for env_id, spec in SURROGATE_SPECS.items():
        registered = gym.spec(env_id)
        dynamics = DYNAMICS[spec.dynamics]
        assert (registered.entry_point, registered.vector_entry_point) == (dynamics.entry_point, dynamics.vector_entry_point)
        assert registered.kwargs == spec.options()
    assert V2_OPTIONS == {"utility_family": "shortfall", "probe_bias": 0.5}
    with pytest.raises(AttributeError):
        SURROGATE_SPECS["ReAD-Surrogate-v2"].probe_bias = 0.0  # frozen: a new version is a new spec


@pytest.mark.parametrize("env_id", sorted(SURROGATE_SPECS))
def test_an_environment_has_the_parts_of_its_spec(env_id):
    spec = SURROGATE_SPECS[env_id]
    env = gym.make(env_id).unwrapped
    assert env.utility_family is UTILITIES[spec.utility]
    assert getattr(env, "probe_bias", 0.0) == spec.probe_bias


def test_a_new_spec_is_a_new_version_without_new_code():
    spec = SurrogateSpec("path_dependent", "linear", probe_bias=0.25)
    env = gym.make("ReAD-Surrogate-v1", **spec.options()).unwrapped
    assert env.utility_family is LINEAR and env.probe_bias == 0.25


def _step_methods() -> list[str]:
    """``module.Class`` of every class in ``read_env`` that defines ``step`` and is a single environment (not a vector one, not a wrapper)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if module.startswith("read_env.jax"):
            continue  # gymnax's Environment (step_env), not a Gymnasium environment
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(isinstance(item, ast.FunctionDef) and item.name == "step" for item in node.body):
                cls = getattr(importlib.import_module(module), node.name)
                if isinstance(cls, type) and issubclass(cls, gym.Env) and not issubclass(cls, gym.Wrapper):
                    found.append(f"{module}.{node.name}")
    return found


def test_allocation_env_step_is_the_only_single_environment_step():
    assert _step_methods() == ["read_env.allocation_env.AllocationEnv"]
    for env_id in read_env.ENV_IDS:
        entry = gym.spec(env_id).entry_point
        module, name = entry.split(":")
        assert getattr(importlib.import_module(module), name).step is AllocationEnv.step, env_id


def test_utility_families_are_objects_named_in_one_table():
    assert set(UTILITIES) == {"linear", "scores", "shortfall"} and all(isinstance(u, Utility) for u in UTILITIES.values())
    assert resolve_utility("shortfall") is SHORTFALL and resolve_utility(SCORES) is SCORES
    with pytest.raises(ValueError, match="unknown utility family 'ces'.*'linear', 'scores', 'shortfall'"):
        resolve_utility("ces")


def test_each_family_draws_a_power_only_for_a_random_task():
    class Counting:
        calls = 0

        def integers(self, n):
            Counting.calls += 1
            return n - 1

    for family in UTILITIES.values():
        for task in TASKS:
            assert family.power(task, None) == family.card_power(task)
        Counting.calls = 0
        power = family.power(RANDOM_TASK, Counting())
        assert Counting.calls == (1 if family.random_powers else 0)
        assert power == (family.random_powers[-1] if family.random_powers else 1.0)
    assert SCORES.card_power("coding_assistant") == TASKS["coding_assistant"].power
    assert LINEAR.card_power("coding_assistant") == 1.0 == SHORTFALL.card_power("math")


def test_the_linear_family_is_the_weights_and_the_power_mean_at_one():
    rng = np.random.default_rng(0)
    profile, teacher = rng.random((3, 8)), np.ones((3, 8))
    weights = rng.dirichlet(np.ones(8), size=3)
    np.testing.assert_allclose(LINEAR.value(profile, weights, 1.0, teacher), (weights * profile).sum(axis=-1), rtol=1e-15)
    np.testing.assert_array_equal(LINEAR.requirement(profile, weights, 1.0, teacher), weights)
    np.testing.assert_allclose(SHORTFALL.value(profile, weights, 1.0, teacher), (weights * profile).sum(axis=-1), rtol=1e-12)
    assert LINEAR.teacher_columns(teacher).shape == (3, 0) == SCORES.teacher_columns(teacher).shape
    assert SHORTFALL.teacher_columns(teacher) is teacher


def test_a_built_world_is_passed_as_is():
    """``world=`` takes a world of the environment's class already built: no serialising and re-parsing (the fitted
    environment hands its loaded world on this way), the same episodes as its name, and a clear error for another class."""
    from read_env.fitted.world import FittedWorld
    from read_env.surrogate.path_dependent_world import PathWorld
    from read_env.surrogate.world import World

    loaded = FittedWorld.resolve("default")
    fitted = gym.make("ReAD-Fitted-v0", world="default").unwrapped
    assert isinstance(fitted.world_spec, FittedWorld) and fitted._fixed_world is fitted.world_spec
    np.testing.assert_array_equal(fitted._fixed_world.theta, loaded.theta)
    by_name, by_object = gym.make("ReAD-Surrogate-v1"), gym.make("ReAD-Surrogate-v1", world=PathWorld.paper())
    for env in (by_name, by_object):
        env.reset(seed=3)
    steps = [[env.step(np.full(8, 0.1, np.float32))[1] for _ in range(3)] for env in (by_name, by_object)]
    assert steps[0] == steps[1]
    with pytest.raises(ValueError, match="world is a World; this environment steps a PathWorld"):
        gym.make("ReAD-Surrogate-v1", world=World.paper())


@pytest.mark.parametrize("env_id, readings, bias", [("ReAD-Surrogate-v0", False, 0.0), ("ReAD-Surrogate-v1", True, 0.0), ("ReAD-Surrogate-v2", True, 0.5)])
def test_the_probe_part_draws_what_its_id_reads(env_id, readings, bias):
    """v0 reports the true utility and draws no readings, v1 and v2 draw a dev-split reading per step, v2 a bias; with
    noise off nothing is drawn and the reading is exact."""
    env = gym.make(env_id).unwrapped
    assert (env.probe.utility_noise is not None, env.probe.bias) == (readings, bias) and env.probe_bias == bias
    env.reset(seed=0)
    assert (env._utility_readings is not None) == readings
    rng = np.random.default_rng(0)
    assert (env.probe.draw_bias(rng, 8) is not None) == (bias > 0)
    quiet = gym.make(env_id, noise=False).unwrapped
    assert quiet.probe.draw_utility_readings(rng, 5) is None and quiet.probe.draw_bias(rng, 8) is None
    _, info = quiet.reset(seed=0)
    assert info["utility"] == quiet._true_utility(quiet.true_profile)
