"""The ReAD contextual bandit (the paper's method): the public code's loop, plus the paper's profiling split.

``read_bandit`` (these defaults) is the paper's method done competently; ``read_bandit_code`` (``PUBLIC_CODE``)
is the public code's loop as it is, which differs in four places: no profiling split, ``kappa0 = 1``, a random
warm-up, and a calibration slope applied only to rewards logged after each fit (so the buffer mixes scales).

Before the episode:

0. The requirement ``r`` is the observation's (``requirement_source="observation"``: the public code's manual
   card) or the requirement identifier's ``g_phi(card)`` (``"identifier"``, :mod:`agents.policies.identifier`; the
   episode's task must be a named card). With ``profile_fraction > 0`` (the paper's profiling split,
   :mod:`agents.policies.profiling`), each static candidate of ``r`` is run once on its share of
   ``profile_fraction * B`` extra tokens, and those transitions (brought to the scale of one episode step)
   fill the buffer and pre-train the ensemble; the tokens are reported as ``profiling_tokens``. Bringing a
   run of ``n`` tokens to a step of ``B / T`` multiplies its noise by ``ratio = (B / T) / n`` (about 7.5 at the
   paper's 10% over 15 candidates), so with ``profile_weighting="variance"`` each profiling transition
   weighs ``1 / ratio^2`` (inverse variance) against an episode transition's 1: in the weighted bootstrap and
   in the target standardization. With equal weights their rewards (spanning -0.18 to +0.06 against in-episode
   rewards of about +-0.01 on ReAD-Surrogate-v1) set the standardization and dominate the fit. The ensemble is
   pre-trained on the split only when its weight reaches ``warmup_steps`` (equal weights); a lighter split
   joins the first refit after an episode step (a fit of the split alone, kept by the warm start, cost
   0.4 points on six v1 cells: 30.66 against 31.08, 3 seeds, the cells of ``benchmarks/bandit_ceiling.py``).

Each step t:

1. Context ``x_t = [r_tau; s_t; b_t; rho_t]`` with ``rho_t = [w_{t-1}; gain_feature_scale * ds_{t-1}]``
   (the observation's ``last_allocation`` and ``last_gain``), dimension 4K + 1.
2. Candidates ``A(tau)`` (:func:`agents.policies.candidates.candidate_set`): local perturbations of the previous
   allocation plus sparse allocations on the top-k required capabilities over a weight grid (<= 50).
3. While the buffer's total weight is below ``warmup_steps`` (episode transitions weigh 1; a persisted buffer
   skips the warm-up): ``w = r_tau`` (``warmup="requirement"``) or a random candidate (``"random"``, the public
   code). Afterwards every candidate is scored at once by the ensemble, ``[J, M]`` predictions of ``h_j(x_t, w)``: mean ``mu``, standard deviation
   ``sigma`` (J - 1 denominator), and the choice is ``argmax mu + kappa * sigma`` (``selection="ucb"``) or
   ``argmax h_j`` for one member j drawn uniformly (``selection="thompson"``).
4. After the step, ``(x_t, w_t, R_t)`` joins the buffer and all J members are refit together
   (:class:`agents.policies.ensemble.BatchedEnsemble`): ``refit_steps`` Adam steps of minibatches of
   ``min(batch_size, n)`` (as the public code) from each member's own (weighted) bootstrap resample of the
   buffer of n transitions. Targets are standardized by the buffer's (weighted) mean and standard deviation
   (predictions are mapped back). Members keep their weights between refits (warm start).
5. Checkpoints every ``checkpoint_fraction`` of the budget: fit the affine map ``U ~ a * cumR + b`` of
   cumulative proxy reward to the dev utility (``info["utility"]``) over the checkpoints so far (``a`` kept
   when the fit has < 3 points or a <= 0); the targets are ``a * R`` for every reward of the buffer
   (``calibration_scope="buffer"``: one scale, so the standardized targets, and the choices, do not move) or
   rewards logged from then on are multiplied by ``a`` (``"future"``, the public code: the buffer mixes the
   scales of every fit, slopes of 0.05 to 2.3 seen on v1); when utility rose by less than ``stagnation_tol``
   since the last checkpoint, ``kappa *= kappa_decay``.

Options beyond the paper: randomized prior networks (``prior_scale > 0``), Thompson sampling, and a buffer
that persists across episodes (``persist_buffer``). ``kappa0 = 0`` is the paper's greedy one-step baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from agents.base import Agent, Setting
from agents.policies.candidates import DEFAULT_PAIR_WEIGHTS, DEFAULT_PERTURBATIONS, candidate_set
from agents.policies.ensemble import BatchedEnsemble
from agents.policies.profiling import DEFAULT_PROFILE_FRACTION, check_profile_fraction, profile
from read_env.tasks import TASKS

REQUIREMENT_SOURCES = ("observation", "identifier")
CALIBRATION_SCOPES = ("buffer", "future")
PUBLIC_CODE = {"profile_fraction": 0.0, "kappa0": 1.0, "warmup": "random", "calibration_scope": "future"}
"""The public code's loop (``read_bandit_code``): no profiling split, kappa0 = 1, five random warm-up steps, and
calibration that rescales only the rewards logged after each fit."""
PROFILE_WEIGHTINGS = ("variance", "equal")


@dataclass
class BanditConfig:
    """Hyperparameters; defaults are the paper's public code where it has one (see paper notes)."""

    ensemble_size: int = 5  # J
    hidden_size: int = 64
    hidden_layers: int = 2  # "two-layer MLP": two hidden ReLU layers of hidden_size, then a linear output
    learning_rate: float = 1e-3  # Adam
    refit_steps: int = 200  # Adam steps per refit (one refit per environment step)
    batch_size: int = 64
    kappa0: float = 0.1  # exploration weight of sigma; 0 gives the greedy baseline (public code: 1.0)
    kappa_decay: float = 0.7  # multiply kappa when dev utility stagnates at a checkpoint
    stagnation_tol: float = 1e-3  # utility rise (utility units, 0.1 points) below which a checkpoint stagnates
    checkpoint_fraction: float = 0.1  # checkpoints every 10% of the budget
    calibrate: bool = True  # affine calibration of cumulative proxy reward to dev utility
    calibration_scope: str = "buffer"  # "buffer": one slope on every reward of the buffer; "future" (public code): new rewards only
    warmup_steps: int = 5  # warm-up steps (until the buffer's weight reaches this)
    warmup: str = "requirement"  # "requirement": w = r_tau; "random" (public code): random candidates
    top_k: int = 3  # sparse candidates on the top-k required capabilities
    pair_weights: tuple[float, ...] = DEFAULT_PAIR_WEIGHTS
    perturbation_sizes: tuple[float, ...] = DEFAULT_PERTURBATIONS
    include_one_hots: bool = True
    max_candidates: int = 50
    gain_feature_scale: float = 50.0  # scales last_gain (profile units, ~0.01) to O(1) inputs
    selection: str = "ucb"  # "ucb" (paper) or "thompson"
    prior_scale: float = 0.0  # randomized prior networks when > 0 (in standardized reward units)
    persist_buffer: bool = False  # keep the transition buffer (and networks) across episodes
    min_target_std: float = 1e-4  # floor of the reward standard deviation used to standardize targets
    requirement_source: str = "observation"  # "observation" (manual card, public code) or "identifier" (g_phi)
    identifier_options: dict[str, Any] = field(default_factory=dict)  # IdentifierConfig fields (requirement_source="identifier")
    profile_fraction: float = DEFAULT_PROFILE_FRACTION  # profiling tokens / episode budget; 0: logged transitions only
    profile_weighting: str = "variance"  # "variance": a profiling transition weighs (tokens_run / step_tokens)^2; "equal": 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.selection not in ("ucb", "thompson"):
            raise ValueError(f"selection must be 'ucb' or 'thompson', got {self.selection!r}")
        if self.warmup not in ("random", "requirement"):
            raise ValueError(f"warmup must be 'random' or 'requirement', got {self.warmup!r}")
        if self.calibration_scope not in CALIBRATION_SCOPES:
            raise ValueError(f"calibration_scope must be one of {CALIBRATION_SCOPES}, got {self.calibration_scope!r}")
        if self.profile_weighting not in PROFILE_WEIGHTINGS:
            raise ValueError(f"profile_weighting must be one of {PROFILE_WEIGHTINGS}, got {self.profile_weighting!r}")
        if self.ensemble_size < 2:
            raise ValueError(f"ensemble_size must be at least 2 (sigma needs J - 1 > 0), got {self.ensemble_size}")
        if self.requirement_source not in REQUIREMENT_SOURCES:
            raise ValueError(f"requirement_source must be one of {REQUIREMENT_SOURCES}, got {self.requirement_source!r}")
        check_profile_fraction(self.profile_fraction)
        if self.identifier_options:
            from agents.policies.identifier import IdentifierConfig

            unknown = sorted(set(self.identifier_options) - set(IdentifierConfig.__dataclass_fields__))
            if unknown:
                raise ValueError(f"identifier_options has unknown keys {unknown}; known: {sorted(IdentifierConfig.__dataclass_fields__)}")
            IdentifierConfig(**self.identifier_options)  # raises ValueError naming a bad value
        self.pair_weights = tuple(self.pair_weights)
        self.perturbation_sizes = tuple(self.perturbation_sizes)


