"""ADO, Adaptive Data Optimization (Jiang et al. 2025; public code ``yidingjiang/ado``, ``src/data_selectors/ado.py``).

ADO fits a power law to each domain's training loss online and samples each domain in proportion to how fast
its loss is forecast to fall, times a prior and a credit-assignment term, smoothed over time and floored.

Mapping onto capability scores. A capability's loss-like quantity is its shortfall from a perfect score,
``L_k = 1 - s_k`` in [0, 1] (``s`` the observed profile; the teacher's profile is not observed, so the gap to
the teacher is not available). The training amount is ``n = 1 - budget_left``, the share of the budget spent
(the public code's default ``use_same_step_size=True`` counts every domain's steps as the total steps, so
``n`` is common to all capabilities). ADO's prior ``mu`` is the natural mixture of the data pool; here it is
the requirement ``r``, so ``mu_k lambda_k`` is the forecast fall of the task-weighted loss ``sum_k r_k L_k``
credited to capability k (ADO targets no downstream task; this is how the task enters).

State after t steps: the points ``(n_1, L_1) ... (n_t, L_t)``, the history ``h`` [K], the running mean ``pbar``
[K] and the mixture ``p`` [K]. Equations (constants from the public code)::

    fit, per k:   L_k(n) ~ eps_k + beta_k n^(-alpha_k),   eps_k, beta_k >= 0,   alpha_k in [0.05, 0.8]
    speed:        lambda_k = alpha_k (L_k(n_t) - eps_k) / n_t                  (= -dL_k/dn at n_t)
    target:       rho = floor_clip(mu * lambda * h^0.5),   floor_clip(x) = max(x / sum x, floor), renormalized
    smoothing:    p_{t+1} = 0.9 pbar_t + 0.1 rho,   pbar_{t+1} = pbar_t + (rho - pbar_t) / (t + 1)
    history:      h <- 0.9 h + 0.1 w_t                                          (w_t the allocation played)

with ``h = pbar = p = mu`` at the start, ``floor = 0.01``, ``p = mu`` (and ``pbar`` unchanged) until ``min_points``
points are in (the code's ``start_step``), and ``rho = mu`` when every forecast speed is 0. The public code fits
``log L`` with a Huber loss by L-BFGS from a grid of starts, after a Savitzky-Golay filter of the training
loss; with at most ``T`` points a step, the fit here is exact least squares on ``L`` for each ``alpha`` of a
grid (0.05 to 0.8 by 0.05; for fixed ``alpha`` the model is linear in ``eps, beta``), keeping the best. Its
bounds on the log-space parameters (irreducible loss at least ``e^0.5`` nats, log-scale at most 6.5) are for
Pile losses and are not carried over; ``eps, beta >= 0`` are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting


@dataclass
class AdoConfig:
    floor: float = 0.01  # clip_min_probability(dist, 1e-2)
    smoothing: float = 0.9  # p = 0.9 * pbar + 0.1 * rho
    history_decay: float = 0.9  # p_history = 0.9 * p_history + 0.1 * count_dist
    history_power: float = 0.5  # p_history ** 0.5
    alpha_min: float = 0.05  # np.maximum(alpha, 0.05)
    alpha_max: float = 0.8  # penalty on alpha > 0.8
    alpha_grid_step: float = 0.05
    min_points: int = 3  # points before the first fit (three parameters)


@dataclass(frozen=True)
class PowerLaw:
    """``L(n) = eps + beta * n^(-alpha)`` per capability (arrays [K])."""

    eps: np.ndarray
    beta: np.ndarray
    alpha: np.ndarray

    def __call__(self, n: float) -> np.ndarray:
        return self.eps + self.beta * n ** (-self.alpha)

    def speed(self, n: float) -> np.ndarray:
        """The forecast fall of the loss per unit of training, ``-dL/dn`` at ``n`` [K]."""
        return self.alpha * (self(n) - self.eps) / n


def fit_power_law(n: np.ndarray, loss: np.ndarray, alphas: np.ndarray) -> PowerLaw:
    """Least-squares fit of ``loss[:, k] ~ eps_k + beta_k n^(-alpha_k)`` with ``eps, beta >= 0``, ``alpha`` in ``alphas``.

    ``n`` [N] > 0 (distinct), ``loss`` [N, K], ``alphas`` [A]. For each alpha the model is linear in
    ``(eps, beta)``; its nonnegative least-squares solution is the unconstrained one when feasible, else the
    best on the faces ``eps = 0`` or ``beta = 0``. The (alpha, face) of least squared error is kept, per k.
    """
    x = n[None, :] ** -alphas[:, None]  # [A, N]
    x_mean, loss_mean = x.mean(axis=1), loss.mean(axis=0)  # [A], [K]
    centred = x - x_mean[:, None]
    beta_free = (centred @ (loss - loss_mean)) / (centred**2).sum(axis=1)[:, None]  # [A, K]
    eps_free = loss_mean - beta_free * x_mean[:, None]
    beta_origin = np.maximum(x @ loss / (x**2).sum(axis=1)[:, None], 0.0)  # eps = 0
    eps_flat = np.broadcast_to(np.maximum(loss_mean, 0.0), beta_free.shape)  # beta = 0
    eps = np.stack([eps_free, np.zeros_like(eps_free), eps_flat])  # [3, A, K]
    beta = np.stack([beta_free, beta_origin, np.zeros_like(beta_free)])
    error = ((eps[:, :, None, :] + beta[:, :, None, :] * x[None, :, :, None] - loss) ** 2).sum(axis=2)  # [3, A, K]
    error[0][(eps_free < 0) | (beta_free < 0)] = np.inf
    best = error.reshape(-1, loss.shape[1]).argmin(axis=0)  # [K] over (face, alpha)
    columns = np.arange(loss.shape[1])
    alpha = np.broadcast_to(alphas[None, :, None], eps.shape)
    return PowerLaw(*(v.reshape(-1, loss.shape[1])[best, columns] for v in (eps, beta, alpha)))


class AdoAgent(Agent):
    name = "ado"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = AdoConfig(**overrides)
        c = self.config
        if not (0 <= c.floor < 1 / setting.num_capabilities and 0 <= c.smoothing < 1 and 0 <= c.history_decay < 1):
            raise ValueError(f"ADO needs 0 <= floor < 1/K, 0 <= smoothing < 1 and 0 <= history_decay < 1, got {c}")
        if not (0 < c.alpha_min <= c.alpha_max and c.alpha_grid_step > 0 and c.min_points >= 2):
            raise ValueError(f"ADO needs 0 < alpha_min <= alpha_max, alpha_grid_step > 0 and min_points >= 2, got {c}")
        self.alphas = np.arange(c.alpha_min, c.alpha_max + c.alpha_grid_step / 2, c.alpha_grid_step)
        k = setting.num_capabilities
        # episode state (begin sets it)
        self.prior = np.full(k, 1.0 / k)
        self.p, self.p_mean, self.history = self.prior.copy(), self.prior.copy(), self.prior.copy()
        self.spent: list[float] = []  # n_t, share of the budget spent
        self.losses: list[np.ndarray] = []  # L_t = 1 - s_t [K]

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.prior = observation["requirement"] / observation["requirement"].sum()
        self.p = self.prior.copy()
        self.p_mean = self.prior.copy()
        self.history = self.prior.copy()
        self.spent = []
        self.losses = []

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.p

    def update(self, observation, action, reward, next_observation, info) -> None:
        c = self.config
        self.history = c.history_decay * self.history + (1.0 - c.history_decay) * action
        self.spent.append(1.0 - float(next_observation["budget_left"][0]))
        self.losses.append(1.0 - next_observation["profile"])
        steps = len(self.spent)
        if steps >= c.min_points:
            law = fit_power_law(np.array(self.spent), np.array(self.losses), self.alphas)
            self.p = self.step(law.speed(self.spent[-1]), steps)

    def step(self, speed: np.ndarray, steps: int) -> np.ndarray:
        """One ADO update from the forecast speeds [K] after ``steps`` steps: moves ``pbar``, returns the next mixture [K]."""
        c = self.config
        score = self.prior * speed * self.history ** c.history_power
        rho = score / score.sum() if score.sum() > 0 else self.prior
        rho = np.maximum(rho, c.floor)
        rho = rho / rho.sum()
        p = c.smoothing * self.p_mean + (1.0 - c.smoothing) * rho
        self.p_mean = self.p_mean + (rho - self.p_mean) / (steps + 1)
        return p
