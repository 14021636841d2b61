"""The online mixers of the literature (ADO, TSCL, Skill-It): each update rule on a case computed by hand."""

import numpy as np
import pytest

from agents import Setting, make_agent
from agents.policies.ado import fit_power_law
from agents.policies.skill_it import skills_graph
from agents.policies.tscl import window_slopes

THREE = Setting(capabilities=("math", "code", "reasoning"))


def three_observation(profile=(0.5, 0.5, 0.5), requirement=(0.5, 0.5, 0.0), budget_left=1.0) -> dict:
    return {"profile": np.array(profile), "requirement": np.array(requirement), "budget_left": np.array([budget_left]),
            "last_allocation": np.zeros(3), "last_gain": np.zeros(3)}


def test_ado_power_law_fit_recovers_an_exact_law_and_its_speed():
    # n = 1, 4, 16 and L = 0.2 + 0.4 n^-0.5 = 0.6, 0.4, 0.3; a rising column (0.1, 0.2, 0.3) has no progress:
    # beta = 0, eps = mean = 0.2. Speed at n = 16: alpha (L - eps) / n = 0.5 * (0.3 - 0.2) / 16 = 0.003125.
    n = np.array([1.0, 4.0, 16.0])
    loss = np.array([[0.6, 0.1], [0.4, 0.2], [0.3, 0.3]])
    law = fit_power_law(n, loss, np.arange(0.05, 0.81, 0.05))
    np.testing.assert_allclose(law.eps, [0.2, 0.2], atol=1e-9)
    np.testing.assert_allclose(law.beta, [0.4, 0.0], atol=1e-9)
    assert law.alpha[0] == pytest.approx(0.5)
    np.testing.assert_allclose(law.speed(16.0), [0.003125, 0.0], atol=1e-12)


def test_ado_step_weights_speed_by_prior_and_history_floors_and_smooths():
    # mu = (0.5, 0.5, 0), speed = (0.02, 0.01, 0.03), h = (0.64, 0.16, 0.2), so h^0.5 = (0.8, 0.4, 0.447):
    # mu * speed * h^0.5 = (0.008, 0.002, 0) -> (0.8, 0.2, 0) -> floor 0.01 -> (0.8, 0.2, 0.01) / 1.01
    # = (0.792079, 0.198020, 0.009901) = rho. After 3 steps: p = 0.9 mu + 0.1 rho = (0.529208, 0.469802, 0.000990);
    # pbar = mu + (rho - mu) / 4 = (0.573020, 0.424505, 0.002475).
    agent = make_agent("ado", THREE, seed=0)
    agent.reset(three_observation())
    agent.history = np.array([0.64, 0.16, 0.2])
    p = agent.step(np.array([0.02, 0.01, 0.03]), steps=3)
    np.testing.assert_allclose(p, [0.529208, 0.469802, 0.000990], atol=1e-6)
    np.testing.assert_allclose(agent.p_mean, [0.573020, 0.424505, 0.002475], atol=1e-6)


def test_ado_plays_the_prior_until_it_can_fit_and_tracks_the_history():
    # h <- 0.9 h + 0.1 w: from mu = (0.5, 0.5, 0) after playing w = (0, 0, 1): (0.45, 0.45, 0.1).
    agent = make_agent("ado", THREE, seed=0)
    agent.reset(three_observation())
    action = np.array([0.0, 0.0, 1.0])
    agent.observe(three_observation(), action, 0.0, three_observation(profile=(0.6, 0.5, 0.5), budget_left=0.9), {})
    np.testing.assert_allclose(agent.history, [0.45, 0.45, 0.1])
    np.testing.assert_allclose(agent.act(three_observation(budget_left=0.9)), [0.5, 0.5, 0.0])


def test_tscl_window_slope_and_epsilon_greedy_on_the_largest_absolute_slope():
    # Steps 0, 1, 2 (centred -1, 0, 1; sum of squares 2): slope = (s(2) - s(0)) / 2.
    # math 0.1 -> 0.4: 0.15; code 0.5, 0.5, 0.1: -0.2 (forgetting); reasoning 0 -> 1: 0.5 but r = 0, not an arm.
    # argmax |slope| over the arms {math, code} is code: w = 0.9 e_code + 0.1 / 2 on the arms = (0.05, 0.95, 0).
    scores = np.array([[0.1, 0.5, 0.0], [0.2, 0.5, 0.5], [0.4, 0.1, 1.0]])
    np.testing.assert_allclose(window_slopes(scores), [0.15, -0.2, 0.5])
    agent = make_agent("tscl", THREE, seed=0)
    agent.reset(three_observation(profile=scores[0]))
    for before, after in zip(scores[:-1], scores[1:]):
        agent.observe(three_observation(profile=before), np.array([0.5, 0.5, 0.0]), 0.0, three_observation(profile=after), {})
    np.testing.assert_allclose(agent.act(three_observation(profile=scores[-1])), [0.05, 0.95, 0.0])


