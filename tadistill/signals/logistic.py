"""A small logistic regression (numpy; L2 penalty, standardised inputs), for trust signals that
learn from gold-labelled teacher outputs: Newton's method, cross-fitting so no output is scored
by a model fitted on it, and the penalty chosen by how well cross-fitted scores rank."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tables import auroc

L2_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass
class Logistic:
    weights: np.ndarray  # one per standardised input, then the intercept
    mean: np.ndarray
    scale: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        return _design(x, self.mean, self.scale) @ self.weights

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-np.clip(self.logits(x), -30, 30)))


def _design(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.hstack([(x - mean) / scale, np.ones((len(x), 1))])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> Logistic:
    """Newton's method on the L2-penalised log-likelihood (the intercept unpenalised)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    mean, scale = x.mean(0), x.std(0) + 1e-9
    z = _design(x, mean, scale)
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Logistic(w, mean, scale)


def folds(n: int, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    return np.array_split(np.random.default_rng(seed).permutation(n), min(k, n))


def cross_fitted(x: np.ndarray, y: np.ndarray, l2: float, seed: int = 0) -> np.ndarray:
    """Each labelled output's logit from a model fitted without it (5 folds)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = np.zeros(len(x))
    for held in folds(len(x), seed=seed):
        kept = np.setdiff1d(np.arange(len(x)), held)
        out[held] = fit_logistic(x[kept], y[kept], l2).logits(x[held])
    return out


def choose_l2(x: np.ndarray, y: np.ndarray, grid=L2_GRID, seed: int = 0) -> float:
    """The penalty whose cross-fitted scores rank the labelled outputs best (ties: the first in `grid`)."""
    y = np.asarray(y).astype(bool)

    def ranking(l2: float) -> float:
        scores = cross_fitted(x, y, l2, seed)
        value = auroc(scores[y], scores[~y])
        return -1.0 if value is None else value

    return max(grid, key=ranking)
