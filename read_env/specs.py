"""A surrogate environment's parts as data: :class:`SurrogateSpec` (an id's dynamics, utility family, probe bias and
default world) and :data:`DYNAMICS` (the code of each dynamics part). :data:`read_env.registration.SURROGATE_SPECS`
maps every surrogate id to its spec; the Gymnasium registration (single and native vector forms) and
:func:`read_env.jax.make` read it. A new version is a new spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class Dynamics(NamedTuple):
    """A surrogate's dynamics part: the code that steps its world (single and native vector entry points) and the
    utility family that code uses unless a spec names another."""

    entry_point: str
    vector_entry_point: str
    utility: str


DYNAMICS = {
    "calibrated": Dynamics("read_env.surrogate.env:SurrogateEnv", "read_env.surrogate.vector_env:SurrogateVectorEnv", "linear"),
    "path_dependent": Dynamics(
        "read_env.surrogate.path_dependent_env:PathSurrogateEnv", "read_env.surrogate.vector_env:PathSurrogateVectorEnv", "scores"
    ),
    "fitted": Dynamics("read_env.fitted.env:FittedEnv", "read_env.fitted.env:FittedVectorEnv", "linear"),
}
"""The dynamics parts: v0's calibrated world (:mod:`read_env.surrogate.world`), the path-dependent world
(:mod:`read_env.surrogate.path_dependent_world`), a world fitted to logged episodes (:mod:`read_env.fitted.world`)."""


@dataclass(frozen=True)
class SurrogateSpec:
    """A surrogate id as data: its parts, read by the Gymnasium registration (single and native vector forms) and by
    :func:`read_env.jax.make`. A new version is a new spec.

    ``dynamics``: a key of :data:`DYNAMICS`; ``utility``: a key of :data:`read_env.utility.UTILITIES`; ``probe_bias``:
    the share of the probe noise variance that is a per-episode bias of the probe suite, in [0, 1]; ``world``: the
    default world when not the dynamics' own."""

    dynamics: str
    utility: str
    probe_bias: float = 0.0
    world: str | None = None

    def options(self) -> dict[str, Any]:
        """``gym.make``'s keywords of this id before the caller's: what it sets on its dynamics' code."""
        options: dict[str, Any] = {}
        if self.utility != DYNAMICS[self.dynamics].utility:
            options["utility_family"] = self.utility
        if self.probe_bias:
            options["probe_bias"] = self.probe_bias
        if self.world is not None:
            options["world"] = self.world
        return options

    def registration(self) -> dict[str, Any]:
        """``gym.register``'s keywords of this id."""
        dynamics = DYNAMICS[self.dynamics]
        return {"entry_point": dynamics.entry_point, "vector_entry_point": dynamics.vector_entry_point, "kwargs": self.options()}
