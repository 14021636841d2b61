"""A batched ensemble of J MLP regressors in numpy: all members train and predict as one computation.

Every parameter of every member lives in one flat float32 array ``theta`` [J, P]; the layer weights are
views into it, so one Adam update is a handful of whole-array operations whatever the depth. Forward and
backward passes use batched matmuls over the member axis: ``[J, B, d] @ [J, d, H]``.

Architecture of each member: ``d -> H (ReLU) -> ... -> H (ReLU) -> 1`` with ``hidden_layers`` hidden layers,
initialized like ``torch.nn.Linear`` (uniform in +-1/sqrt(fan_in)). Optional randomized prior networks
(Osband et al. 2018): a frozen, randomly initialized copy per member whose output, times ``prior_scale``,
is added to the member's prediction.
"""

from __future__ import annotations

import numpy as np

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class BatchedEnsemble:
    """J regressors ``h_j(x)``; ``predict(x [M, d]) -> [J, M]``; ``fit(x [N, d], y [N], ...)`` trains all at once."""

    def __init__(self, input_dim: int, ensemble_size: int = 5, hidden_size: int = 64, hidden_layers: int = 2,
                 learning_rate: float = 1e-3, prior_scale: float = 0.0, rng: np.random.Generator | None = None) -> None:
        rng = rng if rng is not None else np.random.default_rng()
        self.input_dim, self.size, self.learning_rate, self.prior_scale = input_dim, ensemble_size, learning_rate, prior_scale
        dims = [input_dim] + [hidden_size] * hidden_layers + [1]
        self.shapes = [(dims[i], dims[i + 1]) for i in range(len(dims) - 1)]
        self.num_params = sum(a * b + b for a, b in self.shapes)
        self.theta = self._init(rng)
        self.grad = np.zeros_like(self.theta)
        self.m = np.zeros_like(self.theta)
        self.v = np.zeros_like(self.theta)
        self.adam_steps = 0
        self.prior = self._init(rng) if prior_scale > 0 else None

    def _init(self, rng: np.random.Generator) -> np.ndarray:
        theta = np.empty((self.size, self.num_params), dtype=np.float32)
        for weight, bias in self._layers(theta):
            bound = 1.0 / np.sqrt(weight.shape[1])
            weight[...] = rng.uniform(-bound, bound, weight.shape)
            bias[...] = rng.uniform(-bound, bound, bias.shape)
        return theta

    def _layers(self, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Views (weight [J, in, out], bias [J, out]) of each layer into a flat [J, P] array."""
        out, offset = [], 0
        for fan_in, fan_out in self.shapes:
            weight = flat[:, offset : offset + fan_in * fan_out].reshape(self.size, fan_in, fan_out)
            offset += fan_in * fan_out
            bias = flat[:, offset : offset + fan_out]
            offset += fan_out
            out.append((weight, bias))
        return out

    def _forward(self, theta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Outputs [J, B] of inputs x [J, B, d] (or [B, d], shared), and the activations for backprop."""
        layers = self._layers(theta)
        activations = [x]
        h = x
        for index, (weight, bias) in enumerate(layers):
            z = np.matmul(h, weight)
            z += bias[:, None, :]
            if index < len(layers) - 1:
                np.maximum(z, 0.0, out=z)
                activations.append(z)
            h = z
        return h[..., 0], activations

    def _adam_update(self, scratch: np.ndarray) -> None:
        """One Adam step on ``theta`` from ``grad``, in place (``scratch`` avoids temporaries)."""
        beta1, beta2 = ADAM_BETAS
        self.adam_steps += 1
        self.m *= beta1
        np.multiply(self.grad, 1.0 - beta1, out=scratch)
        self.m += scratch
        self.v *= beta2
        np.square(self.grad, out=scratch)
        scratch *= 1.0 - beta2
        self.v += scratch
        step_size = self.learning_rate * np.sqrt(1.0 - beta2**self.adam_steps) / (1.0 - beta1**self.adam_steps)
        np.sqrt(self.v, out=scratch)
        scratch += ADAM_EPS
        np.divide(self.m, scratch, out=scratch)
        scratch *= step_size
        self.theta -= scratch

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions [J, M] of every member on inputs x [M, d] (prior networks included)."""
        x = np.asarray(x, dtype=np.float32)
        out, _ = self._forward(self.theta, x[None])
        if self.prior is not None:
            out = out + self.prior_scale * self._forward(self.prior, x[None])[0]
        return out.astype(np.float64)

    def fit(self, x: np.ndarray, y: np.ndarray, steps: int, batch_size: int, rng: np.random.Generator, weights: np.ndarray | None = None) -> float:
        """``steps`` Adam steps of mean squared error; member j sees minibatches of its own bootstrap resample.

        x [N, d], y [N]. Minibatches hold ``min(batch_size, N)`` rows (the paper's public code). ``weights`` [N]
        (>= 0, not all 0; ``None``: equal) make the bootstrap a weighted one: row i is drawn with probability
        ``weights_i / sum(weights)``, so a row's expected share of the loss is its weight's share. Returns the
        last step's mean loss over members.
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        n = x.shape[0]
        batch_size = min(batch_size, n)
        if weights is None:
            boot = rng.integers(0, n, (self.size, n))  # member j's bootstrap resample of the buffer
        else:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (n,) or not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
                raise ValueError(f"weights must be {n} finite non-negative numbers, not all zero; got shape {weights.shape}")
            boot = rng.choice(n, (self.size, n), p=weights / weights.sum())
        picks = rng.integers(0, n, (steps, self.size, batch_size))
        rows = np.take_along_axis(np.broadcast_to(boot, (steps, self.size, n)), picks, axis=2)  # [S, J, B]
        yb = y[rows]  # [S, J, B]; inputs are gathered step by step (x[rows[step]]: [J, B, d])
        if self.prior is not None:  # members fit y - prior_scale * prior_j(x), so h_j + prior_j fits y
            prior_all = self._forward(self.prior, x[None])[0]  # [J, N]
            yb = yb - self.prior_scale * np.take_along_axis(prior_all[None], rows, axis=2)
        grads = self._layers(self.grad)
        weights = self._layers(self.theta)
        scratch = np.empty_like(self.theta)
        loss = 0.0
        for step in range(steps):
            out, acts = self._forward(self.theta, x[rows[step]])
            err = out - yb[step]
            delta = (2.0 / batch_size) * err[..., None]  # d loss / d output [J, B, 1]
            for index in range(len(weights) - 1, -1, -1):
                grad_w, grad_b = grads[index]
                np.matmul(acts[index].transpose(0, 2, 1), delta, out=grad_w)
                grad_b[...] = delta.sum(axis=1)
                if index > 0:
                    delta = np.matmul(delta, weights[index][0].transpose(0, 2, 1))
                    delta *= acts[index] > 0
            self._adam_update(scratch)
            if step == steps - 1:
                loss = float(np.mean(np.square(err)))
        return loss
