"""read_lookahead: the n-step return targets against hand-computed values, and its option checks."""

import numpy as np
import pytest

from agents.base import Setting
from agents.policies.lookahead import ReadLookahead
from tests.agents.conftest import observation

TWO = Setting(capabilities=("math", "code"))


def filled(lookahead_steps, rewards, values, budget_left=0.5):
    """A lookahead agent whose buffer holds ``rewards`` and whose fit values each buffered transition and the next state."""
    agent = ReadLookahead(TWO, seed=0, ensemble_size=2, hidden_size=2, refit_steps=1, warmup_steps=0, reward_source="proxy",
                          lookahead_steps=lookahead_steps, calibrate=False)
    agent.reset(observation(2), {"utility": 0.1})
    agent.contexts = [agent.context(observation(2))] * len(rewards)
    agent.allocations = [np.array([1.0, 0.0])] * len(rewards)
    agent.rewards, agent.weights = list(rewards), [1.0] * len(rewards)
    agent.next_observation = observation(2, budget_left)
    agent.values = lambda next_observation: np.array(values, dtype=float)  # [N + 1]: mu(x_m, w_m), then V(x_tau)
    return agent


def test_n_step_targets_match_hand_computation():
    agent = filled(2, [1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0, 50.0])
    # t=0: R0 + R1 + mu(x2, w2); t=1: R1 + R2 + mu(x3, w3); t=2: R2 + R3 + V(x_tau); t=3: R3 + V(x_tau)
    np.testing.assert_allclose(agent.targets(), [1 + 2 + 30, 2 + 3 + 40, 3 + 4 + 50, 4 + 50])


def test_returns_to_the_end_when_n_covers_the_episode():
    agent = filled(20, [1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 7.0])
    np.testing.assert_allclose(agent.targets(), [6 + 7, 5 + 7, 3 + 7])


def test_values_are_zero_until_the_warm_up_is_fitted_and_at_the_end_of_the_budget():
    agent = ReadLookahead(TWO, seed=0, ensemble_size=2, hidden_size=2, refit_steps=1, warmup_steps=3)
    agent.reset(observation(2), {"utility": 0.1})
    agent.contexts, agent.allocations = [agent.context(observation(2))] * 3, [np.array([0.5, 0.5])] * 3
    agent.rewards, agent.weights = [0.1, 0.2, 0.3], [1.0] * 3
    np.testing.assert_array_equal(agent.values(observation(2, 0.5)), np.zeros(4))  # the fit before saw only 2 < 3
    agent.rewards.append(0.4), agent.weights.append(1.0), agent.contexts.append(agent.contexts[0]), agent.allocations.append(agent.allocations[0])
    values = agent.values(observation(2, 0.0))
    assert values[:-1].any() and values[-1] == 0.0  # fitted: the ensemble's values; budget spent: V = 0


def test_utility_rewards_are_changes_of_the_dev_reading():
    agent = ReadLookahead(TWO, seed=0, ensemble_size=2, hidden_size=2, refit_steps=1, reward_source="utility")
    agent.reset(observation(2), {"utility": 0.10})
    agent.observe(observation(2), np.array([1.0, 0.0]), 0.5, observation(2, 0.9), {"utility": 0.13})
    agent.observe(observation(2, 0.9), np.array([1.0, 0.0]), 0.5, observation(2, 0.8), {"utility": 0.12})
    np.testing.assert_allclose(agent.rewards, [0.03, -0.01])
    with pytest.raises(ValueError, match="utility"):
        agent.observe(observation(2, 0.8), np.array([1.0, 0.0]), 0.5, observation(2, 0.7), {})


@pytest.mark.parametrize("bad, match", [({"reward_source": "oracle"}, "reward_source"), ({"lookahead_steps": 0}, "lookahead_steps"),
                                        ({"persist_buffer": True}, "persist_buffer"), ({"profile_fraction": 0.1}, "profile_fraction")])
def test_bad_options_name_the_problem(bad, match):
    with pytest.raises(ValueError, match=match):
        ReadLookahead(TWO, seed=0, **bad)


def test_plays_an_episode_on_v1():
    from agents.harness.runner import run_episode

    episode, agent = run_episode(lambda s: ReadLookahead(s, seed=0, refit_steps=5, batch_size=8), "ReAD-Surrogate-v1", "math", 20_000_000, 20, 0)
    assert len(episode.steps) == 20 and len(agent.rewards) == 20
    np.testing.assert_allclose(np.sum([step["allocation"] for step in episode.steps], axis=1), 1.0)
