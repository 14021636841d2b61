"""The JAX surrogates (read_env.jax) against the numpy/numba environments: whole episodes, single and batched."""

import json
from functools import partial

import gymnasium as gym
import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="read_env.jax needs JAX: pip install 'read-env[jax]'")
gymnax = pytest.importorskip("gymnax", reason="read_env.jax needs gymnax: pip install 'read-env[jax]'")

import jax.numpy as jnp  # noqa: E402

from read_env import contract  # noqa: E402
from read_env import jax as rj  # noqa: E402
from read_env.jax import utility as jax_utility  # noqa: E402
from read_env.jax.env import essential_mask  # noqa: E402
from read_env.jax.world import calibrate, draw_world, from_numpy, prior_from_numpy  # noqa: E402
from read_env.surrogate.path_dependent_world import PathWorld  # noqa: E402
from read_env.surrogate.world import World  # noqa: E402
from read_env.tasks import TASKS  # noqa: E402
from read_env.registration import SURROGATE_SPECS  # noqa: E402
from read_env.utility import SHORTFALL, UTILITIES, power_mean, project_to_simplex, requirement_from_utility, task_requirement, task_utility  # noqa: E402

TOLERANCE = 1e-5
V0, V1, V2 = "ReAD-Surrogate-v0", "ReAD-Surrogate-v1", "ReAD-Surrogate-v2"
CAPABILITIES = World.paper().capabilities


@partial(jax.jit, static_argnums=0)
def rollout(env, params, actions, key):
    """A whole episode of ``actions`` [T, K] through gymnax's ``step`` (autoreset included): the observations
    before autoreset [T, 4K + 1], rewards, terminations and infos [T, ...], and the first observation."""
    reset_key, *step_keys = jax.random.split(key, actions.shape[0] + 1)
    first, state = env.reset(reset_key, params)

    def one(state, inputs):
        step_key, action = inputs
        observation, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
        seen = jnp.where(terminated, info["final_observation"], observation)
        return state, (seen, reward, terminated, truncated, info)

    _, (observations, rewards, terminated, truncated, infos) = jax.lax.scan(one, state, (jnp.stack(step_keys), actions))
    return first, observations, rewards, terminated, truncated, infos


def numpy_episode(env_id, actions, reset_options=None, **kwargs):
    """The same episode through ``gym.make``: first observation, observations [T, 4K + 1], rewards, terminations, infos."""
    env = gym.make(env_id, **kwargs)
    space = env.observation_space
    first, _ = env.reset(seed=0, options=reset_options)
    observations, rewards, terminated, infos = [], [], [], []
    for action in actions:
        observation, reward, done, truncated, info = env.step(action)
        assert not truncated
        observations.append(gym.spaces.flatten(space, observation))
        rewards.append(reward)
        terminated.append(done)
        infos.append(info)
    return gym.spaces.flatten(space, first), np.array(observations), np.array(rewards), np.array(terminated), infos


def random_actions(action_mode, num_steps, seed, k=len(CAPABILITIES)):
    rng = np.random.default_rng(seed)
    if action_mode == "logits":
        return rng.uniform(-1, 1, (num_steps, k)).astype(np.float32)
    return rng.dirichlet(np.ones(k), num_steps).astype(np.float32)


def assert_same_episode(jax_result, numpy_result, env_id):
    first, observations, rewards, terminated, truncated, infos = jax.tree.map(np.asarray, jax_result)
    np_first, np_observations, np_rewards, np_terminated, np_infos = numpy_result
    np.testing.assert_allclose(first, np_first, atol=TOLERANCE)
    np.testing.assert_allclose(observations, np_observations, atol=TOLERANCE)
    np.testing.assert_allclose(rewards, np_rewards, atol=TOLERANCE)
    np.testing.assert_array_equal(terminated, np_terminated)
    assert not truncated.any() and terminated[-1] and not terminated[:-1].any()
    for key in ("allocation", "delta_profile", "gain", "spillover", "cost", "utility", "tokens_used", "tokens_used_total", "step"):
        np.testing.assert_allclose(infos[key], np.array([info[key] for info in np_infos], dtype=np.float64), atol=TOLERANCE, err_msg=key)
    if env_id != V0:
        for key in ("final_utility", "initial_utility"):
            assert np.isnan(infos[key][:-1]).all()
            np.testing.assert_allclose(infos[key][-1], np_infos[-1][key], atol=TOLERANCE)


