"""The exact solver's dense kernels (lotj.exact.linalg): float64 answers whatever the inputs' dtype, the
minimum-norm least-squares solution of a rank-deficient system (the stationary law's Picard start solves one),
several right-hand sides at once, and the thread count restored."""

from __future__ import annotations

import numpy as np
import torch

from lotj.exact.linalg import expm, lstsq, one_thread, solve


def test_solve_is_float64_from_integer_and_float32_inputs():
    # 2x + y = 1, x + 3y = 2: x = 1/5, y = 3/5
    a, b = np.array([[2, 1], [1, 3]]), np.array([1, 2])
    for x in (solve(a, b), solve(a.astype(np.float32), b.astype(np.float32))):
        assert x.dtype == np.float64
        np.testing.assert_allclose(x, [0.2, 0.6], rtol=1e-15)


def test_lstsq_gives_the_minimum_norm_solution_of_a_rank_deficient_system():
    # x1 + x2 = 2 twice and 0 = 0: every (t, 2 − t) solves it; the one of least norm is (1, 1)
    a = np.array([[1, 1], [1, 1], [0, 0]])
    x = lstsq(a, np.array([2, 2, 0]))
    assert x.dtype == np.float64 and x.shape == (2,)
    np.testing.assert_allclose(x, [1.0, 1.0], rtol=1e-14)
    # two right-hand sides at once, in float32: each column its own minimum-norm solution, in float64
    two = lstsq(a.astype(np.float32), np.array([[2, 4], [2, 4], [0, 0]], dtype=np.float32))
    assert two.dtype == np.float64 and two.shape == (2, 2)
    np.testing.assert_allclose(two, [[1.0, 2.0], [1.0, 2.0]], rtol=1e-14)


def test_lstsq_of_a_square_stochastic_system_is_its_stationary_law():
    # the Picard start's use: Q' π = 0 with one row replaced by Σπ = 1, for a two-state chain with rates 1 and 3
    system = np.array([[1.0, 1.0], [1.0, -3.0]])
    np.testing.assert_allclose(lstsq(system, np.array([1.0, 0.0])), [0.75, 0.25], rtol=1e-14)


def test_expm_by_hand_from_integer_inputs():
    nilpotent = expm(np.array([[0, 1], [0, 0]]))
    assert nilpotent.dtype == np.float64
    np.testing.assert_allclose(nilpotent, [[1.0, 1.0], [0.0, 1.0]], atol=1e-15)
    np.testing.assert_allclose(expm(np.diag([1, 2])), np.diag([np.e, np.e**2]), rtol=1e-14)


def test_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
