"""World fitting (read_env.fit): ``fit(kind, episodes)`` dispatches to each kind's fit and names an unknown kind."""

from __future__ import annotations

import numpy as np
import pytest

from read_env.episodes import Episode
from read_env.fit import fit
from read_env.fit.calibrated import simulate
from read_env.fitted.world import FittedWorld
from read_env.surrogate.path_dependent_world import PathWorld
from read_env.surrogate.world import World

CASES = [  # kind, options, (sum, sum of |x|) of the fitted parameters as fitted before read_env.fit existed (at 20ffcd0)
    ("calibrated", {}, (3.527384530027841, 3.6856062585343867)),
    ("calibrated", {"path_terms": True}, (3.527384530027841, 3.6856062585343867)),
    ("recency", {"iterations": 30}, (69.95250935643111, 69.95250935643111)),
    ("ensemble", {"members": 2, "hidden": 4, "iterations": 20, "seed": 3}, (0.16351098561808675, 48.52045864463447)),
]


def paper_episodes(count: int = 6, steps: int = 5) -> list[Episode]:
    """Noise-free episodes of the paper's world under Dirichlet allocations, each spending its largest calibration budget."""
    world, rng = World.paper(), np.random.default_rng(0)
    budget = int(world.calibration_budgets[-1])
    episodes = []
    for index in range(count):
        allocations = rng.dirichlet(np.full(len(world.capabilities), 0.5), size=steps)
        tokens = np.full(steps, budget / steps)
        episode = Episode(f"paper/{index}", list(world.capabilities), budget, world.student.copy(), tokens, allocations, 0 * allocations)
        episode.profiles = simulate(world, episode)
        episodes.append(episode)
    return episodes


def own_fit(kind: str, episodes: list[Episode], options: dict) -> World | FittedWorld:
    """The kind's fit called directly."""
    if kind == "calibrated":
        from read_env.fit.calibrated import fit_world

        return fit_world(episodes, holdout=0.0, **options)[0]
    from read_env.fit.fitted import fit_ensemble, fit_recency

    return (fit_recency if kind == "recency" else fit_ensemble)(episodes, **options)


def parameters(world: World | FittedWorld) -> np.ndarray:
    return world.theta if isinstance(world, FittedWorld) else world.transfer


@pytest.mark.parametrize(("kind", "options", "pinned"), CASES)
def test_fit_gives_each_kinds_own_fit(kind, options, pinned):
    if kind != "calibrated":
        pytest.importorskip("torch")
    episodes = paper_episodes()
    world = fit(kind, episodes, **options)
    if kind == "calibrated":
        assert isinstance(world, PathWorld) == bool(options.get("path_terms"))
    else:
        assert isinstance(world, FittedWorld) and world.kind == kind
    np.testing.assert_array_equal(parameters(world), parameters(own_fit(kind, episodes, options)))
    assert (parameters(world).sum(), np.abs(parameters(world)).sum()) == pytest.approx(pinned, rel=1e-7, abs=1e-9)


def test_fit_names_an_unknown_kind():
    with pytest.raises(ValueError, match=r"unknown fit kind 'linear'; expected one of \['calibrated', 'recency', 'ensemble'\]"):
        fit("linear", paper_episodes())


def test_fit_and_validate_names_a_model_it_cannot_validate(tmp_path):
    from read_env.fit.validate import fit_and_validate

    with pytest.raises(ValueError, match=r"\['calibrated'\] are not fitted-world kinds"):
        fit_and_validate(paper_episodes(), ["recency", "calibrated"], 0.5, tmp_path / "world.json")