@pytest.fixture(scope="module")
def world_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("world") / "world.json"
    path.write_text(json.dumps(PathWorld.random(np.random.default_rng(7)).to_calibration()))
    return str(path)


@pytest.fixture(scope="module")
def envs():
    """One compiled environment per (id, action mode): ``make``'s params for any world or task run on it."""
    return {(env_id, mode): rj.make(env_id, noise=False, action_mode=mode)[0] for env_id in (V0, V1, V2) for mode in ("logits", "simplex")}


@pytest.mark.parametrize("env_id", [V0, V1, V2])
@pytest.mark.parametrize("action_mode", ["logits", "simplex"])
@pytest.mark.parametrize("world", ["paper", "seeded", "file"])
@pytest.mark.parametrize("task", ["math_word_problems", "code", "custom"])
@pytest.mark.parametrize("budget", [20_000_000, 150_000_000])
def test_episodes_equal_the_numpy_environment(envs, world_file, env_id, action_mode, world, task, budget):
    world_kwargs = {"paper": {"world": "paper"}, "seeded": {"world": "random", "world_seed": 11}, "file": {"world": world_file}}[world]
    requirement = np.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.15, 0.25, 0.0]) if task == "custom" else None
    kwargs = dict(noise=False, action_mode=action_mode, budget_tokens=budget, **world_kwargs)
    _, params = rj.make(env_id, task="random" if task == "custom" else task, requirement=requirement, **kwargs)
    actions = random_actions(action_mode, 20, seed=budget + len(task))
    result = rollout(envs[env_id, action_mode], params, jnp.asarray(actions), jax.random.key(0))
    options = {"requirement": requirement} if requirement is not None else None
    assert_same_episode(result, numpy_episode(env_id, actions, options, task=task if requirement is None else "math", **kwargs), env_id)


def test_a_subset_of_capabilities_equals_the_numpy_environment():
    kwargs = dict(world="random", world_seed=5, capabilities=["code", "math", "reasoning"], task="math_word_problems", noise=False, num_steps=6)
    env, params = rj.make(V1, **kwargs)
    assert env.observation_space(params).shape == (13,)
    actions = random_actions("logits", 6, seed=3, k=3)
    assert_same_episode(rollout(env, params, jnp.asarray(actions), jax.random.key(0)), numpy_episode(V1, actions, **kwargs), V1)


@pytest.mark.parametrize("env_id", [V0, V1, V2])
def test_a_vmapped_batch_of_worlds_tasks_and_budgets_equals_single_numpy_episodes(envs, env_id):
    rows = [(seed, task, budget) for seed, task, budget in zip(range(4), ["math", "science_qa", "chat_assistant", "tool_use"], [20_000_000, 150_000_000] * 2)]
    params = rj.stack_params([rj.make(env_id, world="random", world_seed=seed, task=task, budget_tokens=budget, noise=False)[1] for seed, task, budget in rows])
    actions = np.stack([random_actions("logits", 20, seed) for seed in range(len(rows))])
    batched = jax.vmap(rollout, in_axes=(None, 0, 0, None))(envs[env_id, "logits"], params, jnp.asarray(actions), jax.random.key(0))
    for index, (seed, task, budget) in enumerate(rows):
        expected = numpy_episode(env_id, actions[index], world="random", world_seed=seed, task=task, budget_tokens=budget, noise=False)
        assert_same_episode(jax.tree.map(lambda leaf: leaf[index], batched), expected, env_id)