def test_tscl_starts_with_every_arm_tied_and_keeps_to_the_window():
    # Scores math 0.1, 0.5, 0.5 and code 0.5, 0.5, 0.4: over all three steps the slopes are 0.2 and -0.05 (math
    # wins); a window of 2 keeps the last two, slopes 0 and -0.1, so code wins.
    for window, expected in [(10, [0.95, 0.05, 0.0]), (2, [0.05, 0.95, 0.0])]:
        agent = make_agent("tscl", THREE, seed=0, window=window)
        agent.reset(three_observation(profile=(0.1, 0.5, 0.5)))
        first = agent.act(three_observation(profile=(0.1, 0.5, 0.5)))  # one score: every slope is 1, a random arm
        assert sorted(first.tolist()) == pytest.approx([0.0, 0.05, 0.95]) and first[2] == 0.0
        for before, after in [((0.1, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.5, 0.5, 0.5), (0.5, 0.4, 0.5))]:
            agent.observe(three_observation(profile=before), first, 0.0, three_observation(profile=after), {})
        np.testing.assert_allclose(agent.act(three_observation(profile=(0.5, 0.4, 0.5))), expected)


def test_skill_it_graph_is_the_positive_relative_loss_decrease_scaled_to_one():
    # nll at s0 = (0.5, 0.25): L0 = (ln 2, ln 4) = (0.6931, 1.3863), -dL/ds = 1/s = (2, 4), so both columns are
    # scaled by 2 / ln 2 = 4 / ln 4 = 2.8854: T = [[0.02, 0.01], [-0.01, 0.04]] -> [[0.0577, 0.0289], [-0.0289, 0.1154]]
    # -> positive part / 0.1154 = [[0.5, 0.25], [0, 1]].
    start = np.array([0.5, 0.25])
    transfer = np.array([[0.02, 0.01], [-0.01, 0.04]])
    graph = skills_graph(transfer, 1.0 / start, -np.log(start))
    np.testing.assert_allclose(graph, [[0.5, 0.25], [0.0, 1.0]])


def test_skill_it_mixture_is_the_softmax_of_the_propagated_window_mean_loss():
    # m = r / max r = (1/3, 1); the last 3 losses (1, 2), (1, 1), (1, 0) average (1, 1) (the first, (9, 9), is out of
    # the window); A (m * L) = (0.5/3 + 0.25, 1) = (0.416667, 1); eta 0.8 -> logits (0.333333, 0.8);
    # softmax = (1, e^0.466667) / (1 + e^0.466667) = (0.385405, 0.614595).
    agent = make_agent("skill_it", Setting(capabilities=("math", "code")), seed=0)
    agent.graph = np.array([[0.5, 0.25], [0.0, 1.0]])
    agent.target = np.array([1 / 3, 1.0])
    agent.losses = [np.array([9.0, 9.0]), np.array([1.0, 2.0]), np.array([1.0, 1.0]), np.array([1.0, 0.0])]
    observation = {"profile": np.full(2, 0.5), "requirement": np.array([0.25, 0.75]), "budget_left": np.array([0.5]),
                   "last_allocation": np.full(2, 0.5), "last_gain": np.zeros(2)}
    np.testing.assert_allclose(agent.act(observation), [0.385405, 0.614595], atol=1e-6)


@pytest.mark.parametrize("name, options, message", [
    ("ado", {"floor": 0.5}, "floor"),
    ("tscl", {"window": 1}, "window"),
    ("skill_it", {"loss": "hinge"}, "loss"),
    ("skill_it", {"profile_fraction": 0.0}, "profile_fraction"),
])
def test_mixers_refuse_bad_hyperparameters(name, options, message):
    with pytest.raises(ValueError, match=message):
        make_agent(name, Setting(), **options)
