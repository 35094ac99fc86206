"""Seconds of L-BFGS-B's own work per level, SciPy's `minimize` against the engine's driver
(`nst_engine.solvers.lbfgsb_in_unit_box`), side by side in one run.

    python -m bench.lbfgs [--sizes 256 512 1024] [--steps 7]

The objective is a cheap quadratic on an H×W×3 picture in [0, 1], so the seconds are the
optimiser's own: what a level pays on top of its network evaluations (on a GPU, nearly all of
it). Both walk the same iterates (tests/nst_engine/test_solvers.py).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.compare import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--steps", type=int, default=7, help="iterations per call (a Stronger's)")
    args = parser.parse_args()
    from scipy.optimize import Bounds, minimize

    from nst_engine.solvers import lbfgsb_in_unit_box

    print(machine())
    print(f"{'size':>5} {'minimize s':>11} {'driver s':>9}  ({args.steps} iterations per call)")
    for size in args.sizes:
        rng = np.random.default_rng(0)
        target = rng.uniform(-0.2, 1.2, size * size * 3)
        x0 = rng.uniform(0, 1, target.size)

        def fun(x: np.ndarray, target=target) -> tuple[float, np.ndarray]:
            return float(np.square(x - target).sum()), 2 * (x - target)

        started = time.perf_counter()
        options = {"maxiter": args.steps}
        minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=Bounds(0, 1), options=options)
        theirs = time.perf_counter() - started
        started = time.perf_counter()
        lbfgsb_in_unit_box(fun, x0, args.steps, lambda x: True)
        ours = time.perf_counter() - started
        print(f"{size:>5} {theirs:>11.2f} {ours:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
