"""A surrogate world: the parameters of simulated distillation and its noise-free dynamics.

State: an *exposure* vector ``e`` [K] of effective tokens distilled per capability (0 at the start).

One step spends ``n`` tokens with allocation ``w`` (on the simplex); ``xi`` is training noise::

    a_i  = n * w_i * max(0, 1 + train_noise * xi_i)           tokens that reach capability i
    e_i <- e_i * exp(-n * (1 - w_i) / forgetting_tokens) + a_i   forgetting: tokens spent elsewhere erode e_i

The capability profile [K] in [0, 1] is a function of the exposure::

    z_j = sum_i sum_m C[i, j, m] * (1 - exp(-e_i / tau_m))     latent gain of j (3 saturating responses)
    s_j = s0_j + sigma_j(z_j)
    sigma_j(z) = g_j * tanh(z / g_j)  for z >= 0,  g_j = teacher_j - s0_j   (saturates at the teacher)
                 s0_j * tanh(z / s0_j) for z < 0                            (never below 0)

Calibration: ``C`` is solved so that one-hot exposure ``e = B_b * onehot(i)`` at each calibration budget
``B_b`` (the paper's 20M, 80M, 150M tokens) gives exactly ``s(e) - s0 = T_b[i]``, the paper's transfer
matrix row. A one-hot allocation never forgets (``1 - w_i = 0``), so spreading it over any number of steps
reproduces the paper's matrices. Between calibration budgets each response is the smooth sum of three
saturating exponentials (time constants ``tau = (0.75 B_1, 0.75 B_2, 5/3 B_3)``); beyond the largest budget it
keeps saturating toward its asymptote ``sum_m C[i, j, m]``, and ``sigma`` keeps the profile below the
teacher. Mixtures add latent gains, so each capability sees diminishing returns, transfer from the others,
and harm that grows with the exposure of harmful capabilities; forgetting makes the order of steps matter.

All functions here take arrays with any leading batch shape ``[..., K]`` and give bit-identical rows for
any batch size (elementwise numpy and ``einsum``'s own loop; BLAS would round differently for one row), so
a vector environment matches single environments exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from read_env.capabilities import resolve_capabilities

NUM_RESPONSES = 3
TIME_CONSTANT_FACTORS = np.array([0.75, 0.75, 5.0 / 3.0])
"""tau_m = factor_m * (m-th calibration budget): (15M, 60M, 250M) tokens for the paper's budgets."""

DEFAULT_FORGETTING_TOKENS = 300e6
DEFAULT_TRAIN_NOISE = 0.1
"""Relative standard deviation of the tokens that reach each capability in a step (data-quality luck)."""
DEFAULT_PROBE_NOISE = 0.005
"""Standard deviation of a probe score, in profile units (0.5 benchmark points)."""

# The prior of world="random", around the paper's world (all documented in World.random).
RANDOM_TRANSFER_LOG_SCALE = 0.35
RANDOM_TRANSFER_SHIFT = 0.004
RANDOM_PROFILE_SCALE = 0.02
RANDOM_GAP_LOG_SCALE = 0.2
RANDOM_FORGETTING_LOG_SCALE = 0.5
RANDOM_HEADROOM = 0.9

WORLDS = ("paper", "random")
CALIBRATED_FORMAT = "read-env-calibrated-world/1"
"""The ``format`` of a calibrated world file (``read-env fit-world``); files without one (``paper_calibration.json``,
older fits) are calibrated worlds too."""


def paper_calibration() -> dict[str, Any]:
    """The ReAD paper's calibration data (points 0-100), shipped with the package."""
    text = resources.files("read_env.surrogate").joinpath("paper_calibration.json").read_text()
    return json.loads(text)


