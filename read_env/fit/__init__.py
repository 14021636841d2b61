"""World fitting: :func:`fit` fits a world of one kind to recorded episodes (:mod:`read_env.episodes`).

Kinds (:data:`KINDS`), one module each:

* ``"calibrated"`` (:mod:`read_env.fit.calibrated`): a calibrated world of ``ReAD-Surrogate-v0`` (least squares,
  numpy); ``path_terms=True`` gives a :class:`~read_env.surrogate.path_dependent_world.PathWorld` of ``ReAD-Surrogate-v1/v2``;
* ``"recency"`` and ``"ensemble"`` (:mod:`read_env.fit.fitted`): a world of ``ReAD-Fitted`` (Adam, torch).

The fit-and-report workflows of ``read-env fit-world`` split the episodes first:
:func:`read_env.fit.calibrated.fit_world` (every n-th episode held out, errors in a report) and
:func:`read_env.fit.validate.fit_and_validate` (whole schedules held out, validated by error and by rank).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from read_env.episodes import Episode
    from read_env.fitted.world import FittedWorld
    from read_env.surrogate.world import World

KINDS = ("calibrated", "recency", "ensemble")
"""The kinds of world :func:`fit` fits."""


def fit(kind: str, episodes: Sequence[Episode], **options: Any) -> World | FittedWorld:
    """The world of ``kind`` (one of :data:`KINDS`) fitted to every one of ``episodes``.

    ``options`` go to the kind's fit: ``path_terms`` (calibrated, :func:`~read_env.fit.calibrated.fit_world`);
    ``iterations``, ``seed`` (recency, :func:`~read_env.fit.fitted.fit_recency`); ``members``, ``hidden``,
    ``iterations``, ``seed`` (ensemble, :func:`~read_env.fit.fitted.fit_ensemble`).

    Raises ``ValueError`` for an unknown ``kind``.
    """
    if kind == "calibrated":
        from read_env.fit.calibrated import fit_world

        return fit_world(episodes, holdout=0.0, **options)[0]
    if kind in ("recency", "ensemble"):
        from read_env.fit import fitted  # imported here: torch is an optional dependency

        return (fitted.fit_recency if kind == "recency" else fitted.fit_ensemble)(episodes, **options)
    raise ValueError(f"unknown fit kind {kind!r}; expected one of {list(KINDS)}")
