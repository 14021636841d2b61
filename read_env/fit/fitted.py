"""Fit a :class:`~read_env.fitted.world.FittedWorld` to logged episodes (torch, CPU, float64, seeded).

Both models are fitted the same way: each training episode is replayed from its measured start profile with
its recorded allocations and tokens (the model's own predictions feed the next step, as in the
environment), and the mean squared error between the predicted and the measured profiles of every step is
minimized with Adam (full batch). The torch rollout below computes the equations of
:mod:`read_env.fitted.world` on the same parameter layout as the compiled kernel.

* Recency: unconstrained parameters mapped to the model's ranges (``floor``, ``ceiling`` by a sigmoid; ``L``,
  ``F``, ``rho`` by exp; ``G`` = exp(g) times ``ReAD-Surrogate-v1``'s default prerequisite graph); started at
  floors 0.3 s_0, ceilings the highest measured score, ``L`` 3 on the diagonal and 0.05 elsewhere, ``F`` 0.5.
* Ensemble: ``members`` networks, each trained on its own bootstrap resample of the training episodes (drawn
  by episode) from its own initialization.

Input: :class:`read_env.episodes.Episode` records; the token scale is the largest budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from read_env.episodes import Episode
from read_env.fitted import kernel
from read_env.fitted.world import FittedWorld
from read_env.surrogate.path_dependent_world import default_prerequisites

RECENCY_ITERATIONS = 600
ENSEMBLE_ITERATIONS = 800
ENSEMBLE_MEMBERS = 5
ENSEMBLE_HIDDEN = 16
RECENCY_LR = 0.05
ENSEMBLE_LR = 0.005


def batch(episodes: Sequence[Episode], token_scale: float) -> dict[str, torch.Tensor]:
    """Padded float64 tensors of ``episodes``: start [E, K], tokens (over ``token_scale``) and progress [E, T],
    allocations and profiles [E, T, K], mask [E, T] (1 on recorded steps)."""
    steps, k = max(len(episode.tokens) for episode in episodes), len(episodes[0].start)
    out = {name: np.zeros((len(episodes), steps)) for name in ("tokens", "progress", "mask")}
    out.update(allocations=np.zeros((len(episodes), steps, k)), profiles=np.zeros((len(episodes), steps, k)),
               start=np.array([e.start for e in episodes]))
    for row, episode in enumerate(episodes):
        t = len(episode.tokens)
        out["tokens"][row, :t] = episode.tokens / token_scale
        out["progress"][row, :t] = (np.cumsum(episode.tokens) - episode.tokens) / episode.budget_tokens
        out["mask"][row, :t] = 1.0
        out["allocations"][row, :t], out["profiles"][row, :t] = episode.allocations, episode.profiles
    return {name: torch.as_tensor(value, dtype=torch.float64) for name, value in out.items()}


def _unpack(kind: int, theta: torch.Tensor, k: int, hidden: int) -> dict[str, torch.Tensor]:
    """``theta`` [..., D] split into :func:`read_env.fitted.kernel.layout`'s blocks [..., *shape]."""
    out, start = {}, 0
    for name, shape in kernel.layout(kind, k, hidden).items():
        size = int(np.prod(shape))
        out[name] = theta[..., start : start + size].reshape(*theta.shape[:-1], *shape)
        start += size
    return out


def rollout(kind: int, theta: torch.Tensor, data: dict[str, torch.Tensor], hidden: int = 0) -> torch.Tensor:
    """Predicted profiles [E, T, K] of the episodes in ``data`` (:func:`batch`) under one parameter row ``theta`` [D]."""
    k = data["start"].shape[1]
    p = _unpack(kind, theta, k, hidden)
    s = data["start"]
    second = s if kind == kernel.RECENCY else torch.zeros_like(s)
    out = []
    for t in range(data["tokens"].shape[1]):
        x, progress, w = data["tokens"][:, t : t + 1], data["progress"][:, t : t + 1], data["allocations"][:, t]
        if kind == kernel.RECENCY:
            rate = torch.exp(-p["schedule"] * progress)
            gain = (w @ p["learn"]) * x * rate * (1.0 + s @ p["prerequisites"]) * (1.0 + p["repair"] * torch.relu(second - s))
            loss = (w @ p["forget"]) * x * rate
            total = gain + loss
            positive = total > 0
            safe = torch.where(positive, total, torch.ones_like(total))
            target = (gain * p["ceiling"] + loss * p["floor"]) / safe
            new = torch.where(positive, target + (s - target) * torch.exp(-total), s)
            second = torch.maximum(second, new)
        else:
            inputs = torch.cat([s, w, second, progress, x], dim=1)
            first = torch.tanh(inputs @ p["w1"].T + p["b1"])
            change = torch.tanh(first @ p["w2"].T + p["b2"]) @ p["w3"].T + p["b3"]
            new = torch.clamp(s + change, 0.0, 1.0)
            second = w
        keep = data["mask"][:, t : t + 1] > 0
        s = torch.where(keep, new, s)
        out.append(s)
    return torch.stack(out, dim=1)


