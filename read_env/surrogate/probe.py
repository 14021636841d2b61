"""How a surrogate measures its student: the probe part of an environment (:class:`Probe`).

A probe reading of capability ``c`` after step ``t`` (reading 0 after reset) is::

    clip(s_c + probe_noise * (sqrt(rho) * b_c + sqrt(1 - rho) * xi_tc), 0, 1)

``s`` the true profile, ``probe_noise`` the world's standard deviation of a probe score, ``xi`` fresh standard
normal noise every reading, ``b`` [K] standard normal drawn once per episode (the bias of a fixed probe suite), and
``rho`` the probe's ``bias`` share (v2: 0.5; v0, v1: 0). The total variance is ``probe_noise^2`` for any ``rho``; a
measured change carries only the fresh part. A surrogate with ``utility_noise`` (v1, v2) reports each step's task
utility as a dev-split reading ``clip(F(s) + utility_noise * eta_t, 0, 1)``, ``eta_t`` standard normal; without one
(v0) it reports ``F(s)`` itself. With ``noise`` off every reading is exact and nothing is drawn.

Draws, per episode, after the world's training and probe noise: the utility readings' ``eta`` [T + 1] (when there
are readings), then the bias ``b`` (when ``rho > 0``), so v0's and v1's draws are what they were before each part existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Probe:
    """The probe part: ``noise`` on or off, the ``bias`` share ``rho`` in [0, 1] of the probe noise variance, and the
    standard deviation ``utility_noise`` (>= 0) of a dev-split utility reading (``None``: the true utility is reported)."""

    noise: bool = True
    bias: float = 0.0
    utility_noise: float | None = None

    def draw_utility_readings(self, rng: np.random.Generator, num_steps: int, out: np.ndarray | None = None) -> np.ndarray | None:
        """Standard normal noise [num_steps + 1] of the utility readings, into ``out`` when given (``None``, nothing drawn,
        without readings or with noise off)."""
        return rng.standard_normal(num_steps + 1, out=out) if self.noise and self.utility_noise is not None else None

    def draw_bias(self, rng: np.random.Generator, num_capabilities: int) -> np.ndarray | None:
        """The episode's probe-suite bias ``b`` [K], standard normal (``None``, nothing drawn, with noise off or ``rho`` 0)."""
        return rng.standard_normal(num_capabilities) if self.noise and self.bias > 0.0 else None

    def mix_bias(self, probe_noise: np.ndarray, bias: np.ndarray) -> None:
        """Mix the bias [..., K] into probe noise rows [..., T + 1, K], in place: ``sqrt(1 - rho) * xi + sqrt(rho) * b``
        (elementwise, so a vector of episodes computes each row as a single episode does)."""
        probe_noise *= np.sqrt(1.0 - self.bias)
        probe_noise += np.sqrt(self.bias) * bias[..., None, :]

    def read_utility(self, utility: float, reading: float | None) -> float:
        """The reported utility of a true ``utility`` with its reading's noise ``eta`` (``None``: no reading)."""
        if reading is None:
            return utility
        return min(max(utility + self.utility_noise * reading, 0.0), 1.0)  # as the compiled step reads it


def measure(probe_noise_std: float, true_profile: np.ndarray, probe_noise: np.ndarray | None) -> np.ndarray:
    """A probe reading of ``true_profile`` [..., K]: ``clip(s + probe_noise_std * noise, 0, 1)`` with the reading's
    standard normal ``probe_noise`` [..., K] (bias already mixed in); ``true_profile`` itself without noise."""
    if probe_noise is None:
        return true_profile
    return np.clip(true_profile + probe_noise_std * probe_noise, 0.0, 1.0)
