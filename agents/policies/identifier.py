"""The requirement identifier ``g_phi`` (paper Section 3.1): task card text -> requirement ``r`` on the simplex.

Model: a word tokenizer whose vocabulary is built from the training cards, a small Transformer encoder
(``transformers.BertModel`` from a ``BertConfig``, randomly initialized, no hub download), mean pooling over
the card's tokens, a two-layer MLP and a softmax over the K capabilities: ``g_phi(card)`` [K].

Training data, interventions on auxiliary tasks (:mod:`agents.policies.aux_cards`, cards with known utilities
``F = power_mean(., a, p)``): from the world's start state, a sparse Dirichlet allocation ``w`` (1 to
``max_support`` capabilities, ``Dirichlet(1)`` weights) spends ``probe_tokens`` tokens; ``ds = s1 - s0``
(noise-free profiles of the world) and ``dU = F(s1) - F(s0)``. Loss, the paper's::

    L = mean over (card, intervention) of ((dU - g_phi(card) . ds) / scale)^2 + lambda_ent * mean H(g_phi(card))

with ``scale`` the standard deviation of ``dU`` over the training interventions (a constant; it only
makes the squared error O(1)). Adam, ``steps`` steps of ``batch_cards`` cards with all their interventions.

The target the identifier approximates is the paper's ``r = Proj_simplex([grad F(s0)]_+)`` at the start
profile (:func:`read_env.utility.requirement_from_utility`); :func:`evaluate` reports the L1 distance and
the top-k overlap against it. Training cost (wall seconds, interventions, probe tokens) is reported in
:class:`TrainingReport`; it is spent outside the distillation budget, as in the paper.

``load_or_train(config)`` trains on first use (deterministic for a config) and caches the result, a small
file ``identifier-<hash of config>.pt`` in the cache folder (``$READ_ENV_CACHE`` or ``~/.cache/read-env``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertModel

from agents.policies.aux_cards import card_text, draw_cards
from agents.policies.candidates import top_k_indices
from read_env.capabilities import PAPER_CAPABILITIES
from read_env.surrogate.world import World
from read_env.tasks import TaskCard
from read_env.utility import power_mean, requirement_from_utility

SPECIAL_TOKENS = ("[PAD]", "[UNK]")
TOKEN_PATTERN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")


@dataclass(frozen=True)
class IdentifierConfig:
    """Hyperparameters of ``g_phi`` and of its training data; the defaults train in well under a minute on one core."""

    # encoder (BertConfig) and head
    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 64
    mlp_size: int = 64
    max_tokens: int = 96  # card text is cut to this many tokens
    # training data
    train_cards: int = 400
    heldout_cards: int = 100
    interventions_per_card: int = 8
    max_support: int = 3  # capabilities an intervention allocation touches (1..max_support, uniform)
    probe_tokens: float = 5e5  # tokens of one intervention (half of one step of a 20M, 20-step episode)
    # optimization
    steps: int = 600
    batch_cards: int = 32
    learning_rate: float = 3e-3
    lambda_ent: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "mlp_size", "max_tokens", "train_cards",
                    "heldout_cards", "interventions_per_card", "max_support", "steps", "batch_cards")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"identifier {name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"identifier hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        for name in ("probe_tokens", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"identifier {name} must be positive, got {getattr(self, name)!r}")
        if not self.lambda_ent >= 0:
            raise ValueError(f"identifier lambda_ent must be >= 0, got {self.lambda_ent!r}")

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrainingReport:
    """Cost and fit of one training run (all outside the distillation budget)."""

    wall_s: float
    interventions: int
    probe_tokens: float
    train_cards: int
    loss_first: float  # mean loss of the first 10% of steps
    loss_last: float  # mean loss of the last 10% of steps


def tokenize(text: str) -> list[str]:
    """Lower-cased words, numbers and single punctuation marks."""
    return TOKEN_PATTERN.findall(text.lower())


class RequirementIdentifier(torch.nn.Module):
    """``g_phi``: ``forward(ids [N, L], mask [N, L]) -> r [N, K]`` on the simplex; ``requirements(cards) -> [N, K]``."""

    def __init__(self, vocabulary: list[str], config: IdentifierConfig, capabilities: tuple[str, ...] = PAPER_CAPABILITIES) -> None:
        super().__init__()
        self.vocabulary, self.config, self.capabilities = vocabulary, config, tuple(capabilities)
        self.index = {word: i for i, word in enumerate(vocabulary)}
        bert = BertConfig(vocab_size=len(vocabulary), hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
                          num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
                          max_position_embeddings=config.max_tokens, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                          pad_token_id=0)
        self.encoder = BertModel(bert, add_pooling_layer=False)
        self.head = torch.nn.Sequential(torch.nn.Linear(config.hidden_size, config.mlp_size), torch.nn.ReLU(),
                                        torch.nn.Linear(config.mlp_size, len(self.capabilities)))

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids [N, L] (unknown words -> ``[UNK]``, padded with ``[PAD]``) and attention mask [N, L]."""
        unknown = self.index["[UNK]"]
        rows = [[self.index.get(word, unknown) for word in tokenize(text)][: self.config.max_tokens] for text in texts]
        length = max(len(row) for row in rows)
        ids = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, (ids != 0).long()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # [N, L, H]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
        return torch.softmax(self.head(pooled), dim=-1)

    @torch.no_grad()
    def requirements(self, cards: list[TaskCard]) -> np.ndarray:
        """Identified requirements [N, K] (float64, on the simplex) of ``cards``."""
        self.eval()
        return self(*self.encode([card_text(card) for card in cards])).double().numpy()


