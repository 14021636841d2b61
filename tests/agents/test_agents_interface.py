"""Every agent completes an episode; bad observations are refused; seeding is exact (saving: test_agent_saving.py)."""

import numpy as np
import pytest

from agents import AGENTS, Agent, Setting, make_agent, run_episode
from agents.base import check_observation
from tests.agents.conftest import FAST_BANDIT, TINY_IDENTIFIER, observation




def fast(name: str) -> dict:
    options = dict(FAST_BANDIT) if "bandit" in name or name == "greedy" else {}
    if "identifier" in name:
        options["identifier_options"] = TINY_IDENTIFIER
    return options


@pytest.mark.parametrize("name", sorted(AGENTS))
@pytest.mark.parametrize("task", ["math", "coding_assistant"])
def test_every_agent_completes_an_episode(name, task):
    episode, agent = run_episode(lambda s: make_agent(name, s, seed=0, **fast(name)), task=task, budget_tokens=20_000_000, seed=3)
    assert len(episode.steps) == 20
    for step in episode.steps:
        allocation = np.array(step["allocation"])
        assert allocation.shape == (8,) and (allocation >= 0).all() and abs(allocation.sum() - 1) < 1e-9
    assert sum(step["tokens_used"] for step in episode.steps) == 20_000_000
    assert np.isfinite(episode.final_utility)


def test_oracle_is_an_upper_bound_of_fixed_rules():
    utilities = {}
    for name in ("uniform", "task_static", "single", "oracle"):
        episode, _ = run_episode(lambda s, n=name: make_agent(n, s, seed=0), task="chat_assistant", seed=1, env_kwargs={"noise": False})
        utilities[name] = episode.final_utility
    assert utilities["oracle"] >= max(utilities.values()) - 1e-12


def test_oracle_refuses_unknown_world():
    with pytest.raises(ValueError, match="known world"):
        make_agent("oracle", Setting(env_kwargs={"world": "random"}))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.pop("profile"), "keys"),
        (lambda o: o.update(profile=np.zeros(5, np.float32)), "shape"),
        (lambda o: o.update(budget_left=np.array([np.nan], np.float32)), "finite"),
        (lambda o: o.update(profile=np.full(8, 3.0, np.float32)), "outside"),
        (lambda o: o.update(profile=np.array(["a"] * 8)), "numeric"),
    ],
)
@pytest.mark.parametrize("name", ["uniform", "read_bandit", "exp3", "linucb"])
def test_agents_reject_observations_of_another_environment(name, mutate, message):
    agent = make_agent(name, Setting(), seed=0)
    good = observation()
    agent.reset(good, {"utility": 0.3})
    bad = observation()
    mutate(bad)
    with pytest.raises(ValueError, match=message):
        agent.act(bad)
    with pytest.raises(ValueError, match="was built for"):
        check_observation([1, 2, 3], Setting())


def test_agent_built_for_fewer_capabilities_rejects_full_observation():
    agent = make_agent("uniform", Setting(capabilities=("math", "code")))
    with pytest.raises(ValueError, match="K=2"):
        agent.reset(observation(8))


@pytest.mark.parametrize("name", ["read_bandit", "random", "exp3", "aioli", "linucb", "ado", "tscl", "skill_it", "grid", "read_bandit_thompson"])
def test_seeded_runs_are_reproducible(name):
    runs = [run_episode(lambda s: make_agent(name, s, seed=7, **fast(name)), task="science_qa", seed=2)[0] for _ in range(2)]
    assert [s["allocation"] for s in runs[0].steps] == [s["allocation"] for s in runs[1].steps]
    assert runs[0].final_utility == runs[1].final_utility


def test_custom_agent_subclass_plugs_into_runner():
    class Half(Agent):
        name = "half"

        def policy(self, observation):
            return 0.5 * observation["requirement"] + 0.5 / self.setting.num_capabilities

    episode, agent = run_episode(lambda s: Half(s), task="math")
    assert agent.name == "half" and len(episode.steps) == 20


@pytest.mark.parametrize("env_id", ["ReAD-Surrogate-v0", "ReAD-Surrogate-v1"])
def test_profiling_agents_spend_the_same_counted_tokens(env_id):
    counted = {}
    for name in ("grid", "linucb", "aioli", "skill_it", "read_bandit", "greedy", "read_bandit_code"):
        episode, _ = run_episode(lambda s: make_agent(name, s, seed=0, **fast(name)), env_id, task="math_word_problems", budget_tokens=20_000_000)
        counted[name] = episode.extra["profiling_tokens"]
    assert counted == {"grid": 2_000_000, "linucb": 2_000_000, "aioli": 2_000_000, "skill_it": 2_000_000, "read_bandit": 2_000_000, "greedy": 2_000_000,
                       "read_bandit_code": 0}


def test_profiling_rewards_are_at_the_scale_of_one_episode_step():
    import gymnasium as gym

    from agents.policies.profiling import profile

    env = gym.make("ReAD-Surrogate-v1", action_mode="simplex", noise=False, task="math_word_problems")
    observation, _ = env.reset(seed=0)
    runs = profile(Setting(env_id="ReAD-Surrogate-v1", env_kwargs={"noise": False}), observation["requirement"], 0.1, np.random.default_rng(0))
    assert sum(run.tokens for run in runs) == 2_000_000 and max(run.tokens for run in runs) - min(run.tokens for run in runs) <= 1
    for run in runs:
        env.reset(seed=0)
        _, reward, _, _, info = env.step(run.allocation)  # one real step of 1M tokens
        np.testing.assert_allclose(run.delta_profile, info["delta_profile"], atol=2e-4)
        assert abs(run.reward - reward) < 1e-4


@pytest.mark.parametrize("name", ["grid", "linucb", "aioli", "skill_it"])
def test_bad_profile_fraction_names_the_problem(name):
    with pytest.raises(ValueError, match="profile_fraction"):
        make_agent(name, Setting(), profile_fraction=2.0)
    if name in ("grid", "skill_it"):
        with pytest.raises(ValueError, match=r"profile_fraction must be a number in \(0, 1\)"):
            make_agent(name, Setting(), profile_fraction=0.0)
