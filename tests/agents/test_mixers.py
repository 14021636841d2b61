"""The online mixers of the literature (ADO): each update rule on a case computed by hand."""

import numpy as np
import pytest

from agents import Setting, make_agent
from agents.policies.ado import fit_power_law

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


@pytest.mark.parametrize("name, options, message", [
    ("ado", {"floor": 0.5}, "floor"),
])
def test_mixers_refuse_bad_hyperparameters(name, options, message):
    with pytest.raises(ValueError, match=message):
        make_agent(name, Setting(), **options)
