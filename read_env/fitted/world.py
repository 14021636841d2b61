"""A world fitted to logged real episodes: a recency model or an ensemble of small networks (``ReAD-Fitted-v0``).

Both predict the next true profile ``s'`` [K] in [0, 1] from the state a policy sees; a step spends ``n``
tokens with allocation ``w`` [K] after a share ``p`` of the budget was spent; ``x = n / token_scale`` (the
largest budget of the fitting data).

**Recency** (``kind="recency"``): each capability is pulled toward its ceiling by the tokens that teach it and
toward its floor by the tokens that overwrite it, so what was trained lately counts most::

    g_j = x * lr(p) * (1 + sum_q G[q, j] s_q) * (1 + rho * max(0, h_j - s_j)) * sum_i L[i, j] w_i
    d_j = x * lr(p) * sum_i F[i, j] w_i
    s_j' = e_j + (s_j - e_j) * exp(-(g_j + d_j)),   e_j = (g_j * ceiling_j + d_j * floor_j) / (g_j + d_j)
    h_j' = max(h_j, s_j')                           (the peak reached; h = s_0 at the start)
    lr(p) = exp(-kappa * p)                          (a learning-rate schedule: kappa > 0 makes late tokens count less)

``L[i, j] >= 0``: how fast tokens of ``i`` teach ``j`` (the diagonal sets when each capability saturates);
``F[i, j] >= 0`` (zero diagonal): how fast they overwrite it (interference, forgetting); ``floor``,
``ceiling`` in [0, 1]. ``G[q, j] >= 0`` (zero diagonal) is ``ReAD-Surrogate-v1``'s prerequisite term (knowing
``q`` speeds learning ``j``) and ``rho >= 0`` its repair term (a capability that fell below its peak is
relearned faster). The profile stays in [0, 1]: each step moves it toward a convex combination of values in
[0, 1]. A fixed mixture settles where each capability's teaching and overwriting balance; one-hot phases
overwrite the capabilities trained before.

**Ensemble** (``kind="ensemble"``): M networks ``s' = clip(s + f_m(s, w, w_prev, p, x), 0, 1)``, each two
tanh layers of ``hidden`` units, trained on bootstrap resamples of the episodes; an episode of the environment
draws one member, and the members' spread is the model's uncertainty.

**A prior over worlds** (:meth:`FittedWorld.combine`): worlds of one kind fitted to different students (say
three pre-training seeds) pooled into one world whose members are all theirs, each member starting from its
own student's start profile. An episode drawing a member uniformly then draws a student uniformly and one of
its world's members: the prior covers the students' spread in start profiles and in dynamics.

The state [2K] is ``s`` and ``h`` (recency) or ``s`` and the previous allocation (ensemble); it starts at the
member's start profile (``starts``; the fitted ``student`` for a single world). Observed profiles add probe
noise of standard deviation ``probe_noise``.
Computed by :mod:`read_env.fitted.kernel`; fitted by :mod:`read_env.fit.fitted`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from read_env.fitted import kernel
from read_env.registration import FITTED_V1_ID

FORMAT = "read-env-fitted-world/1"
SHIPPED_WORLDS = {
    "default": ("mini_v0_check.json",),
    "mini_v1": ("mini_v1.json",),
    "mini_v1_students": ("mini_v1.json", "mini_v1_student1.json", "mini_v1_student2.json"),
}
"""Worlds shipped with the package, by the name ``world=`` takes, and their files (several: :meth:`FittedWorld.combine`'d).
``"default"`` (``ReAD-Fitted-v0``'s) is fitted to a small ReAD-Mini-v0 data set; ``"mini_v1"`` (``ReAD-Fitted-v1``'s)
to ReAD-Mini-v1's broad data set (``docs/results/fitted/mini-v1-broad``, the default student, pre-training seed 0);
``"mini_v1_students"`` is the prior over that world and those fitted to the students of pre-training seeds 1 and
2 (``docs/results/fitted/mini-v1-student1``, ``-student2``)."""


class FittedWorld:
    """A fitted world (see the module docstring).

    Args:
        kind: ``"recency"`` or ``"ensemble"``.
        capabilities: names, length K.
        student: start profile [K] in [0, 1], or one per member [M, K] (a prior over students, :meth:`combine`).
        theta: parameters [M, D] (one row per member; :func:`read_env.fitted.kernel.layout`).
        token_scale: tokens that make ``x = 1`` (> 0).
        hidden: hidden units of the ensemble's networks (0 for recency).
        probe_noise: standard deviation of a probe reading (>= 0).
        fit: the fit's record (data, errors, validation), kept in the file.
    """

    STATE_BLOCKS = 2
    env_id = FITTED_V1_ID
    """The environment a fitted world is for (``ReAD-Fitted-v0`` takes it too), recorded in its file."""

    def __init__(self, kind: str, capabilities: Sequence[str], student: Any, theta: Any, token_scale: float, hidden: int = 0, probe_noise: float = 0.0,
                 fit: Mapping[str, Any] | None = None) -> None:
        if kind not in kernel.KINDS:
            raise ValueError(f"unknown fitted world kind {kind!r}; expected one of {list(kernel.KINDS)}")
        self.kind, self.capabilities = kind, tuple(capabilities)
        k = len(self.capabilities)
        self.kind_index, self.hidden = kernel.KINDS.index(kind), int(hidden)
        student = np.asarray(student, dtype=np.float64)
        self.theta = np.ascontiguousarray(np.atleast_2d(np.asarray(theta, dtype=np.float64)))
        self.starts_apart = student.ndim == 2
        """Whether members start from their own profiles (``student`` was [M, K])."""
        self.token_scale, self.probe_noise, self.fit = float(token_scale), float(probe_noise), dict(fit or {})
        expected = kernel.width(self.kind_index, k, self.hidden)
        if self.kind_index == kernel.ENSEMBLE and self.hidden < 1:
            raise ValueError(f"an ensemble needs hidden >= 1, got {hidden}")
        if self.theta.ndim != 2 or self.theta.shape[1] != expected or not np.isfinite(self.theta).all():
            raise ValueError(f"theta must be finite with shape (members, {expected}) for a {kind} world of K={k}, got {self.theta.shape}")
        if student.shape not in ((k,), (self.members, k)) or not ((student >= 0) & (student <= 1)).all():
            raise ValueError(f"student must be {k} scores in [0, 1] (or one row of them per member), got {student.tolist()}")
        self.starts = np.ascontiguousarray(np.broadcast_to(student, (self.members, k)))
        """Each member's start profile [M, K]."""
        self.student = self.starts.mean(axis=0) if self.starts_apart else student
        """The start profile [K] (the members' mean when they start apart)."""
        if self.kind_index == kernel.RECENCY:
            self._check_recency()
        if not (self.token_scale > 0 and np.isfinite(self.token_scale) and self.probe_noise >= 0):
            raise ValueError(f"token_scale must be positive and probe_noise >= 0, got {token_scale}, {probe_noise}")

    def _check_recency(self) -> None:
        for member in range(self.members):
            blocks = self.blocks(member)
            for name in ("floor", "ceiling"):
                if not ((blocks[name] >= 0) & (blocks[name] <= 1)).all():
                    raise ValueError(f"recency {name} must lie in [0, 1]")
            for name in ("learn", "forget", "prerequisites", "repair"):
                if (blocks[name] < 0).any():
                    raise ValueError(f"recency {name} must be non-negative")
            if np.diagonal(blocks["forget"]).any() or np.diagonal(blocks["prerequisites"]).any():
                raise ValueError("recency forget and prerequisites must have a zero diagonal")

    @property
    def teacher(self) -> np.ndarray:
        """A perfect score [K] of ones: a fitted world knows no teacher profile. Only the shortfall utility family
        reads a world's teacher, and ``ReAD-Fitted-v0`` uses the scores family (the environments pass it along)."""
        return np.ones(len(self.capabilities))

    @property
    def members(self) -> int:
        return len(self.theta)

    def blocks(self, member: int = 0) -> dict[str, np.ndarray]:
        """Member ``member``'s parameters by name (:func:`read_env.fitted.kernel.layout`), as views."""
        out, start = {}, 0
        for name, shape in kernel.layout(self.kind_index, len(self.capabilities), self.hidden).items():
            size = int(np.prod(shape))
            out[name] = self.theta[member, start : start + size].reshape(shape)
            start += size
        return out

    # ----------------------------------------------------------------------------------------- dynamics
    def initial_state(self, batch_shape: tuple[int, ...] = (), member: np.ndarray | int | None = None) -> np.ndarray:
        """The start state [*batch_shape, 2K]: the start profile (``student``, or member ``member``'s, an index or
        indices [*batch_shape]), then ``h = s_0`` (recency) or zeros (ensemble)."""
        start = self.student if member is None else self.starts[member]
        second = start if self.kind_index == kernel.RECENCY else np.zeros_like(start)
        return np.broadcast_to(np.concatenate([start, second], axis=-1), (*batch_shape, 2 * len(self.capabilities))).copy()

    def profile(self, state: np.ndarray) -> np.ndarray:
        """The true profile [..., K] of states [..., 2K]."""
        return np.asarray(state)[..., : len(self.capabilities)].copy()

    def rollout(self, tokens: np.ndarray, allocations: np.ndarray, budget_tokens: np.ndarray, start: np.ndarray | None = None,
                member: np.ndarray | int = 0) -> np.ndarray:
        """Noise-free profiles [N, T, K] of N episodes: step tokens [N, T], allocations [N, T, K], each episode's
        budget [N] (the progress of a step is the tokens spent before it over the budget), start profiles [N, K]
        (default: each member's), member index per episode (or one for all)."""
        tokens = np.asarray(tokens, dtype=np.float64)
        allocations = np.ascontiguousarray(allocations, dtype=np.float64)
        rows = allocations.shape[0]
        members = np.broadcast_to(np.asarray(member, dtype=np.int64), (rows,))
        start = np.array(np.broadcast_to(self.starts[members] if start is None else np.asarray(start, dtype=np.float64), (rows, len(self.capabilities))))
        spent = np.cumsum(tokens, axis=1) - tokens
        progress = spent / np.asarray(budget_tokens, dtype=np.float64).reshape(-1, 1)
        return kernel.rollout(self.kind_index, self.hidden, self.theta, np.ascontiguousarray(members), np.ascontiguousarray(start),
                              np.ascontiguousarray(tokens / self.token_scale), np.ascontiguousarray(progress), allocations)

    # ------------------------------------------------------------------------------ files and the env hooks
    def to_data(self) -> dict[str, Any]:
        """This world as JSON-able data (the inverse of :meth:`from_data`)."""
        student = self.starts if self.starts_apart else self.student
        return {"format": FORMAT, "env_id": self.env_id, "kind": self.kind, "capabilities": list(self.capabilities),
                "student": student.tolist(), "theta": self.theta.tolist(),
                "token_scale": self.token_scale, "hidden": self.hidden, "probe_noise": self.probe_noise, "fit": self.fit}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> FittedWorld:
        """A world from :meth:`to_data`'s schema; ``ValueError`` names a missing key or another format (and the
        environment that format is for)."""
        if data.get("format") != FORMAT:
            target = data.get("env_id") or "ReAD-Surrogate-v0/v1/v2"
            raise ValueError(f"not a fitted world: a world of format {data.get('format')!r} is for {target}, not for ReAD-Fitted-v0/v1 "
                             f"(fitted worlds: read-env fit-world --model recency, ensemble or both)")
        missing = [key for key in ("kind", "capabilities", "student", "theta", "token_scale") if key not in data]
        if missing:
            raise ValueError(f"fitted world data lacks keys {missing}")
        return cls(data["kind"], data["capabilities"], data["student"], data["theta"], data["token_scale"], data.get("hidden", 0), data.get("probe_noise", 0.0),
                   data.get("fit"))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_data()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FittedWorld:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"world file {str(path)!r} does not exist")
        return cls.from_data(json.loads(path.read_text()))

    @classmethod
    def shipped(cls, name: str = "default") -> FittedWorld:
        """A world shipped with the package, by its name in :data:`SHIPPED_WORLDS`."""
        if name not in SHIPPED_WORLDS:
            raise ValueError(f"no shipped world {name!r}; shipped: {sorted(SHIPPED_WORLDS)}")
        return cls.resolve(name)

    @classmethod
    def resolve(cls, world: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]) -> FittedWorld:
        """The world an environment's ``world`` names: a shipped world's name, a ``.json`` file, its data, or a
        list of those (:meth:`combine`'d into a prior)."""
        if isinstance(world, Mapping):
            return cls.from_data(world)
        if isinstance(world, str) and world in SHIPPED_WORLDS:
            return cls.resolve([str(resources.files("read_env.fitted").joinpath("data", name)) for name in SHIPPED_WORLDS[world]])
        if isinstance(world, str):
            if not world.endswith(".json"):
                raise ValueError(f"world must be a shipped world {sorted(SHIPPED_WORLDS)}, a fitted world .json file, its data or a list of those "
                                 f"(read-env fit-world --model ...), got {world!r}")
            return cls.load(world)
        if not isinstance(world, Sequence) or not world:
            raise ValueError(f"world must be a shipped world's name, a .json file, its data or a non-empty list of those, got {world!r}")
        worlds = [cls.resolve(each) for each in world]
        return worlds[0] if len(worlds) == 1 else cls.combine(worlds)

    @classmethod
    def combine(cls, worlds: Sequence[FittedWorld]) -> FittedWorld:
        """A prior over ``worlds`` (see the module docstring): all their members, in order, each with its world's start
        profile. The worlds must share kind, capabilities, hidden units, token scale and member count (so a uniform
        member is a uniform world); ``probe_noise`` is their mean; ``fit`` holds their records under ``"worlds"``."""
        first = worlds[0]
        if len({(world.kind, world.capabilities, world.hidden, world.token_scale, world.members) for world in worlds}) > 1:
            shapes = ", ".join(f"{world.kind} of {world.members} members ({world.hidden} hidden, {world.token_scale:g} tokens, K={len(world.capabilities)})"
                               for world in worlds)
            raise ValueError(f"worlds combined into a prior must share kind, capabilities, hidden units, token scale and member count; got {shapes}")
        fit = {"worlds": [world.fit for world in worlds], "data": " + ".join(str(world.fit.get("data", "?")) for world in worlds)}
        steps = {world.fit.get("num_steps") for world in worlds} - {None}
        if len(steps) == 1:
            fit["num_steps"] = steps.pop()
        return cls(first.kind, first.capabilities, np.concatenate([world.starts for world in worlds]), np.concatenate([world.theta for world in worlds]),
                   first.token_scale, first.hidden, float(np.mean([world.probe_noise for world in worlds])), fit)

    def subset(self, capabilities: Sequence[str]) -> FittedWorld:
        """This world when ``capabilities`` are its own, in order (a fitted world predicts its capabilities together)."""
        if tuple(capabilities) != self.capabilities:
            raise ValueError(f"a fitted world models exactly its capabilities {list(self.capabilities)} in that order, got {list(capabilities)}")
        return self

    @classmethod
    def stack(cls, worlds: Sequence[FittedWorld]) -> FittedWorld:
        """The one world every row of a vector environment shares (members are drawn per episode, not worlds)."""
        if any(world is not worlds[0] for world in worlds):
            raise ValueError("a fitted environment's rows share one world")
        return worlds[0]