def test_a_vmapped_batch_equals_the_numba_vector_environment(envs):
    num_envs, num_steps = 6, 20
    _, params = rj.make(V1, task="coding_assistant", noise=False)
    actions = np.stack([random_actions("logits", num_steps, seed) for seed in range(num_envs)])  # [N, T, K]
    batched = jax.vmap(rollout, in_axes=(None, None, 0, None))(envs[V1, "logits"], params, jnp.asarray(actions), jax.random.key(0))
    vector = gym.make_vec(V1, num_envs=num_envs, vectorization_mode="vector_entry_point", task="coding_assistant", noise=False)
    vector.reset(seed=0)
    for t in range(num_steps):
        observation, reward, terminated, _, info = vector.step(actions[:, t])
        seen = info["final_obs"] if terminated.all() else observation
        flat = np.stack([gym.spaces.flatten(vector.single_observation_space, {key: value[i] for key, value in seen.items()}) for i in range(num_envs)])
        np.testing.assert_allclose(np.asarray(batched[1][:, t]), flat, atol=TOLERANCE)
        np.testing.assert_allclose(np.asarray(batched[2][:, t]), reward, atol=TOLERANCE)
        np.testing.assert_array_equal(np.asarray(batched[3][:, t]), terminated)


@pytest.mark.parametrize("power", [1.0, 0.5, 0.0, -1.0])
def test_utility_and_requirement_equal_numpy(power):
    rng = np.random.default_rng(int(10 * power) + 20)
    profiles, weights = rng.uniform(0, 1, (50, 8)), rng.dirichlet(np.full(8, 0.5), 50)
    powers = jnp.full(50, power, jnp.float32)
    as32 = partial(jnp.asarray, dtype=jnp.float32)
    np.testing.assert_allclose(jax.vmap(jax_utility.power_mean)(as32(profiles), as32(weights), powers), power_mean(profiles, weights, power), atol=TOLERANCE)
    np.testing.assert_allclose(jax.vmap(jax_utility.requirement_from_utility)(as32(profiles), as32(weights), powers), requirement_from_utility(profiles, weights, power), atol=TOLERANCE)


@pytest.mark.parametrize("power", SHORTFALL.random_powers)
def test_shortfall_utility_and_requirement_equal_numpy(power):
    rng = np.random.default_rng(int(4 * power))
    teachers = rng.uniform(0.3, 1, (50, 8))
    profiles, weights = teachers * rng.uniform(0, 1, (50, 8)), rng.dirichlet(np.full(8, 0.5), 50)
    powers = jnp.full(50, power, jnp.float32)
    as32 = partial(jnp.asarray, dtype=jnp.float32)
    utilities = jax.vmap(jax_utility.shortfall_utility)(as32(profiles), as32(weights), powers, as32(teachers))
    np.testing.assert_allclose(utilities, task_utility(profiles, weights, power, teachers), atol=TOLERANCE)
    requirements = jax.vmap(jax_utility.shortfall_requirement)(as32(profiles), as32(weights), powers, as32(teachers))
    np.testing.assert_allclose(requirements, task_requirement(profiles, weights, power, teachers), atol=TOLERANCE)


def test_sort_free_orderings_equal_the_numpy_sorts():
    """The top-k mask and the simplex projection, computed by pairwise comparisons, on vectors with ties."""
    rng = np.random.default_rng(5)
    vectors = np.round(rng.normal(0.1, 0.3, (200, 8)), 1)  # rounded: many ties
    vectors[:3] = [np.full(8, 0.125), np.eye(8)[2], np.zeros(8)]
    masks = jax.vmap(lambda row: essential_mask(row, 3))(jnp.asarray(vectors, jnp.float32))
    np.testing.assert_array_equal(masks, contract.essential_mask(vectors, 3))
    projected = jax.vmap(jax_utility.project_to_simplex)(jnp.asarray(vectors, jnp.float32))
    np.testing.assert_allclose(projected, project_to_simplex(vectors), atol=TOLERANCE)


@pytest.mark.parametrize("world_class", [World, PathWorld])
def test_calibration_solves_the_numpy_worlds_response(world_class):
    world = world_class.random(np.random.default_rng(3))
    np.testing.assert_allclose(calibrate(prior_from_numpy(world)).cells, from_numpy(world).cells, atol=TOLERANCE)


