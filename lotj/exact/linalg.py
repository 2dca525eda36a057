"""Dense linear algebra of the exact solver: torch float64 kernels on one CPU thread.

The exact solver's systems are small (tens to a few thousand unknowns) and solved many times. On a
shared multi-core CPU a multithreaded BLAS spends far more time synchronising its threads than
computing at these sizes (a 168 × 168 solve took 0.2 s instead of 0.4 ms on two busy cores), so
every dense kernel runs through torch with one thread, set for the call and restored after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (the previous setting is restored)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with a x = b (LU with partial pivoting); raises torch's LinAlgError when a is singular."""
    with one_thread():
        return torch.linalg.solve(
            torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        ).numpy()


def lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The least-squares solution of minimum norm of a x = b (a [m, n] may be rank-deficient or non-square;
    b [m] or [m, k] gives x [n] or [n, k])."""
    with one_thread():
        ta = torch.as_tensor(a, dtype=torch.float64)
        tb = torch.as_tensor(b, dtype=torch.float64).reshape(len(b), -1)
        x = torch.linalg.lstsq(ta, tb, driver="gelsd").solution  # [n, k]: one column per right-hand side
        return x.reshape((ta.shape[1], *np.shape(b)[1:])).numpy()


def expm(a: np.ndarray) -> np.ndarray:
    """The matrix exponential exp(a)."""
    with one_thread():
        return torch.linalg.matrix_exp(torch.as_tensor(a, dtype=torch.float64)).numpy()
