import numpy as np

from tadistill.signals.logistic import choose_l2, cross_fitted, fit_logistic
from tadistill.tables import auroc


def _separable(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    x = np.column_stack([y + rng.normal(0, 0.7, n), rng.normal(0, 1, n)])  # one informative input, one noise
    return x, y


def test_the_fit_finds_the_informative_input_and_ranks_by_it():
    x, y = _separable()
    model = fit_logistic(x, y, l2=1.0)
    assert model.weights[0] > 1.0 and abs(model.weights[1]) < 0.5
    p = model.probabilities(x)
    assert ((0 < p) & (p < 1)).all() and auroc(p[y], p[~y]) > 0.8


def test_cross_fitting_scores_each_output_without_it_and_a_heavy_penalty_flattens():
    x, y = _separable(seed=1)
    honest = cross_fitted(x, y, l2=1.0)
    assert auroc(honest[y], honest[~y]) > 0.75
    flat = fit_logistic(x, y, l2=1e6).weights[:2]
    assert np.abs(flat).max() < 0.05
    assert choose_l2(x, y) in (0.1, 1.0, 10.0, 100.0)