def test_drawn_worlds_follow_the_numpy_prior():
    """Quartiles of 1,000 worlds drawn in JAX and 1,000 drawn by PathWorld.random agree (within a third of the
    interquartile range; a quartile's standard error is ~5% of it)."""
    paper, count = PathWorld.paper(), 1000
    drawn = jax.vmap(lambda key: draw_world(key, prior_from_numpy(paper), True))(jax.random.split(jax.random.key(0), count))
    rng = np.random.default_rng(0)
    reference = [PathWorld.random(rng) for _ in range(count)]
    cells = [world._response.reshape(8, 8, 3).transpose(1, 2, 0) for world in reference]  # as from_numpy lays them out
    for name, theirs in [("student", [w.student for w in reference]), ("gap", [w.gap for w in reference]), ("teacher", [w.teacher for w in reference]), ("cells", cells),
                         ("prerequisites", [w.prerequisites for w in reference]), ("forgetting_tokens", [np.log(w.forgetting_tokens) for w in reference]),
                         ("repair_tokens", [np.log(w.repair_tokens) for w in reference])]:  # fmt: skip
        ours = np.asarray(getattr(drawn, name), np.float64)
        ours = np.log(ours) if name.endswith("tokens") else ours
        quartiles = np.quantile(ours, [0.25, 0.5, 0.75], axis=0), np.quantile(np.array(theirs), [0.25, 0.5, 0.75], axis=0)
        spread = quartiles[1][2] - quartiles[1][0]
        assert (np.abs(quartiles[0] - quartiles[1]) <= spread / 3 + 1e-6).all(), name


@pytest.mark.parametrize("env_id, family", [(V1, "scores"), (V2, "shortfall")])
def test_random_tasks_follow_dirichlet_half_and_the_random_powers(env_id, family):
    env, params = rj.make(env_id, task="random")
    states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(1), 20_000), params)[1]
    k = len(CAPABILITIES)
    np.testing.assert_allclose(np.asarray(states.weights).sum(axis=1), 1.0, atol=1e-5)
    variance = (1 / k) * (1 - 1 / k) / (k * 0.5 + 1)  # Dirichlet(0.5) marginal
    np.testing.assert_allclose(np.asarray(states.weights).var(axis=0), variance, rtol=0.1)
    powers, counts = np.unique(np.asarray(states.power), return_counts=True)
    assert sorted(powers.tolist()) == sorted(UTILITIES[family].random_powers) and (np.abs(counts / 20_000 - 0.25) < 0.02).all()


def test_a_task_mixture_draws_named_and_random_tasks():
    env, params = rj.make(V0, task=["math", "code", "random"])
    weights = np.asarray(jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(2), 3000), params)[1].weights)
    named = {name: (np.abs(weights - TASKS[name].requirement(CAPABILITIES)) < 1e-6).all(axis=1).mean() for name in ("math", "code")}
    assert all(abs(share - 1 / 3) < 0.04 for share in named.values()), named


@pytest.mark.parametrize("env_id", [V1, V2])
def test_noise_reads_the_profile_with_the_probe_noise(env_id):
    """The probe noise's standard deviation is the world's, with v2's bias mixed in or not."""
    env, params = rj.make(env_id)
    states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(3), 5000), params)[1]
    error = np.asarray(states.profile - states.true_profile)
    np.testing.assert_allclose(error.std(axis=0), World.paper().probe_noise, rtol=0.1)


def _reading_errors_numpy(env_id, episodes):
    """Probe errors (reading - true profile) [N, 2, K] of the readings after reset and after one step, numpy env."""
    env = gym.make(env_id, num_steps=2)
    errors = []
    for seed in range(episodes):
        first = env.reset(seed=seed)[0]["profile"] - env.unwrapped.true_profile
        errors.append([first, env.step(np.zeros(len(CAPABILITIES), np.float32))[0]["profile"] - env.unwrapped.true_profile])
    return np.array(errors)


@partial(jax.jit, static_argnums=(0, 2))
def _reading_errors_jax(env, params, episodes, key):
    """The same [N, 2, K] from JAX episodes (vmap over keys), and the episodes' probe biases [N, K] (``None``: none)."""

    def episode(key):
        reset_key, step_key = jax.random.split(key)
        _, state = env.reset(reset_key, params)
        _, stepped, *_ = env.step_env(step_key, state, jnp.zeros(len(CAPABILITIES)), params)
        return jnp.stack([state.profile - state.true_profile, stepped.profile - stepped.true_profile]), stepped.probe_bias

    return jax.vmap(episode)(jax.random.split(key, episodes))