def _loss(predicted: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
    mask = data["mask"][..., None]
    return (((predicted - data["profiles"]) ** 2) * mask).sum() / (mask.sum() * predicted.shape[-1])


def _probe_noise(episodes: Sequence[Episode]) -> float:
    stderrs = [episode.probe_stderr for episode in episodes if episode.probe_stderr is not None]
    return float(np.mean(stderrs)) if stderrs else 0.0


def fit_recency(episodes: Sequence[Episode], iterations: int = RECENCY_ITERATIONS, seed: int = 0) -> FittedWorld:
    """The recency world fitted to ``episodes`` (see the module docstring)."""
    torch.manual_seed(seed)
    k, capabilities = len(episodes[0].start), episodes[0].capabilities
    scale = float(max(episode.budget_tokens for episode in episodes))
    data = batch(episodes, scale)
    start = data["start"].mean(0)
    highest = torch.maximum(data["profiles"].amax(dim=(0, 1)), start)
    off = 1.0 - torch.eye(k, dtype=torch.float64)
    graph = torch.as_tensor(default_prerequisites(capabilities), dtype=torch.float64)
    raw = {
        "floor": torch.logit(torch.clamp(0.3 * start, 0.01, 0.99)),
        "ceiling": torch.logit(torch.clamp(highest, 0.02, 0.99)),
        "learn": torch.log(torch.full((k, k), 0.05, dtype=torch.float64) + 2.95 * torch.eye(k, dtype=torch.float64)),
        "forget": torch.full((k, k), np.log(0.5), dtype=torch.float64),
        "prerequisites": torch.tensor(np.log(0.01), dtype=torch.float64),
        "schedule": torch.zeros(1, dtype=torch.float64),
        "repair": torch.tensor([np.log(0.1)], dtype=torch.float64),
    }
    for value in raw.values():
        value.requires_grad_(True)

    def theta() -> torch.Tensor:
        blocks = [torch.sigmoid(raw["floor"]), torch.sigmoid(raw["ceiling"]), torch.exp(raw["learn"]).reshape(-1),
                  (torch.exp(raw["forget"]) * off).reshape(-1), (torch.exp(raw["prerequisites"]) * graph).reshape(-1), raw["schedule"],
                  torch.exp(raw["repair"])]
        return torch.cat(blocks)

    optimizer = torch.optim.Adam(list(raw.values()), lr=RECENCY_LR)
    for _ in range(iterations):
        optimizer.zero_grad()
        loss = _loss(rollout(kernel.RECENCY, theta(), data), data)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        parameters = theta().numpy()[None]
    return FittedWorld("recency", capabilities, start.numpy(), parameters, scale, 0, _probe_noise(episodes))


def fit_ensemble(episodes: Sequence[Episode], members: int = ENSEMBLE_MEMBERS, hidden: int = ENSEMBLE_HIDDEN,
                 iterations: int = ENSEMBLE_ITERATIONS, seed: int = 0) -> FittedWorld:
    """The ensemble world fitted to ``episodes`` (see the module docstring); member ``m`` is seeded ``seed + m``."""
    if members < 1 or hidden < 1:
        raise ValueError(f"members and hidden must be positive, got {members}, {hidden}")
    k, capabilities = len(episodes[0].start), episodes[0].capabilities
    scale = float(max(episode.budget_tokens for episode in episodes))
    d = kernel.width(kernel.ENSEMBLE, k, hidden)
    rows = []
    for member in range(members):
        rng = np.random.default_rng(seed + member)
        chosen = rng.integers(len(episodes), size=len(episodes)) if members > 1 else np.arange(len(episodes))
        data = batch([episodes[index] for index in chosen], scale)
        torch.manual_seed(seed + member)
        theta = torch.zeros(d, dtype=torch.float64)
        blocks = _unpack(kernel.ENSEMBLE, theta, k, hidden)  # views into theta
        with torch.no_grad():
            for name, fan_in, gain in (("w1", 3 * k + 2, 1.0), ("w2", hidden, 1.0), ("w3", hidden, 0.1)):
                blocks[name].normal_(0.0, gain / np.sqrt(fan_in))
        theta.requires_grad_(True)
        optimizer = torch.optim.Adam([theta], lr=ENSEMBLE_LR)
        for _ in range(iterations):
            optimizer.zero_grad()
            loss = _loss(rollout(kernel.ENSEMBLE, theta, data, hidden), data)
            loss.backward()
            optimizer.step()
        rows.append(theta.detach().numpy().copy())
    start = np.mean([episode.start for episode in episodes], axis=0)
    return FittedWorld("ensemble", capabilities, start, np.array(rows), scale, hidden, _probe_noise(episodes))