class World:
    """The parameters of one simulated teacher/student pair, calibrated to transfer matrices.

    Args:
        capabilities: names, length K.
        student: start profile [K] in (0, 1).
        teacher: ceiling profile [K], strictly above ``student`` and at most 1.
        calibration_budgets: 3 increasing budgets in tokens.
        transfer: [3, K, K] profile change (row trained, column measured) after the whole calibration
            budget on one capability, in profile units; each cell within (-student_j, teacher_j - student_j).
        forgetting_tokens: tokens spent elsewhere that shrink an exposure by a factor e.
        train_noise: relative std of tokens that reach a capability; probe_noise: std of a probe score.
    """

    def __init__(
        self,
        capabilities: Sequence[str],
        student: Sequence[float],
        teacher: Sequence[float],
        calibration_budgets: Sequence[float],
        transfer: Any,
        forgetting_tokens: float = DEFAULT_FORGETTING_TOKENS,
        train_noise: float = DEFAULT_TRAIN_NOISE,
        probe_noise: float = DEFAULT_PROBE_NOISE,
    ) -> None:
        self.capabilities = tuple(capabilities)
        k = len(self.capabilities)
        self.student = np.asarray(student, dtype=np.float64)
        self.teacher = np.asarray(teacher, dtype=np.float64)
        self.calibration_budgets = np.asarray(calibration_budgets, dtype=np.float64)
        self.transfer = np.asarray(transfer, dtype=np.float64)
        self.forgetting_tokens = float(forgetting_tokens)
        self.train_noise = float(train_noise)
        self.probe_noise = float(probe_noise)
        self._validate(k)
        self.time_constants = TIME_CONSTANT_FACTORS * self.calibration_budgets
        self._decay_rates = -1.0 / self.time_constants
        self.gap = self.teacher - self.student
        # Latent targets: invert sigma column-wise, then solve the 3x3 response system for every cell.
        latent = _inverse_saturation(self.transfer, self.gap, self.student)  # [3, K, K]
        basis = 1.0 - np.exp(-self.calibration_budgets[:, None] / self.time_constants[None, :])  # [b, m]
        coefficients = np.linalg.solve(basis, latent.reshape(NUM_RESPONSES, -1)).reshape(NUM_RESPONSES, k, k)
        # Laid out [j, i*3 + m] so that z_j is one contiguous contraction (bit-identical across batch sizes).
        self._response = np.ascontiguousarray(coefficients.transpose(2, 1, 0).reshape(k, k * NUM_RESPONSES))

    def _validate(self, k: int) -> None:
        shapes = {"student": self.student.shape, "teacher": self.teacher.shape}
        for name, shape in shapes.items():
            if shape != (k,):
                raise ValueError(f"world {name} must have shape ({k},), got {shape}")
        if self.calibration_budgets.shape != (NUM_RESPONSES,) or not (np.diff(self.calibration_budgets) > 0).all():
            raise ValueError(f"calibration_budgets must be {NUM_RESPONSES} increasing token counts, got {self.calibration_budgets}")
        if self.calibration_budgets[0] <= 0:
            raise ValueError("calibration_budgets must be positive")
        if self.transfer.shape != (NUM_RESPONSES, k, k):
            raise ValueError(f"transfer must have shape ({NUM_RESPONSES}, {k}, {k}), got {self.transfer.shape}")
        for name in ("student", "teacher", "transfer"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"world {name} must be finite")
        if not ((self.student > 0) & (self.teacher > self.student) & (self.teacher <= 1)).all():
            raise ValueError("world needs 0 < student < teacher <= 1 for every capability")
        gap = self.teacher - self.student
        if not ((self.transfer < gap) & (self.transfer > -self.student)).all():
            raise ValueError("every transfer cell must stay strictly between -student and teacher - student")
        if not (self.forgetting_tokens > 0 and self.train_noise >= 0 and self.probe_noise >= 0):
            raise ValueError("forgetting_tokens must be positive and noise scales non-negative")

    # ----------------------------------------------------------------------------------------- dynamics
    STATE_BLOCKS = 1
    """The state holds this many length-K blocks (v0: the exposures)."""

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> np.ndarray:
        """The state before any distillation: zeros [*batch_shape, STATE_BLOCKS * K]."""
        return np.zeros((*batch_shape, self.STATE_BLOCKS * len(self.capabilities)))

    def advance(self, exposure: np.ndarray, step_tokens: float, allocation: np.ndarray, train_noise: np.ndarray | None) -> np.ndarray:
        """Exposure [..., K] after spending ``step_tokens`` with ``allocation`` [..., K].

        ``train_noise`` [..., K] holds standard normal draws (``None``: noise off).
        """
        tokens = step_tokens * allocation
        if train_noise is not None:
            tokens = tokens * np.maximum(0.0, 1.0 + self.train_noise * train_noise)
        return exposure * np.exp((allocation - 1.0) * (step_tokens / self.forgetting_tokens)) + tokens

    def transition(self, state: np.ndarray, step_tokens: Any, allocation: np.ndarray, train_noise: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(``advance(...)``, the new state's ``profile``): what one step does and its noise-free profile [..., K]."""
        state = self.advance(state, step_tokens, allocation, train_noise)
        return state, self.profile(state)

    def profile(self, exposure: np.ndarray) -> np.ndarray:
        """Noise-free capability profile [..., K] in [0, 1] of an exposure [..., K] (tokens)."""
        return self._saturate(self._latent(exposure))

    def _latent(self, exposure: np.ndarray) -> np.ndarray:
        """Latent gains ``z`` [..., K] of an exposure [..., K]."""
        responses = 1.0 - np.exp(exposure[..., :, None] * self._decay_rates)  # [..., K(i), 3]
        flat = responses.reshape(*exposure.shape[:-1], -1)  # [..., K*3]
        return np.einsum("...m,...jm->...j", flat, self._response)  # [..., K(j)]; einsum's own loop, no BLAS

    def _saturate(self, latent: np.ndarray) -> np.ndarray:
        """``s0 + sigma(z)`` [..., K]: the profile of latent gains (saturating at the teacher, never below 0)."""
        scale = np.where(latent >= 0.0, self.gap, self.student)
        return self.student + scale * np.tanh(latent / scale)

    # -------------------------------------------------------------------------------------- construction
    @classmethod
    def stack(cls, worlds: Sequence[World]) -> World:
        """One world whose parameters carry a leading batch axis [N, ...], for a vector of N episodes.

        All worlds must share capabilities and calibration budgets; the same world N times is returned as is.
        """
        first = worlds[0]
        if all(world is first for world in worlds):
            return first
        if any(w.capabilities != first.capabilities or (w.calibration_budgets != first.calibration_budgets).any() for w in worlds):
            raise ValueError("stacked worlds must share capabilities and calibration budgets")
        stacked = object.__new__(cls)
        stacked.__dict__.update(first.__dict__)
        for name in ("student", "teacher", "gap", "transfer", "_response"):
            setattr(stacked, name, np.stack([getattr(world, name) for world in worlds]))
        for name in ("forgetting_tokens", "train_noise", "probe_noise"):
            setattr(stacked, name, np.array([[getattr(world, name)] for world in worlds]))
        return stacked

    def subset(self, capabilities: Sequence[str]) -> World:
        """The same world restricted to (and reordered as) ``capabilities``."""
        names = resolve_capabilities(capabilities, self.capabilities)
        index = [self.capabilities.index(name) for name in names]
        return World(
            names,
            self.student[index],
            self.teacher[index],
            self.calibration_budgets,
            self.transfer[:, index][:, :, index],
            self.forgetting_tokens,
            self.train_noise,
            self.probe_noise,
        )

    @classmethod
    def from_calibration(cls, data: Mapping[str, Any]) -> World:
        """A world from calibration data in the schema of ``paper_calibration.json`` (scores in points 0-100).

        Keys: ``capabilities``, ``student_only`` and ``teacher_only`` ({name: points}), ``budgets_tokens``
        ({label: tokens}, 3 entries), ``transfer`` ({label: K x K points}); optional ``forgetting_tokens``,
        ``train_noise``, ``probe_noise``. Data of another ``format`` (a ReAD-Fitted world) raise ``ValueError``
        naming the environment it is for.
        """
        if data.get("format", CALIBRATED_FORMAT) != CALIBRATED_FORMAT:
            target = data.get("env_id") or "ReAD-Fitted-v0/v1"
            raise ValueError(f"not a calibrated world: a world of format {data['format']!r} is for {target}, "
                             f"not for ReAD-Surrogate-v0/v1/v2 (calibrated worlds: read-env fit-world --model calibrated)")
        missing = [key for key in ("capabilities", "student_only", "teacher_only", "budgets_tokens", "transfer") if key not in data]
        if missing:
            raise ValueError(f"world data lacks keys {missing}")
        names = resolve_capabilities(data["capabilities"], data["capabilities"])
        labels = sorted(data["budgets_tokens"], key=lambda label: data["budgets_tokens"][label])
        if set(labels) != set(data["transfer"]):
            raise ValueError(f"transfer labels {sorted(data['transfer'])} differ from budget labels {labels}")
        return cls(
            names,
            [data["student_only"][name] / 100.0 for name in names],
            [data["teacher_only"][name] / 100.0 for name in names],
            [data["budgets_tokens"][label] for label in labels],
            np.array([data["transfer"][label] for label in labels], dtype=np.float64) / 100.0,
            data.get("forgetting_tokens", DEFAULT_FORGETTING_TOKENS),
            data.get("train_noise", DEFAULT_TRAIN_NOISE),
            data.get("probe_noise", DEFAULT_PROBE_NOISE),
        )

    @classmethod
    def paper(cls) -> World:
        """The world calibrated to the paper (Llama-3.3-70B -> Llama-3.1-8B)."""
        return cls.from_calibration(paper_calibration())

    @classmethod
    def random(cls, rng: np.random.Generator, around: World | None = None) -> World:
        """A world drawn from the prior around ``around`` (default: the paper's world).

        Prior, with independent standard normals Z, Y per capability or cell (shared across budgets):
        student ``clip(s0 + 0.02 Z, 0.01, 0.95)``; teacher ``min(0.995, student + gap * exp(0.2 Z))``;
        transfer ``T_b * exp(0.35 Z_ij) + 0.004 * (B_b / B_3) * Y_ij`` clipped to 90% of the room each
        column has (below the teacher, above 0); forgetting ``F * exp(0.5 Z)``. Noise scales are kept.
        """
        base = around if around is not None else cls.paper()
        k = len(base.capabilities)
        student = np.clip(base.student + RANDOM_PROFILE_SCALE * rng.standard_normal(k), 0.01, 0.95)
        teacher = np.minimum(0.995, student + base.gap * np.exp(RANDOM_GAP_LOG_SCALE * rng.standard_normal(k)))
        scale = np.exp(RANDOM_TRANSFER_LOG_SCALE * rng.standard_normal((k, k)))
        shift = RANDOM_TRANSFER_SHIFT * rng.standard_normal((k, k))
        budget_share = (base.calibration_budgets / base.calibration_budgets[-1])[:, None, None]
        transfer = base.transfer * scale + shift * budget_share
        transfer = np.clip(transfer, -RANDOM_HEADROOM * student, RANDOM_HEADROOM * (teacher - student))
        forgetting = base.forgetting_tokens * np.exp(RANDOM_FORGETTING_LOG_SCALE * rng.standard_normal())
        return cls(base.capabilities, student, teacher, base.calibration_budgets, transfer, forgetting, base.train_noise, base.probe_noise)

    def to_calibration(self) -> dict[str, Any]:
        """This world as calibration data (the inverse of ``from_calibration``), JSON-able."""
        labels = [f"b{index}" for index in range(NUM_RESPONSES)]
        return {
            "capabilities": list(self.capabilities),
            "student_only": dict(zip(self.capabilities, (100.0 * self.student).tolist())),
            "teacher_only": dict(zip(self.capabilities, (100.0 * self.teacher).tolist())),
            "budgets_tokens": dict(zip(labels, self.calibration_budgets.tolist())),
            "transfer": {label: (100.0 * matrix).tolist() for label, matrix in zip(labels, self.transfer)},
            "forgetting_tokens": self.forgetting_tokens,
            "train_noise": self.train_noise,
            "probe_noise": self.probe_noise,
        }


def _inverse_saturation(change: np.ndarray, gap: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """sigma^-1 applied column-wise: the latent gain that yields a profile change [..., K]."""
    scale = np.where(change >= 0.0, gap, floor)
    return scale * np.arctanh(change / scale)


def resolve_world(
    world: str | Mapping[str, Any] | Any,
    capabilities: Sequence[str] | None,
    world_seed: int | None,
    rng: np.random.Generator,
    world_class: type[World] = World,
) -> World:
    """Build the world of class ``world_class`` named by an environment's ``world`` argument.

    ``"paper"``; ``"random"`` (drawn from ``world_seed`` when given, else from ``rng``, the episode's
    generator); calibration data (a mapping, see ``World.from_calibration``) or the path of a JSON file
    holding it (ending in ``.json``); or a world of class ``world_class`` already built. Restricted to
    ``capabilities`` when given.
    """
    if not isinstance(world, (str, Mapping)):
        if type(world) is not world_class:
            raise ValueError(f"world is a {type(world).__name__}; this environment steps a {world_class.__name__}")
        return world if capabilities is None else world.subset(capabilities)
    if isinstance(world, str) and world.endswith(".json"):
        path = Path(world)
        if not path.is_file():
            raise ValueError(f"world file {world!r} does not exist")
        world = json.loads(path.read_text())
    if isinstance(world, Mapping):
        built = world_class.from_calibration(world)
    elif world == "paper":
        built = world_class.paper()
    elif world == "random":
        built = world_class.random(np.random.default_rng(world_seed) if world_seed is not None else rng)
    else:
        raise ValueError(f"unknown world {world!r}; expected one of {list(WORLDS)}, calibration data (a dict) or a .json file")
    return built if capabilities is None else built.subset(capabilities)
