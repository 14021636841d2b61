"""The requirement identifier g_phi: its loss falls, it beats a uniform requirement on held-out cards, it saves and loads."""

import dataclasses

import numpy as np
import pytest

from agents.policies.aux_cards import card_text, draw_cards
from agents.policies.identifier import (
    IdentifierConfig,
    evaluate,
    load_identifier,
    load_or_train,
    save_identifier,
    top_k_overlap,
    train_identifier,
    true_requirements,
)
from read_env.surrogate.world import World
from read_env.tasks import TASKS

TINY = IdentifierConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, mlp_size=32, train_cards=120, heldout_cards=40,
                        interventions_per_card=4, steps=150, batch_cards=24)


@pytest.fixture(scope="module")
def trained():
    return train_identifier(TINY)


def test_loss_decreases_and_cost_is_counted(trained):
    _, report = trained
    assert report.loss_last < 0.5 * report.loss_first
    assert report.interventions == TINY.train_cards * TINY.interventions_per_card
    assert report.probe_tokens == report.interventions * TINY.probe_tokens
    assert report.wall_s > 0


def test_heldout_error_beats_a_uniform_requirement(trained):
    model, _ = trained
    world = World.paper()
    train = draw_cards(TINY.train_cards, "train", TINY.seed)
    heldout = draw_cards(TINY.heldout_cards, "heldout", TINY.seed, exclude=train)
    assert not {card_text(c) for c in train} & {card_text(c) for c in heldout}
    true = true_requirements(heldout, world.profile(world.initial_state()), world.capabilities)
    identified = evaluate(model.requirements(heldout), true)
    uniform = evaluate(np.full_like(true, 1 / true.shape[1]), true)
    assert identified["l1"] < uniform["l1"] and identified["top3_overlap"] > uniform["top3_overlap"]


def test_save_load_round_trip_and_cache(trained, tmp_path):
    model, report = trained
    save_identifier(model, report, tmp_path / "g.pt")
    loaded, loaded_report = load_identifier(tmp_path / "g.pt")
    cards = list(TASKS.values())
    np.testing.assert_array_equal(loaded.requirements(cards), model.requirements(cards))
    assert loaded_report == report
    small = IdentifierConfig(hidden_size=8, num_layers=1, num_heads=1, intermediate_size=8, mlp_size=8, train_cards=10, heldout_cards=2, interventions_per_card=2, steps=3)
    first, _ = load_or_train(small, str(tmp_path))
    assert (tmp_path / f"identifier-{small.key()}.pt").exists()
    load_or_train.cache_clear()
    again, _ = load_or_train(small, str(tmp_path))  # read from the file this time
    np.testing.assert_array_equal(again.requirements(cards), first.requirements(cards))


def test_training_is_deterministic():
    small = IdentifierConfig(hidden_size=8, num_layers=1, num_heads=1, intermediate_size=8, mlp_size=8, train_cards=10, heldout_cards=2, interventions_per_card=2, steps=5)
    cards = list(TASKS.values())
    np.testing.assert_array_equal(train_identifier(small)[0].requirements(cards), train_identifier(small)[0].requirements(cards))


def test_true_requirement_is_the_gradient_projection_and_overlap_counts_the_essential_set():
    world = World.paper()
    s0 = world.profile(world.initial_state())
    linear_card = dataclasses.replace(TASKS["math_word_problems"], power=1.0)
    linear = true_requirements([linear_card], s0, world.capabilities)[0]
    np.testing.assert_allclose(linear, linear_card.requirement(world.capabilities))  # p = 1: r = a
    true = np.array([[0.6, 0.4, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    predicted = np.array([[0.1, 0.5, 0.4, 0.0], [0.0, 0.9, 0.1, 0.0]])
    np.testing.assert_allclose(top_k_overlap(predicted, true), [0.5, 0.0])


@pytest.mark.parametrize("bad, match", [({"steps": 0}, "steps"), ({"hidden_size": 10, "num_heads": 3}, "multiple of num_heads"),
                                        ({"probe_tokens": -1.0}, "probe_tokens"), ({"lambda_ent": -0.1}, "lambda_ent")])
def test_bad_identifier_config_names_the_problem(bad, match):
    with pytest.raises(ValueError, match=match):
        IdentifierConfig(**bad)


def test_card_generator_rejects_bad_split_and_count():
    with pytest.raises(ValueError, match="split"):
        draw_cards(3, "test", 0)
    with pytest.raises(ValueError, match="count"):
        draw_cards(0, "train", 0)