def _mean_correlation(errors):
    """The correlation over episodes of the two readings' errors [N, 2, K], averaged over the K capabilities."""
    return np.mean([np.corrcoef(errors[:, 0, c], errors[:, 1, c])[0, 1] for c in range(errors.shape[2])])


@pytest.mark.parametrize("env_id, rho", [(V1, 0.0), (V2, 0.5)])
def test_the_probe_bias_correlates_the_readings_of_an_episode_as_numpy_does(env_id, rho):
    """Two readings of one episode share its probe bias: their errors correlate by ``probe_bias`` (v1: 0, v2: 0.5).
    Means of 8 correlations over 4,000 (JAX) and 2,000 (numpy) episodes: standard errors ~0.004 and ~0.006, the
    tolerance 0.05; fixed keys and seeds."""
    env, params = rj.make(env_id, num_steps=2)
    assert env.probe_bias == rho == gym.make(env_id).unwrapped.probe_bias
    ours = _mean_correlation(np.asarray(_reading_errors_jax(env, params, 4000, jax.random.key(6))[0], np.float64))
    theirs = _mean_correlation(_reading_errors_numpy(env_id, 2000))
    assert abs(ours - rho) < 0.05 and abs(theirs - rho) < 0.05 and abs(ours - theirs) < 0.05, (ours, theirs)


def test_a_biased_episode_keeps_its_bias_and_mixes_it_into_every_reading():
    """A reading's error is ``probe_noise * (sqrt(1 - rho) xi_t + sqrt(rho) b)`` with the state's bias ``b``:
    less the bias's part, the errors of two readings are fresh noise of std ``sqrt(1 - rho) probe_noise``, uncorrelated
    (4,000 episodes; the bias's part left in would correlate them by 1/3)."""
    env, params = rj.make(V2, num_steps=2)
    errors, bias = _reading_errors_jax(env, params, 4000, jax.random.key(7))
    assert bias.shape == (4000, len(CAPABILITIES))
    probe_noise = World.paper().probe_noise
    fresh = np.asarray(errors, np.float64) - probe_noise * np.sqrt(0.5) * np.asarray(bias, np.float64)[:, None, :]
    assert abs(_mean_correlation(fresh)) < 0.05
    np.testing.assert_allclose(fresh.std(axis=0) / probe_noise, np.sqrt(0.5), rtol=0.1)
    assert rj.make(V2, noise=False)[0].reset(jax.random.key(0), params)[1].probe_bias is None


def test_v2_measures_shortfalls_from_the_drawn_worlds_teacher():
    """With a world drawn per episode, v2's requirement and final utility use that world's teacher (numpy's
    formulas on the drawn world, float64), not the prior's."""
    env, params = rj.make(V2, world="random", task="math_word_problems", noise=False, num_steps=2)
    keys = jax.random.split(jax.random.key(8), 16)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    _, stepped, _, _, infos = jax.vmap(env.step_env, in_axes=(0, 0, None, None))(keys, states, jnp.zeros(len(CAPABILITIES)), params)
    student, teacher, weights = (np.asarray(array, np.float64) for array in (states.world.student, states.world.teacher, states.weights))
    np.testing.assert_allclose(states.requirement, task_requirement(student, weights, 1.25, teacher), atol=TOLERANCE)
    np.testing.assert_allclose(infos["utility"], task_utility(np.asarray(stepped.true_profile), weights, 1.25, teacher), atol=TOLERANCE)
    paper = task_requirement(student, weights, 1.25, np.asarray(params.world.teacher, np.float64))
    assert np.abs(np.asarray(states.requirement) - paper).max() > 1e-2


def test_each_episode_draws_its_own_world_unless_seeded():
    env, params = rj.make(V1, world="random")
    states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(4), 3), params)[1]
    assert env.draws_world and len({tuple(np.asarray(row)) for row in states.world.student}) == 3
    assert not rj.make(V1, world="random", world_seed=1)[0].draws_world


