"""L-BFGS-B driven directly (`lbfgsb_in_unit_box`): the same iterates as SciPy's `minimize`, which
pays a per-pixel Python loop over the bounds on every call."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import Bounds, minimize

from nst_engine.solvers import lbfgsb_in_unit_box


def _problem(n: int = 600, seed: int = 0):
    """A least-squares loss whose minimum lies partly outside [0, 1], so the bounds matter."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n)) / np.sqrt(n) + np.eye(n)
    b = rng.normal(0.5, 1.0, size=n)

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        r = a @ x - b
        return float(r @ r), 2 * a.T @ r

    return fun, rng.uniform(0, 1, size=n)


@pytest.mark.parametrize("maxiter", [1, 7, 40])
def test_it_walks_the_same_iterates_as_scipy_minimize(maxiter):
    fun, x0 = _problem()
    theirs: list[np.ndarray] = []
    expected = minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=Bounds(0.0, 1.0),
        callback=lambda x: theirs.append(x.copy()),
        options={"maxiter": maxiter},
    )
    ours: list[np.ndarray] = []
    x = lbfgsb_in_unit_box(fun, x0, maxiter, lambda x: ours.append(x.copy()) or True)
    assert len(ours) == len(theirs) == expected.nit
    for mine, scipy_s in zip(ours, theirs):
        np.testing.assert_array_equal(mine, scipy_s)
    np.testing.assert_array_equal(x, expected.x)
    assert x.min() >= 0.0 and x.max() <= 1.0 and (x == 0).any() and (x == 1).any()


def test_a_false_from_the_callback_ends_the_run_after_that_iterate():
    fun, x0 = _problem()
    seen: list[np.ndarray] = []
    x = lbfgsb_in_unit_box(fun, x0, 40, lambda x: seen.append(x.copy()) or len(seen) < 3)
    assert len(seen) == 3
    np.testing.assert_array_equal(x, seen[-1])
    assert fun(x)[0] < fun(x0)[0]
