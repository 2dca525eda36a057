"""The finite state space of a discrete economy (lotj.exact.states)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lotj.config import load_config
from lotj.economy.params import EconomyParams
from lotj.errors import ConfigError
from lotj.exact.states import StateSpace
from lotj.exact.table import table_value_function


@pytest.fixture(scope="module")
def space() -> StateSpace:
    return StateSpace.from_params(load_config(["conf=exact_small"]).economy)


def test_state_count_is_firm_types_times_multisets(space):
    # multisets of at most 4 workers over 3 types: C(4 + 3, 3) = 35, for each of 2 firm types
    assert space.n_states == 2 * math.comb(7, 3) == 70
    assert len({(f, tuple(c)) for f, c in zip(space.firm_type, space.counts)}) == 70
    assert space.size.max() == 4 and space.size.min() == 0


def test_plus_and_minus_are_one_worker_moves(space):
    for i in range(space.n_states):
        for j in range(space.n_worker_types):
            k = space.plus[i, j]
            if space.size[i] == space.n_max:
                assert k == -1  # a firm at the cap makes no offer: no S⊕x (MODEL.md section 10)
            else:
                assert space.firm_type[k] == space.firm_type[i]
                assert (space.counts[k] - space.counts[i]).tolist() == np.eye(3, dtype=int)[j].tolist()
                assert space.minus[k, j] == i
            if space.counts[i, j] == 0:
                assert space.minus[i, j] == -1


def test_production_and_benefits_by_hand(space):
    p = load_config(["conf=exact_small"]).economy
    # firm type 2 (z = 1.5) with one worker of type 1 (h = 0.7) and two of type 3 (h = 1.4)
    i = next(k for k in range(space.n_states) if space.firm_type[k] == 1 and space.counts[k].tolist() == [1, 0, 2])
    assert space.F[i] == pytest.approx(1.5 * (0.7**p.eta + 2 * 1.4**p.eta) ** (1 / p.eta), rel=1e-14)
    assert space.sum_u[i] == pytest.approx(p.b / (p.rho + p.delta_r) * (0.7 + 2 * 1.4), rel=1e-14)
    assert space.F[space.empty_state(0)] == 0.0


def test_batches_round_trip_and_slot_order_does_not_matter(space):
    batch = space.firm_batch()
    assert (space.locate(batch.z, batch.q, batch.h, batch.a, batch.mask) == np.arange(space.n_states)).all()
    perm = torch.randperm(space.n_max, generator=torch.Generator().manual_seed(0))
    shuffled = space.locate(batch.z, batch.q, batch.h[:, perm], batch.a[:, perm], batch.mask[:, perm])
    assert (shuffled == np.arange(space.n_states)).all()


def test_table_value_function_reads_values_and_neighbours(space):
    v = np.arange(space.n_states, dtype=float) + 1.0
    vf = table_value_function(space, v)
    batch = space.firm_batch()
    assert torch.equal(vf.value(batch), torch.as_tensor(v))
    removal = vf.removal_values(batch)
    adds = vf.addition_values(batch, torch.as_tensor(space.h), torch.as_tensor(space.a))
    for i in range(space.n_states):
        for slot in range(space.n_max):
            if batch.mask[i, slot]:
                j = int(np.argmin(np.abs(space.h - float(batch.h[i, slot]))))
                assert removal[i, slot] == v[space.minus[i, j]]
        for j in range(space.n_worker_types):
            if space.plus[i, j] >= 0:
                assert adds[i, j] == v[space.plus[i, j]]


def test_refuses_continuous_or_learning_economies():
    with pytest.raises(ConfigError, match="worker_types"):
        StateSpace.from_params(EconomyParams(gamma_e=0.0))
    p = load_config(["conf=exact_small"]).economy
    p.gamma_e = 0.5
    with pytest.raises(ConfigError, match="gamma_e"):
        StateSpace.from_params(p)
    p = load_config(["conf=exact_small"]).economy
    p.worker_types = [[1.0, 1.0, 0.5], [1.0, 1.0, 0.5]]
    with pytest.raises(ConfigError, match="same"):
        StateSpace.from_params(p)


def test_unknown_types_are_refused(space):
    batch = space.firm_batch(np.array([3]))
    with pytest.raises(ValueError, match="worker"):
        space.locate(batch.z, batch.q, batch.h * 1.01, batch.a, batch.mask)