def test_gymnax_wrappers_run_on_it():
    from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper

    env, params = rj.make(V1, world="random", task=["math_word_problems", "random"], num_steps=5)
    wrapped = LogWrapper(FlattenObservationWrapper(env))
    num_envs, steps = 8, 12
    observation, state = jax.vmap(wrapped.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), num_envs), params)
    assert observation.shape == (num_envs, 4 * len(CAPABILITIES) + 1)

    def one(state, key):
        action = jax.random.uniform(key, (num_envs, len(CAPABILITIES)), minval=-1, maxval=1)
        _, state, reward, terminated, _, info = jax.vmap(wrapped.step, in_axes=(0, 0, 0, None))(jax.random.split(key, num_envs), state, action, params)
        return state, (reward, terminated, info["returned_episode_returns"])

    _, (rewards, terminated, returns) = jax.lax.scan(one, state, jax.random.split(jax.random.key(1), steps))
    np.testing.assert_array_equal(np.asarray(terminated[4]), True)
    np.testing.assert_allclose(returns[4], rewards[:5].sum(axis=0), atol=1e-6)  # the logged return of the first episodes


def test_gymnax_make_and_the_gym_wrapper():
    from gymnax.wrappers.gym import GymnaxToGymWrapper

    env, params = gymnax.make(V1, num_steps=3)
    assert isinstance(env, rj.SurrogateEnv) and env.num_steps == 3 and env.spec == SURROGATE_SPECS[V1]
    assert gymnax.make(V2)[0].utility_family is SHORTFALL
    gym_env = GymnaxToGymWrapper(env, params, seed=0)
    gym_env.reset(seed=0)
    assert gym_env.observation_space.shape == (33,) and gym_env.action_space.shape == (8,)
    done = [gym_env.step(np.zeros(8, np.float32))[2] for _ in range(3)]
    assert done == [False, False, True]


def test_observation_dict_is_the_contract_observation():
    env, params = rj.make(V0)
    observation, _ = env.reset(jax.random.key(0), params)
    space = gym.make(V0).observation_space
    expected = gym.spaces.unflatten(space, np.asarray(observation))
    split = rj.observation_dict(np.asarray(observation), len(CAPABILITIES))
    assert list(split) == list(expected) == list(rj.OBSERVATION_KEYS)
    for key in split:
        np.testing.assert_array_equal(split[key], expected[key])
    assert env.observation_space(params).contains(observation)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"env_id": "ReAD-Surrogate-v9"}, "unknown JAX environment"),
        ({"env_id": V1, "task": "cooking"}, "unknown task"),
        ({"env_id": V1, "task": []}, "at least one task"),
        ({"env_id": V1, "world": "moon"}, "unknown world"),
        ({"env_id": V0, "budget_tokens": 3_000_000_000}, "int32"),
        ({"env_id": V0, "num_steps": 0}, "num_steps"),
        ({"env_id": V1, "utility_noise": -1.0}, "utility_noise"),
        ({"env_id": V2, "probe_bias": 1.5}, "probe_bias"),
        ({"env_id": V2, "utility_family": "cobb-douglas"}, "unknown utility family 'cobb-douglas'"),
    ],
)
def test_bad_arguments_are_refused_at_make(kwargs, error):
    with pytest.raises(ValueError, match=error):
        rj.make(**kwargs)


def test_a_keyword_the_numpy_form_does_not_take_is_refused_as_gym_make_refuses_it():
    with pytest.raises(TypeError, match="'budget' .did you mean 'budget_tokens'"):
        rj.make(V1, budget=10)


@pytest.mark.parametrize("env_id, family", [(V1, "shortfall"), (V2, "scores"), (V1, "linear"), (V0, "scores")])
def test_the_callers_utility_family_is_the_numpy_forms(env_id, family):
    """The spec's utility part with the caller's family: the observed requirement and the utility of the numpy form."""
    env, params = rj.make(env_id, utility_family=family, noise=False, task="coding_assistant", num_steps=2)
    observation, state = env.reset(jax.random.key(0), params)
    numpy_env = gym.make(env_id, utility_family=family, noise=False, task="coding_assistant", num_steps=2)
    expected, info = numpy_env.reset(seed=0)
    np.testing.assert_allclose(rj.observation_dict(np.asarray(observation), 8)["requirement"], expected["requirement"], atol=1e-6)
    *_, jax_info = env.step(jax.random.key(1), state, jnp.zeros(8), params)
    np.testing.assert_allclose(float(jax_info["utility"]), numpy_env.step(np.zeros(8, np.float32))[4]["utility"], atol=1e-6)