def weights_vector(card: TaskCard, capabilities: tuple[str, ...]) -> np.ndarray:
    return np.array([card.weights.get(name, 0.0) for name in capabilities])


def true_requirements(cards: list[TaskCard], start_profile: np.ndarray, capabilities: tuple[str, ...]) -> np.ndarray:
    """The paper's ``r = Proj([grad F(s0)]_+)`` [N, K] of each card's utility at ``start_profile`` [K]."""
    weights = np.array([weights_vector(card, capabilities) for card in cards])
    powers = np.array([card.power for card in cards])
    return requirement_from_utility(np.broadcast_to(start_profile, weights.shape), weights, powers)


def interventions(cards: list[TaskCard], world: World, config: IdentifierConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``ds`` [N, M, K] and ``dU`` [N, M] of M = ``interventions_per_card`` sparse allocations per card (see module docstring)."""
    k = len(world.capabilities)
    n, m = len(cards), config.interventions_per_card
    allocations = np.zeros((n * m, k))
    for row in allocations:
        support = rng.choice(k, size=int(rng.integers(1, min(config.max_support, k) + 1)), replace=False)
        row[support] = rng.dirichlet(np.ones(len(support)))
    start = world.initial_state()
    s0 = world.profile(start)
    s1 = world.profile(world.advance(np.broadcast_to(start, (n * m, start.shape[-1])), config.probe_tokens, allocations, None))
    weights = np.repeat([weights_vector(card, world.capabilities) for card in cards], m, axis=0)
    powers = np.repeat([card.power for card in cards], m)
    gains = power_mean(s1, weights, powers) - power_mean(np.broadcast_to(s0, s1.shape), weights, powers)
    return (s1 - s0).reshape(n, m, k), gains.reshape(n, m)


def train_identifier(config: IdentifierConfig, world: World | None = None) -> tuple[RequirementIdentifier, TrainingReport]:
    """Train ``g_phi`` on interventions of ``config.train_cards`` auxiliary cards in ``world`` (default: the paper's)."""
    start = time.perf_counter()
    world = world if world is not None else World.paper()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    cards = draw_cards(config.train_cards, "train", config.seed, world.capabilities)
    words = sorted({word for card in cards for word in tokenize(card_text(card))})
    model = RequirementIdentifier([*SPECIAL_TOKENS, *words], config, world.capabilities)
    ids, mask = model.encode([card_text(card) for card in cards])
    ds, gains = interventions(cards, world, config, rng)
    scale = float(gains.std())
    ds_t, gains_t = torch.tensor(ds / scale, dtype=torch.float32), torch.tensor(gains / scale, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    losses = []
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and not slowed by other processes
    try:
        for _ in range(config.steps):
            batch = torch.from_numpy(rng.choice(len(cards), size=min(config.batch_cards, len(cards)), replace=False))
            r = model(ids[batch], mask[batch])  # [B, K]
            predicted = torch.einsum("bk,bmk->bm", r, ds_t[batch])
            entropy = -(r * torch.log(r.clamp_min(1e-12))).sum(dim=-1)
            loss = torch.mean((gains_t[batch] - predicted) ** 2) + config.lambda_ent * entropy.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    tenth = max(1, config.steps // 10)
    report = TrainingReport(time.perf_counter() - start, gains.size, float(gains.size * config.probe_tokens), len(cards),
                            float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:])))
    return model, report


def top_k_overlap(predicted: np.ndarray, true: np.ndarray, top_k: int = 3) -> np.ndarray:
    """Share [N] of the true essential set (top-k of ``true``, k = min(top_k, its support)) in the top-k of ``predicted``."""
    out = np.empty(len(true))
    for i, (p, t) in enumerate(zip(predicted, true)):
        k = max(1, min(top_k, int((t > 1e-9).sum())))
        out[i] = len(set(top_k_indices(p, k)) & set(top_k_indices(t, k))) / k
    return out


def evaluate(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Mean L1 distance (0..2) and mean top-3 overlap (0..1) of requirements [N, K] against the true ones."""
    return {"l1": float(np.abs(predicted - true).sum(axis=1).mean()), "top3_overlap": float(top_k_overlap(predicted, true).mean())}


def save_identifier(model: RequirementIdentifier, report: TrainingReport, path: str | Path) -> None:
    torch.save({"config": asdict(model.config), "vocabulary": model.vocabulary, "capabilities": list(model.capabilities),
                "state_dict": model.state_dict(), "report": asdict(report)}, path)


def load_identifier(path: str | Path) -> tuple[RequirementIdentifier, TrainingReport]:
    payload = torch.load(path, weights_only=True)
    model = RequirementIdentifier(payload["vocabulary"], IdentifierConfig(**payload["config"]), tuple(payload["capabilities"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, TrainingReport(**payload["report"])


@lru_cache(maxsize=4)
def load_or_train(config: IdentifierConfig = IdentifierConfig(), cache: str | None = None) -> tuple[RequirementIdentifier, TrainingReport]:
    """The identifier of ``config`` trained on the paper's world: loaded from the cache, else trained and saved there."""
    from read_env.distill.assets import cache_dir

    path = cache_dir(cache) / f"identifier-{config.key()}.pt"
    if path.exists():
        return load_identifier(path)
    model, report = train_identifier(config)
    save_identifier(model, report, path)
    return model, report