class ReadBandit(Agent):
    """The ReAD bandit; see the module docstring. ``ReadBandit(setting, seed, **config_overrides)``."""

    name = "read_bandit"

    def __init__(self, setting: Setting, seed: int | None = None, config: BanditConfig | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = config if config is not None else BanditConfig(**overrides)
        k = setting.num_capabilities
        self.context_dim = 4 * k + 1
        self.ensemble = self._new_ensemble()
        self.contexts: list[np.ndarray] = []
        self.allocations: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.weights: list[float] = []
        self.target_mean, self.target_std = 0.0, 1.0
        self.last_scores: dict[str, np.ndarray] = {}
        self.requirement = np.full(k, 1.0 / k)
        self.profiling_tokens = 0
        # episode state (begin sets it)
        self.kappa = self.config.kappa0
        self.slope = 1.0
        self.cumulative_reward = 0.0
        self.checkpoints: list[tuple[float, float]] = []
        self.next_checkpoint = self.config.checkpoint_fraction
        self.episode_steps = 0

    def _new_ensemble(self) -> BatchedEnsemble:
        c = self.config
        return BatchedEnsemble(self.context_dim + self.setting.num_capabilities, c.ensemble_size, c.hidden_size, c.hidden_layers, c.learning_rate, c.prior_scale, self.rng)

    # ------------------------------------------------------------------------------------- features
    def context(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """``x = [r; s; b; w_prev; gain_feature_scale * ds_prev]`` [4K + 1] (``r``: the episode's requirement)."""
        return np.concatenate([
            self.requirement,
            observation["profile"],
            observation["budget_left"],
            observation["last_allocation"],
            self.config.gain_feature_scale * observation["last_gain"],
        ])

    def candidates(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        c = self.config
        previous = observation["last_allocation"] if observation["last_allocation"].sum() > 0 else None
        return candidate_set(self.requirement, previous, c.top_k, c.pair_weights, c.perturbation_sizes, c.include_one_hots, c.max_candidates)

    def score(self, observation: dict[str, np.ndarray], candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(predictions [J, M], mu [M], sigma [M]) of every candidate [M, K], in reward units."""
        x = self.context(observation)
        inputs = np.concatenate([np.broadcast_to(x, (candidates.shape[0], x.shape[0])), candidates], axis=1)
        predictions = self.ensemble.predict(inputs) * self.target_std + self.target_mean
        return predictions, predictions.mean(axis=0), predictions.std(axis=0, ddof=1)

    # ----------------------------------------------------------------------------------- agent API
    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        c = self.config
        requirement = self.identify(info) if c.requirement_source == "identifier" else observation["requirement"] / observation["requirement"].sum()
        runs = profile(self.setting, observation["requirement"], c.profile_fraction, self.rng, c.top_k, c.max_candidates, requirement) if c.profile_fraction > 0 else []
        if not c.persist_buffer or not self.rewards:
            self.contexts, self.allocations, self.rewards, self.weights = [], [], [], []
            self.ensemble = self._new_ensemble()
            self.target_mean, self.target_std = 0.0, 1.0
        self.kappa = c.kappa0
        self.slope = 1.0
        self.cumulative_reward = 0.0
        self.checkpoints = [(0.0, float(info.get("utility", 0.0)))]
        self.next_checkpoint = c.checkpoint_fraction
        self.episode_steps = 0
        self.requirement = requirement
        self.profiling_tokens = sum(run.tokens for run in runs)
        step_tokens = self.setting.budget_tokens / self.setting.num_steps
        for run in runs:
            self.contexts.append(self.context(run.observation))
            self.allocations.append(run.allocation)
            self.rewards.append(run.reward)
            self.weights.append(min(1.0, run.tokens / step_tokens) ** 2 if c.profile_weighting == "variance" else 1.0)
        if runs and sum(self.weights) >= c.warmup_steps:  # pre-train only on a split that outweighs the warm-up
            self.refit()

    def identify(self, info: dict[str, Any]) -> np.ndarray:
        """``g_phi(card)`` [K] of the episode's task card, restricted to this setting's capabilities."""
        from agents.policies.identifier import IdentifierConfig, load_or_train

        task = info.get("task")
        if task not in TASKS:
            raise ValueError(f"requirement_source='identifier' needs a named task card, but the episode's task is {task!r}; known: {sorted(TASKS)}")
        model, _ = load_or_train(IdentifierConfig(**self.config.identifier_options))
        missing = [name for name in self.setting.capabilities if name not in model.capabilities]
        if missing:
            raise ValueError(f"the identifier knows no capabilities {missing}; it covers {list(model.capabilities)}")
        full = model.requirements([TASKS[task]])[0]
        requirement = full[[model.capabilities.index(name) for name in self.setting.capabilities]]
        return requirement / requirement.sum()

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        c = self.config
        candidates = self.candidates(observation)
        if sum(self.weights) < c.warmup_steps:
            if c.warmup == "requirement":
                return self.requirement
            return candidates[self.rng.integers(len(candidates))]
        predictions, mu, sigma = self.score(observation, candidates)
        if c.selection == "thompson":
            values = predictions[self.rng.integers(c.ensemble_size)]
        else:
            values = mu + self.kappa * sigma
        choice = int(np.argmax(values))
        self.last_scores = {"mu": mu, "sigma": sigma, "value": values, "choice": np.array(choice)}
        return candidates[choice]

    def update(self, observation: dict[str, np.ndarray], action: np.ndarray, reward: float, next_observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        c = self.config
        self.episode_steps += 1
        self.contexts.append(self.context(observation))
        self.allocations.append(action / action.sum())
        self.rewards.append(reward if c.calibration_scope == "buffer" else self.slope * reward)
        self.weights.append(1.0)
        self.cumulative_reward += reward
        self._checkpoint(1.0 - float(next_observation["budget_left"][0]), float(info.get("utility", np.nan)))
        if next_observation["budget_left"][0] <= 0 and not c.persist_buffer:
            return  # the episode is over and the buffer is dropped: skip a refit nobody uses
        self.refit()

    def refit(self) -> float:
        """Refit all J members on (weighted) bootstrap resamples of the buffer (one batched computation)."""
        c = self.config
        inputs = np.concatenate([np.array(self.contexts), np.array(self.allocations)], axis=1)
        targets = self.targets()
        weights = np.array(self.weights)
        if (weights == 1.0).all():
            weights = None  # equal weights: the unweighted bootstrap and statistics
            self.target_mean, spread = float(targets.mean()), float(targets.std())
        else:
            self.target_mean = float(np.average(targets, weights=weights))
            spread = float(np.sqrt(np.average((targets - self.target_mean) ** 2, weights=weights)))
        self.target_std = max(spread, c.min_target_std)
        return self.ensemble.fit(inputs, (targets - self.target_mean) / self.target_std, c.refit_steps, c.batch_size, self.rng, weights)

    def targets(self) -> np.ndarray:
        """The regression targets [N] of the buffer: its rewards, times the calibration slope when it spans the buffer."""
        rewards = np.array(self.rewards)
        return self.slope * rewards if self.config.calibration_scope == "buffer" else rewards

    def _checkpoint(self, spent: float, utility: float) -> None:
        c = self.config
        if spent + 1e-9 < self.next_checkpoint or not np.isfinite(utility):
            return
        while self.next_checkpoint <= spent + 1e-9:
            self.next_checkpoint += c.checkpoint_fraction
        if utility - self.checkpoints[-1][1] < c.stagnation_tol:
            self.kappa *= c.kappa_decay
        self.checkpoints.append((self.cumulative_reward, utility))
        if c.calibrate and len(self.checkpoints) >= 3:
            cum, util = np.array(self.checkpoints).T
            if cum.std() > 0:
                slope = float(np.polyfit(cum, util, 1)[0])
                if slope > 0:
                    self.slope = slope

    def report(self) -> dict[str, Any]:
        return {"kappa_final": float(self.kappa), "calibration_slope": float(self.slope), "profiling_tokens": int(self.profiling_tokens),
                "requirement_used": self.requirement.tolist()}

    def hyperparameters(self) -> dict[str, Any]:
        return asdict(self.config)
