"""Benchmark: the requirement identifier g_phi, trained fresh, against the paper's r = Proj([grad F(s0)]_+).

Trains ``agents.policies.identifier.train_identifier`` with the default ``IdentifierConfig`` on the paper's world (no
cache), then reports its training cost (wall seconds, interventions, probe tokens: all outside the
distillation budget) and its error on the held-out auxiliary cards and on the 15 task cards of
``read_env.tasks``: mean L1 distance (0..2) and top-3 overlap of the essential set (0..1), next to a uniform
requirement.

Run: ``OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/identifier_error.py [--steps 600] [--train-cards 400] [--heldout-cards 100]``
(the tests: ``--steps 5 --train-cards 16 --heldout-cards 8``)
"""

from __future__ import annotations

import argparse
from dataclasses import fields

import numpy as np

from agents.policies.aux_cards import draw_cards
from agents.policies.candidates import top_k_indices
from agents.policies.identifier import IdentifierConfig, evaluate, train_identifier, true_requirements
from read_env.surrogate.world import World
from read_env.tasks import TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = {field.name: field.default for field in fields(IdentifierConfig)}
    for name in ("steps", "train_cards", "heldout_cards"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=defaults[name], help=f"IdentifierConfig.{name}")
    args = parser.parse_args()
    config = IdentifierConfig(steps=args.steps, train_cards=args.train_cards, heldout_cards=args.heldout_cards)
    world = World.paper()
    model, report = train_identifier(config, world)
    print(f"training: {report.wall_s:.1f} s wall, {report.interventions} interventions, {report.probe_tokens / 1e9:.2f}B probe tokens, "
          f"{report.train_cards} cards, loss {report.loss_first:.3f} -> {report.loss_last:.3f}")
    start = world.profile(world.initial_state())
    train = draw_cards(config.train_cards, "train", config.seed, world.capabilities)
    heldout = draw_cards(config.heldout_cards, "heldout", config.seed, world.capabilities, exclude=train)
    real = list(TASKS.values())
    print("| cards | n | identifier L1 | identifier top-3 | uniform L1 | uniform top-3 |")
    print("|---|---|---|---|---|---|")
    for name, cards in (("held-out auxiliary", heldout), ("task cards (read_env.tasks)", real)):
        true = true_requirements(cards, start, world.capabilities)
        ours = evaluate(model.requirements(cards), true)
        uniform = evaluate(np.full_like(true, 1.0 / true.shape[1]), true)
        print(f"| {name} | {len(cards)} | {ours['l1']:.3f} | {ours['top3_overlap']:.3f} | {uniform['l1']:.3f} | {uniform['top3_overlap']:.3f} |")
    print()
    for card, identified, true in zip(real, model.requirements(real), true_requirements(real, start, world.capabilities)):
        top = ", ".join(world.capabilities[i] for i in top_k_indices(identified, 3))
        print(f"{card.name:20s} L1 {np.abs(identified - true).sum():.2f}  identified top-3: {top}")


if __name__ == "__main__":
    main()
